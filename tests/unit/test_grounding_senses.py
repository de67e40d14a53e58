"""Abbreviation sense inventories (app.core.grounding.senses) on the shared inventories and small files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.core.errors import AsclepiusError, UsageError
from app.core.grounding.senses import SenseInventory, abbreviation_key, expansion_key


@pytest.fixture(scope="module")
def inventory(shared_data: Path) -> SenseInventory:
    return SenseInventory.load(shared_data / "abbreviations")


def test_every_shared_format_is_read(inventory: SenseInventory) -> None:
    assert set(inventory.files) == {
        "abbrev_columbia_obgyn.txt",  # "ABBR long form"
        "abbrev_stetson_signout_senses.tsv",  # TSV without a header
        "abbrev_vanderbilt_clinic_notes_senses.tsv",  # TSV with a header and variations
        "abbrev_vanderbilt_discharge_summaries_senses.tsv",
        "abbrev_wikipedia_medical_abbreviations.csv",  # CSV abr,long_form
    }
    assert inventory.check("AFI", "amniotic fluid index") == "known"  # Columbia only has AFI first
    assert inventory.check("nl", "normal") == "known"  # Stetson
    assert inventory.check("qow", "every other week") == "known"  # Vanderbilt clinic
    assert inventory.check("AFNTR", "acute febrile nonhemolytic transfusion reaction") == "known"  # Wikipedia
    assert "abbreviation" not in inventory.senses  # a header row is not an abbreviation
    assert "abr" not in inventory.senses


@pytest.mark.parametrize(
    ("abbr", "expansion"),
    [
        ("SOB", "shortness of breath"),
        ("sob", "Shortness Of Breath."),
        ("s/p", "status-post"),
        ("S/P", "status post"),
        ("A/P", "assessment and plan"),  # Vanderbilt's key is a_p; its variation column says A/P
        ("HTN", "hypertension"),
        ("AFP", "alpha fetoprotein"),
        ("BID", "twice daily"),  # listed as "twice a day"
        ("CHF", "congestive heart failures"),  # plural
    ],
)
def test_known_senses_match_however_written(inventory: SenseInventory, abbr: str, expansion: str) -> None:
    assert inventory.check(abbr, expansion) == "known"


def test_an_expansion_not_among_the_senses_is_unusual_and_an_unlisted_abbreviation_unknown(
    inventory: SenseInventory,
) -> None:
    assert inventory.check("HTN", "heart attack") == "unusual"
    assert inventory.check("XQZW", "anything") == ""
    assert inventory.check("HTN", "") == ""
    assert "Hypertension" in inventory.senses_of("htn")


def test_normalisation_rules() -> None:
    assert abbreviation_key("a.a.") == abbreviation_key("AA") == "aa"
    assert expansion_key("Status-Post") == expansion_key("status post")
    assert expansion_key("Nausea & Vomiting") == expansion_key("nausea and vomiting")
    assert expansion_key("kidneys") == expansion_key("kidney")
    assert expansion_key("diabetes") == expansion_key("Diabetes.")  # a word ending in s is cut alike on both sides


def test_bad_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("abbreviation\tsense\nSOB\tshortness of breath\nbroken-row\n\t\nHTN\t\n")
    (tmp_path / "b.csv").write_text('"abr","long_form"\n"PO","by mouth"\n"X"\n')
    (tmp_path / "c.txt").write_text("ACOG American College of Obstetrics & Gynecology \nLONELY\n\n")
    (tmp_path / "d.bin").write_bytes(b"\0\1\2binary")
    (tmp_path / "e.tsv").write_bytes("ÖD\tÖdem\n".encode("latin-1"))  # not UTF-8: read as Latin-1
    inv = SenseInventory.load(tmp_path)
    assert inv.check("SOB", "shortness of breath") == "known"
    assert inv.check("po", "by mouth") == "known"
    assert inv.check("ACOG", "american college of obstetrics and gynecology") == "known"
    assert inv.check("öd", "ödem") == "known"
    assert inv.skipped == 4  # broken-row, HTN without a sense, "X", LONELY (blank rows are not counted)
    assert "d.bin" not in inv.files


def test_load_is_cached_until_a_file_changes(tmp_path: Path) -> None:
    f = tmp_path / "a.tsv"
    f.write_text("SOB\tshortness of breath\n")
    first = SenseInventory.load(tmp_path)
    assert SenseInventory.load(tmp_path) is first
    f.write_text("SOB\tshortness of breath\nHTN\thypertension\n")
    os.utime(f, ns=(1, 1))  # a new mtime even where the clock is coarse
    second = SenseInventory.load(tmp_path)
    assert second is not first
    assert second.check("HTN", "hypertension") == "known"


def test_a_missing_or_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot be read"):
        SenseInventory.load(tmp_path / "nope")
    with pytest.raises(AsclepiusError, match="holds no inventory file"):
        SenseInventory.load(tmp_path)

"""``asclepius ground``: an answer made anywhere checked against its note, claim by claim (no model, no log)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli.main import main
from app.core.grounding import ClaimStatus, GroundingReport
from app.core.grounding.text import report_lines
from tests.grounding_examples import example_report

NOTE = "Medications: metformin 1000 mg by mouth twice daily.\nLisinopril 10 mg daily.\n"
ANSWER = "Metformin 1000 mg by mouth twice daily.\nIbuprofen 1000 mg twice daily."


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ASCLEPIUS_HOME", str(tmp_path / "home"))  # no user config read, nothing written there
    return tmp_path


def files(tmp: Path, note: str | bytes, answer: str | bytes) -> list[str]:
    for name, text in (("note.txt", note), ("answer.txt", answer)):
        (tmp / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["ground", "--note", str(tmp / "note.txt"), "--answer", str(tmp / "answer.txt")]


def test_ground_flags_a_drug_the_note_does_not_name_and_supports_a_verbatim_line(home, capsys):
    assert main([*files(home, NOTE, ANSWER), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    report = GroundingReport.from_dict(summary)
    assert summary["schema"] == 2 and summary["partly"] + summary["not_found"] >= 1
    flagged = [c for c in report.claims if "Ibuprofen" in c.text]
    assert flagged and all(c.status in (ClaimStatus.PARTLY, ClaimStatus.NOT_FOUND) for c in flagged)
    assert any(c.status == ClaimStatus.SUPPORTED for c in report.claims if "Metformin" in c.text)
    assert not (home / "home").exists(), "ground keeps no log and writes nothing"


def test_ground_prints_claims_with_offsets_in_the_validated_texts_and_the_summary_line(home, capsys):
    # CRLF and outer blank lines: offsets index the note as validated (what the app shows and logs).
    note = ("\r\n\r\n  " + NOTE.replace("\n", "\r\n")).encode()
    assert main([*files(home, note, "\n" + ANSWER + "\n\n"), "--task", "ner"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("-- grounding: ") and ("not found" in out[-1] or "partly" in out[-1])
    assert not out[-1].startswith("-- grounding: all")
    assert main([*files(home, note, "\n" + ANSWER + "\n\n"), "--json"]) == 0
    report = GroundingReport.from_dict(json.loads(capsys.readouterr().out))
    validated, answer = NOTE.strip(), ANSWER
    for c in report.claims:
        assert answer[c.answer_start : c.answer_end] == c.text
        for p in c.parts:
            assert answer[p.answer_start : p.answer_end] == p.text
            if p.found:
                assert all(validated[a:b].lower() == p.text.lower() for a, b in p.note_spans), p


def test_report_lines_name_every_status_part_item_and_omission():
    lines = report_lines(example_report())
    text = "\n".join(lines)
    assert lines[0].startswith("[supported] 1. Metformin 1000 mg twice daily (answer 0-")
    assert "[partly supported] 2. Lisinopril 1000 mg daily" in text
    assert ": 1000 mg appears with metformin, not lisinopril" in text
    assert "    dose: 1000 mg - missing (with metformin in the note)" in text
    assert "[not found] 3. Ibuprofen 1000 mg twice daily" in text and "[not checked] 5. No known allergies" in text
    assert "[item, none] Tylenol" in text and "not in the note" in text
    assert "[possible omission] Robitussin (a medication in the note at" in text
    flagged = report_lines(example_report(), flagged_only=True)
    assert not [x for x in flagged if x.startswith(("[supported]", "[not checked]", "    "))]
    assert [x.split("]")[0] for x in flagged[:3]] == ["[partly supported", "[not found", "[not found"]


def test_an_unknown_task_is_a_usage_error(home, capsys):
    assert main([*files(home, NOTE, ANSWER), "--task", "translation"]) == 2
    assert "unknown task" in capsys.readouterr().err

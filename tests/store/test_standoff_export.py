"""``log export --format bioc|brat``: the runs' grounding as standoff annotations over their notes (private
files), refused clearly when the log keeps note hashes only."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.grounding_examples import NOTE
from tests.store.cli_runner import main
from tests.store.test_grounding_export import make_log

pytestmark = pytest.mark.usefixtures("asclepius_home")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_log(tmp_path / "g.db")


def test_bioc_export_is_one_private_json_collection_with_each_runs_annotations(db, tmp_path, capsys):
    out = tmp_path / "runs.bioc.json"
    assert main(["log", "export", "--db", str(db), "--format", "bioc", "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "exported 2 runs as bioc" in capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert json.loads(text)["documents"] and "Robitussin" in text and "Lisinopril" in text


def test_brat_export_writes_a_private_folder_of_note_text_and_annotations(db, tmp_path, capsys):
    folder = tmp_path / "brat"
    assert main(["log", "export", "--db", str(db), "--format", "brat", "-o", str(folder)]) == 0
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["1.ann", "1.txt", "2.ann", "2.txt"]
    assert (folder / "1.txt").read_text(encoding="utf-8") == NOTE
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    assert main(["log", "export", "--db", str(db), "--format", "brat", "-o", str(folder)]) == 2  # not empty
    assert "not an empty folder" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["bioc", "brat"])
def test_standoff_is_refused_clearly_for_a_hash_only_log(fmt, tmp_path, capsys):
    hashed = make_log(tmp_path / "h.db", store_note_text=False)
    target = tmp_path / "out"
    assert main(["log", "export", "--db", str(hashed), "--format", fmt, "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert "run 1 has no note text" in err and "only note hashes" in err and not target.exists()

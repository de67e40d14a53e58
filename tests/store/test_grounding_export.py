"""The claim-level grounding wherever a logged run leaves the log: ``log show``, CSV/JSONL exports (the report
and its summary line), and standoff annotations (BioC JSON, brat) for clinical NLP tools."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from app.core.grounding import GroundingReport
from app.store import EvalLog
from tests.grounding_examples import ANSWER, NOTE, example_report
from tests.store.cli_runner import main
from tests.store.helpers import model, request, result

HEADLINE = example_report().headline()


pytestmark = pytest.mark.usefixtures("asclepius_home")


def make_log(path: Path, store_note_text: bool = True) -> Path:
    """Run 1: the example report (schema 2); run 2: a run logged before claims (schema 1)."""
    with EvalLog.open(path, store_note_text=store_note_text) as log:
        req = request(note=NOTE)
        log.log_run(req, model(), replace(result(req, model(), answer=ANSWER), grounding=example_report().summary()))
        old = request(note=NOTE, instruction="older")
        log.log_run(old, model(), result(old, model()))
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_log(tmp_path / "g.db")


def test_log_show_prints_the_summary_line_and_each_claim_and_json_has_the_whole_report(db, capsys):
    assert main(["log", "show", "1", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"grounding:            {HEADLINE}" in out
    assert "  [partly supported] 2. Lisinopril 1000 mg daily" in out and "  [possible omission] Robitussin" in out
    assert main(["log", "show", "1", "--db", str(db), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["grounding_summary"] == HEADLINE
    assert GroundingReport.from_dict(shown["grounding"]) == example_report()
    assert main(["log", "show", "2", "--db", str(db)]) == 0  # an older run still reads as what it was
    assert "grounding:            2 of 2 facts found (word-level check, older run)" in capsys.readouterr().out


def test_csv_and_jsonl_exports_carry_the_report_and_its_summary_line(db, capsys):
    assert main(["log", "export", "--db", str(db), "--format", "csv"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [r["grounding_summary"] for r in rows] == [HEADLINE, "2 of 2 facts found (word-level check, older run)"]
    assert GroundingReport.from_dict(json.loads(rows[0]["grounding"])) == example_report()
    assert main(["log", "export", "--db", str(db), "--format", "jsonl"]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert recs[0]["grounding_summary"] == HEADLINE and recs[0]["grounding"]["partly"] == 1


def test_a_run_without_grounding_exports_as_not_checked(tmp_path, capsys):
    with EvalLog.open(tmp_path / "n.db") as log:
        req = request(note=NOTE)
        log.log_run(req, model(), replace(result(req, model(), answer=""), grounding=None))
    assert main(["log", "export", "--db", str(tmp_path / "n.db"), "--format", "jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["grounding_summary"] == "not checked"

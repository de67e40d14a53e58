"""Export (CSV, JSONL, filters, no note text) and the ratings import round trip."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.store import EvalLog, RunFilter
from app.store.export import export
from app.store.ratings_import import import_ratings
from tests.store.helpers import NOTE, QA, logged, model, request


@pytest.fixture
def filled(log: EvalLog) -> EvalLog:
    a = logged(log, request(instruction="meds?"), model(0))
    b = logged(log, request(instruction="meds?"), model(1), answer='says "=SUM(A1)", then\na new line')
    c = logged(log, request(task=QA, instruction="why admitted?"), model(0))
    log.add_rating(a, "dr-lee", 2)
    log.add_rating(a, "dr-lee", 3)
    log.add_rating(a, "dr-kim", 4, hallucination=True, comment="ok, dose, correct")
    log.add_rating(c, "dr-kim", 1)
    assert b
    return log


def test_csv_export_of_runs(filled: EvalLog) -> None:
    out = io.StringIO()
    assert export(filled, out, "csv") == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["ratings_n"] == "2" and float(rows[0]["ratings_mean"]) == 3.5
    assert rows[1]["answer"] == 'says "=SUM(A1)", then\na new line'
    assert rows[1]["ratings_n"] == "0" and rows[1]["ratings_mean"] == ""
    assert rows[0]["note_text"] == NOTE
    assert json.loads(rows[0]["grounding"]) == {"checked": 2, "supported": 2, "unsupported": []}
    assert datetime.fromisoformat(rows[0]["started_at"]).tzinfo is not None


def test_export_without_note_text(filled: EvalLog) -> None:
    out = io.StringIO()
    export(filled, out, "jsonl", include_note_text=False)
    recs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(recs) == 3
    assert all("note_text" not in r and len(r["note_sha256"]) == 64 for r in recs)
    assert "pneumonia" not in out.getvalue()


def test_export_filters(filled: EvalLog) -> None:
    def ids(**f: object) -> list[int]:
        out = io.StringIO()
        export(filled, out, "jsonl", filters=RunFilter(**f))  # type: ignore[arg-type]
        return [json.loads(line)["id"] for line in out.getvalue().splitlines()]

    assert ids(task=QA) == [3]
    assert ids(model=model(1).file_name) == [2]
    assert ids(rater="dr-lee") == [1]
    assert ids(since=datetime(2100, 1, 1, tzinfo=UTC)) == []


def test_ratings_export_current_and_history(filled: EvalLog) -> None:
    cur, hist = io.StringIO(), io.StringIO()
    assert export(filled, cur, "csv", kind="ratings") == 3
    assert export(filled, hist, "csv", kind="ratings", history=True) == 4
    rows = list(csv.DictReader(io.StringIO(cur.getvalue())))
    assert sorted((r["rater"], r["score"]) for r in rows) == [("dr-kim", "1"), ("dr-kim", "4"), ("dr-lee", "3")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_ratings_round_trip_into_a_new_log(filled: EvalLog, tmp_path: Path, fmt: str) -> None:
    # The same runs exist in a second log (same uuids), as after copying a log to another machine.
    other = EvalLog.open(tmp_path / f"other-{fmt}.db")
    for run in filled.list_runs(limit=10):
        full = filled.get_run(run.id)
        assert full is not None
        req = request(note=full.note_text or NOTE, task=full.task, instruction=full.instruction)
        req = type(req)(**{**req.__dict__, "run_uuid": full.uuid})
        logged(other, req, model(0))
    f = tmp_path / f"ratings.{fmt}"
    with f.open("w", encoding="utf-8", newline="") as fh:
        export(filled, fh, fmt, kind="ratings")
    report = import_ratings(other, f, add_raters=True)  # a new log lists none of the raters yet
    assert (report.imported, report.unchanged, report.errors) == (3, 0, [])

    def key(log: EvalLog) -> list[tuple[str, str, int, bool, str | None]]:
        return sorted(
            (r.uuid, h.rater, h.score, h.hallucination, h.comment)
            for r in log.list_runs(limit=10)
            for h in log.current_ratings(r.id)
        )

    assert key(other) == key(filled)
    # A second import of the same file adds nothing, not even history.
    again = import_ratings(other, f, add_raters=True)
    assert (again.imported, again.unchanged) == (0, 3)
    assert sum(len(other.rating_history(r.id)) for r in other.list_runs(limit=10)) == 3
    other.close()


def test_import_reports_bad_rows_by_line_and_keeps_good_ones(filled: EvalLog, tmp_path: Path) -> None:
    runs = filled.list_runs(limit=10)
    started = filled.start_run(request(instruction="unfinished"), model())
    uuid = filled.get_run(started).uuid  # type: ignore[union-attr]
    f = tmp_path / "sheet.csv"
    f.write_text(
        "run_id,score,hallucination,comment\n"
        f"{runs[0].uuid},4,no,fine\n"  # line 2: ok
        f"{runs[1].uuid},5,no,\n"  # line 3: bad score
        "no-such-run,3,no,\n"  # line 4: unknown run
        f"{runs[2].uuid},2,maybe,\n"  # line 5: bad flag
        f',3,no,"multi\nline comment"\n'  # line 6-7: empty run id
        f"{uuid},3,no,\n"  # line 8: not finished
        f"{runs[0].uuid},1,no,\n",  # line 9: duplicate of line 2
        encoding="utf-8",
    )
    report = import_ratings(filled, f, default_rater="dr-sheet", add_raters=True)
    assert report.imported == 1
    assert [line for line, _ in report.errors] == [3, 4, 5, 6, 8, 9]
    msgs = dict(report.errors)
    assert "score must be 1, 2, 3 or 4" in msgs[3] and "no run" in msgs[4] and "yes or no" in msgs[5]
    assert "run_id is empty" in msgs[6] and "only finished" in msgs[8] and "line 2" in msgs[9]
    assert [(r.rater, r.score, r.comment) for r in filled.current_ratings(runs[0].uuid) if r.rater == "dr-sheet"] == [
        ("dr-sheet", 4, "fine")
    ]


def test_csv_cells_that_look_like_formulas_are_neutralised_and_restored_on_import(log: EvalLog, tmp_path: Path) -> None:
    from app.store.export import csv_safe, csv_unsafe

    rid = logged(log, request(instruction="=cmd|' /C calc'!A0"), model(0), answer="@SUM(1+1)")
    log.add_rating(rid, "dr-lee", 3, comment='=HYPERLINK("http://x")', corrected_answer="- bullet stays")
    out = io.StringIO()
    export(log, out, "csv")
    row = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["instruction"] == "'=cmd|' /C calc'!A0" and row["answer"] == "'@SUM(1+1)"
    f = tmp_path / "ratings.csv"
    with f.open("w", encoding="utf-8", newline="") as fh:
        export(log, fh, "csv", kind="ratings")
    rating = next(csv.DictReader(f.open(encoding="utf-8")))
    assert rating["comment"].startswith("'=") and rating["corrected_answer"] == "- bullet stays"
    other = EvalLog.open(tmp_path / "other.db")
    logged(other, type(request())(**{**request(instruction="x").__dict__, "run_uuid": log.get_run(rid).uuid}), model(0))
    assert import_ratings(other, f, add_raters=True).imported == 1
    assert other.current_ratings(1)[0].comment == '=HYPERLINK("http://x")'
    other.close()
    for v in ("-3 mg", "- item", "plain", "'=quoted already"):
        assert csv_unsafe(csv_safe(v)) == v


def test_import_refuses_ratings_of_failed_and_cancelled_runs_naming_them(log: EvalLog, tmp_path: Path) -> None:
    from app.core.types import FinishReason
    from tests.store.helpers import result

    good = logged(log, request(instruction="meds?"))
    failed_req, cancelled_req, m = request(instruction="a"), request(instruction="b"), model()
    failed = log.start_run(failed_req, m)
    log.fail_run(failed, "the engine crashed", FinishReason.ERROR)
    log.log_run(cancelled_req, m, result(cancelled_req, m, answer="amoxi", reason=FinishReason.CANCELLED))
    f = tmp_path / "sheet.csv"
    f.write_text(
        f"run_id,score\n{good},4\n{failed},2\n{cancelled_req.run_uuid},1\n",
        encoding="utf-8",
    )
    log.add_rater("dr-sheet")
    report = import_ratings(log, f, default_rater="dr-sheet")
    assert report.imported == 1
    msgs = dict(report.errors)
    assert sorted(msgs) == [3, 4]
    assert f"run {failed} cannot be rated: this run failed" in msgs[3]
    assert f"run {cancelled_req.run_uuid} cannot be rated" in msgs[4] and "stopped" in msgs[4]
    assert log.rating_history(failed) == [] and log.rating_history(cancelled_req.run_uuid) == []
    assert [r.score for r in log.current_ratings(good)] == [4]

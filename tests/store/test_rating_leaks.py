"""Issue #23's rating leaks in the store: a rating that contradicts the rubric, unknown raters in an import,
ratings of runs that failed, and History showing a rater only their own score."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.core.errors import UsageError
from app.core.types import FinishReason
from app.store import EvalLog, RunQuery
from app.store.ratings import rating_problem
from app.store.ratings_import import UNKNOWN_RATER, import_ratings
from resources.rubric import flag_contradiction
from tests.store.helpers import logged, model, request


# -- the rubric: Hallucination ticked with a score above 1 ------------------------------------------------------
@pytest.mark.parametrize("score", [2, 3, 4])
def test_a_score_above_1_with_hallucination_needs_a_comment(log: EvalLog, score: int) -> None:
    rid = logged(log)
    with pytest.raises(UsageError, match=rf"score {score} .* Hallucination .* explain in a comment"):
        log.add_rating(rid, "dr-a", score, hallucination=True)
    with pytest.raises(UsageError, match="explain in a comment"):
        log.add_rating(rid, "dr-a", score, hallucination=True, comment="   ")
    assert log.rating_history(rid) == []
    # Explained, it is kept as the rater said it; without the flag, or at score 1, nothing to explain.
    log.add_rating(rid, "dr-a", score, hallucination=True, comment="invented a dose; the rest is complete")
    log.add_rating(rid, "dr-b", score)
    log.add_rating(rid, "dr-c", 1, hallucination=True)
    assert sorted((r.rater, r.score, r.hallucination) for r in log.current_ratings(rid)) == [
        ("dr-a", score, True),
        ("dr-b", score, False),
        ("dr-c", 1, True),
    ]


def test_the_rule_is_the_rubric_s() -> None:
    assert flag_contradiction(1, True) is None and flag_contradiction(2, False) is None
    assert "Poor" in (flag_contradiction(2, True) or "")
    assert rating_problem(5, False, None) and rating_problem(True, False, None)
    assert rating_problem(2, True, "why") is None and rating_problem(2, True, "") is not None


def test_import_refuses_a_contradicting_row_without_quoting_it(log: EvalLog, tmp_path: Path) -> None:
    a, b, c = (logged(log, request(instruction=f"q{i}")) for i in range(3))
    log.add_rater("dr-sheet")
    f = tmp_path / "r.csv"
    f.write_text(
        "run_id,score,hallucination,comment\n"
        f"{a},2,yes,\n"  # line 2: contradicts the rubric
        f"{b},2,yes,SECRET made up a dose\n"  # line 3: explained
        f"{c},1,yes,\n",  # line 4: consistent
        encoding="utf-8",
    )
    report = import_ratings(log, f, default_rater="dr-sheet")
    assert report.imported == 2 and [line for line, _ in report.errors] == [2]
    assert "explain in a comment" in report.errors[0][1] and "SECRET" not in report.errors[0][1]
    assert log.rating_history(a) == []


# -- raters: an import names raters the log lists --------------------------------------------------------------
def test_import_refuses_unknown_raters_unless_asked_to_add_them(log: EvalLog, tmp_path: Path) -> None:
    a, b = logged(log, request(instruction="a")), logged(log, request(instruction="b"))
    log.add_rater("dr-lee")
    f = tmp_path / "r.csv"
    f.write_text(f"run_id,rater,score\n{a},dr-lee,3\n{b},dr-le,2\n", encoding="utf-8")  # line 3: a typo
    report = import_ratings(log, f)
    assert report.imported == 1 and report.errors == [(3, UNKNOWN_RATER)]
    assert [r.name for r in log.raters()] == ["dr-lee"] and log.rating_history(b) == []
    strict = import_ratings(log, f, all_or_nothing=True)
    assert strict.imported == 0 and strict.errors == [(3, UNKNOWN_RATER)]
    added = import_ratings(log, f, add_raters=True)
    assert (added.imported, added.unchanged, added.errors) == (1, 1, [])
    assert [r.name for r in log.raters()] == ["dr-le", "dr-lee"]


def test_cli_import_refuses_unknown_raters_and_adds_them_with_add_raters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    db = tmp_path / "log.db"
    with EvalLog.open(db) as log:
        rid = logged(log)
    f = tmp_path / "r.csv"
    f.write_text(f"run_id,rater,score\n{rid},dr-new,3\n", encoding="utf-8")
    assert main(["log", "import-ratings", str(f), "--db", str(db)]) == 2
    assert "line 2: rater is not in this log's rater list" in capsys.readouterr().err
    assert main(["log", "import-ratings", str(f), "--db", str(db), "--add-raters"]) == 0
    with EvalLog.open(db) as log:
        assert [(r.rater, r.score) for r in log.current_ratings(rid)] == [("dr-new", 3)]


# -- runs that failed (issue #20's rule, asked by the import) -----------------------------------------------------
def test_import_refuses_interrupted_and_empty_answers(log: EvalLog, tmp_path: Path, db_path: Path) -> None:
    m = model()
    interrupted = log.start_run(request(instruction="killed"), m)
    con = sqlite3.connect(db_path)  # what db.mark_interrupted leaves after the process died
    con.execute("UPDATE runs SET status = 'interrupted' WHERE id = ?", (interrupted,))
    con.commit()
    con.close()
    empty = logged(log, request(instruction="cut"), m, answer="  \n", reason=FinishReason.LENGTH)
    failed = log.start_run(request(instruction="crashed"), m)
    log.fail_run(failed, "crashed")
    log.add_rater("dr-sheet")
    f = tmp_path / "r.jsonl"
    f.write_text("".join(f'{{"run_id": {i}, "score": 1}}\n' for i in (interrupted, empty, failed)), encoding="utf-8")
    report = import_ratings(log, f, default_rater="dr-sheet")
    assert report.imported == 0 and [line for line, _ in report.errors] == [1, 2, 3]
    assert all("cannot be rated" in why for _, why in report.errors)
    assert all(log.rating_history(i) == [] for i in (interrupted, empty, failed))


# -- History: a rater sees their own score, never the others' mean and count -------------------------------------
def test_history_shows_the_viewer_their_own_rating_only(log: EvalLog) -> None:
    a, b = logged(log, request(instruction="a")), logged(log, request(instruction="b"))
    log.add_rating(a, "dr-lee", 2)
    log.add_rating(a, "dr-kim", 4)
    log.add_rating(b, "dr-kim", 1)

    def rows(**kw: object) -> list[tuple[int, float | None, int]]:
        return [(v.id, score, n) for v, score, n in log.history_page(RunQuery(**kw))]  # type: ignore[arg-type]

    assert rows(viewer="dr-lee") == [(b, None, 0), (a, 2.0, 1)]
    assert rows(viewer="dr-kim") == [(b, 1.0, 1), (a, 4.0, 1)]
    assert rows(viewer="dr-new") == [(b, None, 0), (a, None, 0)]
    # "Rated" is rated by the viewer: that another rater has rated a run is theirs to know.
    assert rows(viewer="dr-lee", rated=True) == [(a, 2.0, 1)]
    assert rows(viewer="dr-lee", rated=False) == [(b, None, 0)]
    assert log.count_history(RunQuery(viewer="dr-lee", rated=True)) == 1
    # The coordinator's view (no viewer: every rater's mean and count) stays for the statistics.
    assert rows() == [(b, 1.0, 1), (a, 3.0, 2)]

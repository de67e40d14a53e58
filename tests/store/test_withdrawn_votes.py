"""Undoing a Compare vote keeps it, marked withdrawn, and a vote cast after the reveal is never blind
(issue #23; log revision 0006). Win rates count blind votes only."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.core.errors import UsageError
from app.store import EvalLog, db
from app.store.stats import win_rates
from tests.store.helpers import logged, model, request


def _pair(log: EvalLog) -> tuple[int, int]:
    return logged(log, request(), model(0)), logged(log, request(), model(1))


def test_undo_keeps_the_first_vote_and_its_scores_marked_withdrawn(log: EvalLog) -> None:
    a, b = _pair(log)
    log.add_rating(a, "dr-lee", 4)  # an earlier, unrelated rating of A
    log.hold_blind([a, b])
    cid = log.add_comparison(a, b, "dr-lee", "A")
    given = [log.add_rating(a, "dr-lee", 3), log.add_rating(b, "dr-lee", 1)]
    log.undo_vote(cid, given)
    [first] = log.comparisons()
    assert first.id == cid and first.blind and first.withdrawn_at is not None
    hist = log.rating_history(a)
    assert [(r.score, r.is_current, r.withdrawn_at is not None) for r in hist] == [(4, True, False), (3, False, True)]
    assert [(r.score, r.is_current, r.withdrawn_at is not None) for r in log.rating_history(b)] == [(1, False, True)]
    assert log.blinded_runs() == set(), "the vote showed the models: nothing to hide again"
    with pytest.raises(UsageError, match="already withdrawn"):
        log.undo_vote(cid)
    # Voting again on the pair, whatever the caller claims, is not blind.
    again = log.add_comparison(b, a, "dr-lee", "tie", blind=True)
    assert [(c.id, c.blind, c.withdrawn_at is None) for c in log.comparisons()] == [
        (cid, True, False),
        (again, False, True),
    ]
    # A later undo of a re-score makes the earlier, not-withdrawn rating current again, not the withdrawn one.
    rescore = log.add_rating(a, "dr-lee", 2)
    log.undo_vote(again, [rescore])
    assert [r.score for r in log.current_ratings(a)] == [4]


def test_win_rates_count_blind_votes_that_stand(log: EvalLog) -> None:
    a, b = _pair(log)
    c, d = logged(log, request(instruction="x"), model(0)), logged(log, request(instruction="x"), model(1))
    first = log.add_comparison(a, b, "dr-lee", "B")
    log.undo_vote(first)
    log.add_comparison(a, b, "dr-lee", "A")  # after the reveal: not blind
    log.add_comparison(c, d, "dr-lee", "A")  # the one blind vote that stands
    log.add_comparison(c, d, "dr-kim", "B", blind=False)  # a caller that knows the models were shown
    wins = {w.model.split(" ")[0]: (w.wins, w.losses, w.comparisons) for w in win_rates(log)}
    assert wins == {model(0).file_name: (1, 0, 1), model(1).file_name: (0, 1, 1)}


def test_revision_0006_keeps_old_votes_blind_and_downgrade_drops_withdrawn_ones(db_path: Path) -> None:
    with EvalLog.open(db_path) as log:
        a, b = _pair(log)
        kept = log.add_comparison(a, b, "dr-lee", "A")
        undone = log.add_comparison(a, b, "dr-kim", "B")
        log.undo_vote(undone)
        db.downgrade(log.engine, "0005")
    con = sqlite3.connect(db_path)
    assert [r[0] for r in con.execute("SELECT id FROM comparisons")] == [kept]
    assert "blind" not in {r[1] for r in con.execute("PRAGMA table_info(comparisons)")}
    con.close()
    with EvalLog.open(db_path) as log:  # upgraded again: a vote from before 0006 was cast blind
        [c] = log.comparisons()
        assert (c.id, c.blind, c.withdrawn_at) == (kept, True, None)


def test_the_ratings_export_with_history_says_which_were_withdrawn(log: EvalLog) -> None:
    import csv
    import io

    from app.store.export import export

    a, b = _pair(log)
    cid = log.add_comparison(a, b, "dr-lee", "A")
    log.undo_vote(cid, [log.add_rating(a, "dr-lee", 3)])
    log.add_rating(a, "dr-lee", 2)
    out = io.StringIO()
    export(log, out, "csv", kind="ratings", history=True)
    rows = sorted(csv.DictReader(io.StringIO(out.getvalue())), key=lambda r: r["rated_at"])
    assert [(r["score"], r["is_current"], bool(r["withdrawn_at"])) for r in rows] == [
        ("3", "False", True),
        ("2", "True", False),
    ]

"""Runs of a blind comparison stay blinded in the log until the vote, across reopenings (revision 0004)."""

from __future__ import annotations

from pathlib import Path

from app.store import EvalLog, db
from tests.store.helpers import logged, model


def test_runs_stay_blinded_until_the_vote_and_not_after_undo(db_path: Path) -> None:
    with EvalLog.open(db_path) as log:
        a, b, other = logged(log, m=model(0)), logged(log, m=model(1)), logged(log, m=model(2))
        log.hold_blind([a])
        log.hold_blind([a, b])  # recording twice is harmless
        assert log.blinded_runs() == {a, b}
    with EvalLog.open(db_path) as log:  # an app restart
        assert log.blinded_runs() == {a, b}
        cid = log.add_comparison(a, b, "dr-lee", "A")
        assert log.blinded_runs() == set()
        log.undo_vote(cid)
        # The vote showed the models: nothing is blinded again, and the withdrawn vote is kept (issue #23).
        assert log.blinded_runs() == set() and [c.withdrawn_at is not None for c in log.comparisons(a)] == [True]
        log.add_comparison(a, b, "dr-lee", "B")
        assert log.blinded_runs() == set() and other not in log.blinded_runs()


def test_a_run_uuid_works_too_and_the_table_goes_with_a_downgrade(db_path: Path) -> None:
    with EvalLog.open(db_path) as log:
        a = logged(log)
        uuid = log.get_run(a).uuid  # type: ignore[union-attr]
        log.hold_blind([uuid])
        assert log.blinded_runs() == {a}
        db.downgrade(log.engine, "0003")  # the revision before this table
        db.migrate(log.engine, db_path)
        assert log.blinded_runs() == set()


def test_release_gives_up_the_blinding_of_the_runs_named(log: EvalLog) -> None:
    a, b = logged(log, m=model(0)), logged(log, m=model(1))
    log.hold_blind([a, b])
    log.release_blind([a])
    assert log.blinded_runs() == {b}

"""Claiming batch items in the log, so two batches on one log never run an item twice (issue 9, item 3).

A run with a resume key is its item's claim. ``EvalLog.start_run`` checks, inside its own write
transaction (``BEGIN IMMEDIATE``: SQLite lets one writer at a time through), that no other run holds the
key: one that produced an answer (``finished`` with ``stop`` or ``length``) or one still ``started`` by a
live process. The check and the insert are one transaction, so two batches racing for an item cannot both
get it; the loser gets ``ItemClaimed`` and skips the item. No schema change is needed: the resume key is
already indexed.

A ``started`` claim left by a process of this host that has died is released (marked ``interrupted``) on
the spot, so a killed batch's items are picked up by the next one. Runs that failed or were cancelled or
interrupted hold no claim: a resumed batch tries them again.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.store.db import pid_alive
from app.store.models import Run
from app.store.rules import answered_or_running


class ItemClaimed(Exception):
    """Another run already holds this resume key (``done``: it has an answer; else it is running)."""

    def __init__(self, key: str, done: bool) -> None:
        super().__init__(f"item {key[:12]} is {'already done' if done else 'being run by another process'}")
        self.key = key
        self.done = done


def _alive(pid: int | None) -> bool:
    return pid is not None and pid_alive(pid)
    return True


def check_unclaimed(s: Session, key: str, host: str, pid: int) -> None:
    """Raise ItemClaimed if a run holds ``key``; call inside the write transaction that inserts the run."""
    rows = s.execute(
        select(Run.id, Run.status, Run.pid, Run.host).where(
            Run.resume_key == key,
            answered_or_running(),
        )
    ).all()
    for r in rows:
        if r.status == "finished":
            raise ItemClaimed(key, done=True)
    for r in rows:
        if r.host == host and r.pid != pid and not _alive(r.pid):
            s.execute(
                update(Run)
                .where(Run.id == r.id, Run.status == "started")
                .values(status="interrupted", error="the process running it ended before it finished")
            )
            continue
        raise ItemClaimed(key, done=False)

"""What every part of the evaluation log shares: the open database and its one transaction helper.

``EvalLog`` (``app/store/log.py``) is composed of the parts in ``runs.py``, ``ratings.py`` and
``reads.py``; each is a mixin over this base, so they reach the same sessions and caches through ``self``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from app.core.errors import UsageError
from app.store import db
from app.store.models import Run

RunRef = int | str
"""A run's integer id or its uuid."""
SQLITE_INT_MAX = 2**63 - 1
"""The largest integer SQLite stores (a signed 64-bit INTEGER): a larger number is no run id."""


def run_number(ref: str) -> int | None:
    """The run id a reference spells in ASCII digits; None for anything else (a uuid, other text).

    ``str.isdigit`` is true for "²" (``int`` then raises) and "١" (``int`` reads 1: another run's id), and a
    number past SQLite's integers overflowed the driver (issue 21): none of those is an id. ValueError for
    digits beyond ``SQLITE_INT_MAX``.
    """
    ref = ref.strip()
    if not (ref.isascii() and ref.isdigit()):
        return None
    # The length test first: int() of over 4,300 digits raises a ValueError of its own.
    if len(ref) > len(str(SQLITE_INT_MAX)) or int(ref) > SQLITE_INT_MAX:
        raise ValueError("too large for a run id")
    return int(ref)


class LogBase:
    """The open database of an evaluation log. Thread-safe for the usual pattern (one session per call)."""

    def __init__(self, path: Path, engine: Engine, store_note_text: bool = True) -> None:
        self.path = path
        self.engine = engine
        self.store_note_text = store_note_text
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(db.writer(engine), expire_on_commit=False)
        self._model_ids: dict[str, int] = {}
        self._note_ids: dict[str, int] = {}
        self._pid = os.getpid()
        self._host = socket.gethostname()

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """One write-locked transaction (``BEGIN IMMEDIATE``), committed at the end of the block and rolled
        back on an exception; SQLite errors anywhere in it come out as StoreError (exit code 6)."""
        with db.translated(self.path), self._write.begin() as s:
            yield s

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read session; SQLite errors anywhere in it come out as StoreError."""
        with db.translated(self.path), self._read() as s:
            yield s

    def _run_id(self, s: Session, ref: RunRef) -> int:
        """The row id of a run given by id or uuid; UsageError naming the reference when there is none."""
        missing = UsageError(f"no run {str(ref)[:40]!r} in the log")
        try:
            number = ref if isinstance(ref, int) else run_number(ref)
        except ValueError:
            raise missing from None
        if number is None:
            rid = s.scalar(select(Run.id).where(Run.uuid == ref))
        elif abs(number) <= SQLITE_INT_MAX:
            rid = s.scalar(select(Run.id).where(Run.id == number))
        else:
            rid = None
        if rid is None:
            raise missing
        return rid

    def integrity_check(self) -> list[str]:
        with db.translated(self.path), self.engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]


__all__ = ["SQLITE_INT_MAX", "LogBase", "RunRef", "run_number"]

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
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            rid = s.scalar(select(Run.id).where(Run.id == int(ref)))
        else:
            rid = s.scalar(select(Run.id).where(Run.uuid == ref))
        if rid is None:
            raise UsageError(f"no run {ref!r} in the log")
        return rid

    def integrity_check(self) -> list[str]:
        with db.translated(self.path), self.engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]


__all__ = ["LogBase", "RunRef"]

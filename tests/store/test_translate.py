"""``db.translate``: every SQLite error becomes one clear StoreError (exit 6), never SQL (issue 21)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import exc

from app.core.errors import StoreError
from app.store import db


def _sqlite_error(message: str, code: int | None = None) -> sqlite3.OperationalError:
    e = sqlite3.OperationalError(message)
    if code is not None:
        e.sqlite_errorcode = code  # what the driver sets: SQLite's extended result code
    return e


@pytest.fixture
def free_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The free space statvfs reports for the log's directory (set ``free_bytes[0]``)."""
    free = [10 << 30]
    monkeypatch.setattr(os, "statvfs", lambda _p: SimpleNamespace(f_bavail=free[0] // 4096, f_frsize=4096))
    return free


SQLITE_IOERR_WRITE = 778
SQLITE_IOERR_SHMOPEN = 4618


@pytest.mark.parametrize(
    "error",
    [
        _sqlite_error("disk I/O error"),
        _sqlite_error("disk I/O error", SQLITE_IOERR_WRITE),
        _sqlite_error("disk I/O error", SQLITE_IOERR_SHMOPEN),
    ],
    ids=["message-only", "ioerr-write", "ioerr-shmopen"],
)
def test_a_disk_io_error_with_no_space_left_is_a_full_disk(tmp_path: Path, free_bytes: list[int], error) -> None:
    free_bytes[0] = 0
    assert "is full" in str(db.translate(tmp_path / "log.db", error))
    free_bytes[0] = 10 << 30
    assert "is full" not in str(db.translate(tmp_path / "log.db", error)), "an I/O error with space left is not"


def test_sqlite_full_by_extended_code_or_message(tmp_path: Path, free_bytes: list[int]) -> None:
    for e in (_sqlite_error("database or disk is full"), _sqlite_error("x", sqlite3.SQLITE_FULL)):
        assert "is full" in str(db.translate(tmp_path / "log.db", e))


def test_a_missing_table_is_a_damaged_log_and_the_sql_stays_out(tmp_path: Path) -> None:
    wrapped = exc.OperationalError("SELECT note_text FROM runs", {}, _sqlite_error("no such table: runs"))
    msg = str(db.translate(tmp_path / "log.db", wrapped))
    assert "damaged, or not an Asclepius log" in msg and "no such table: runs" in msg
    assert "SELECT" not in msg


def test_a_raw_driver_error_is_translated_too(tmp_path: Path) -> None:
    """Code on the raw sqlite3 connection (WAL switch, bulk import) raised past SQLAlchemy: exit 1 before."""
    with pytest.raises(StoreError, match="damaged"), db.translated(tmp_path / "log.db"):
        raise _sqlite_error("no such column: score")

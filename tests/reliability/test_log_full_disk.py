"""A log on a disk with 0 bytes free is reported as a full disk, exit 6 (issue 21: it read as "disk I/O
error", and a new log's raw sqlite3 error went past the translation, exit 1). A real full disk: a tmpfs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.errors import StoreError
from app.store import EvalLog
from tests.reliability.tmpfs import small_tmpfs
from tests.store.helpers import logged


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """4 MiB: room for a log, then filled."""
    with small_tmpfs(tmp_path, "4m") as mnt:
        yield mnt


def _fill(mnt: Path) -> None:
    with pytest.raises(OSError, match="No space left"), open(mnt / "filler", "wb") as fh:
        fh.write(b"x" * (8 << 20))
    st = os.statvfs(mnt)
    assert st.f_bavail * st.f_frsize == 0


def test_a_new_log_on_a_full_disk_is_refused_as_a_full_disk(small_disk: Path, monkeypatch, capsys) -> None:
    from app.cli.main import main

    _fill(small_disk)
    monkeypatch.setenv("ASCLEPIUS_HOME", str(small_disk.parent / "home"))
    (small_disk.parent / "in.csv").write_text("note,task,instruction\nA note.,qa,Why?\n")
    rc = main(["batch", str(small_disk.parent / "in.csv"), "--db", str(small_disk / "batch.db")])
    err = capsys.readouterr().err
    assert "the disk holding the evaluation log" in err and "is full" in err, err
    assert rc == 6, err


def test_an_existing_log_on_a_full_disk_says_full_not_disk_io_error(small_disk: Path) -> None:
    with EvalLog.open(small_disk / "log.db") as log:
        logged(log)
    _fill(small_disk)
    with pytest.raises(StoreError) as err:
        EvalLog.open(small_disk / "log.db").close()
    assert "is full" in str(err.value) and "cannot be read" not in str(err.value), err.value

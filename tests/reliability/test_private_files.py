"""The one private-file writer (issue 9.2) and full-disk reports (issue 9.14)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.core.config import AppConfig, Paths, save_config
from app.core.privatefile import OutputError, private_file, write_private
from tests.reliability.tmpfs import small_tmpfs


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_existing_world_readable_file_ends_private(tmp_path: Path) -> None:
    target = tmp_path / "export.csv"
    target.write_text("old")
    target.chmod(0o644)
    with private_file(target) as fh:
        fh.write("patient text")
    assert target.read_text() == "patient text"
    assert mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"], "no temporary file left"


def test_symlink_is_refused_unless_asked(tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared" / "world.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_text("theirs")
    elsewhere.chmod(0o644)
    link = tmp_path / "out.csv"
    link.symlink_to(elsewhere)
    with pytest.raises(OutputError, match="symbolic link"), private_file(link) as fh:
        fh.write("patient text")
    assert elsewhere.read_text() == "theirs" and link.is_symlink()
    with private_file(link, follow_symlinks=True) as fh:
        fh.write("patient text")
    assert link.is_symlink() and elsewhere.read_text() == "patient text" and mode(elsewhere) == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("previous export")
    with pytest.raises(RuntimeError), private_file(target) as fh:
        fh.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_directories_the_app_creates_are_private_from_the_root(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "fresh" / "home"
    monkeypatch.setenv("ASCLEPIUS_HOME", str(home))
    save_config(Paths.default(), AppConfig())
    for d in (tmp_path / "fresh", home, home / "config"):
        assert mode(d) == 0o700, d
    assert mode(home / "config" / "config.json") == 0o600


def test_parents_of_a_new_db_are_private(tmp_path: Path) -> None:
    from app.store import EvalLog

    EvalLog.open(tmp_path / "a" / "b" / "log.db").close()
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o700


def test_config_false_stays_false(tmp_path: Path) -> None:
    from app.core.config import load_config

    paths = Paths(tmp_path / "d", tmp_path / "c")
    write_private(paths.config_file, '{"store_note_text": false, "generation": {"temperature": 0}}')
    config = load_config(paths)
    assert config.store_note_text is False and config.generation.temperature == 0


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A 64 KiB tmpfs: a real ENOSPC. Needs root and mount; skipped where the sandbox forbids it."""
    with small_tmpfs(tmp_path, "64k") as mnt:
        yield mnt


def test_full_disk_is_reported_as_such_for_an_export(tiny_tmpfs: Path) -> None:
    target = tiny_tmpfs / "export.csv"
    target.write_text("previous")
    with pytest.raises(OutputError, match="disk is full") as err, private_file(target) as fh:
        fh.write("x" * (1 << 20))
    assert "previous file there is unchanged" in str(err.value)
    assert target.read_text() == "previous"
    assert [p.name for p in tiny_tmpfs.iterdir()] == ["export.csv"]


def test_full_database_is_reported_as_a_full_disk(tmp_path: Path) -> None:
    """SQLITE_FULL, made real by capping the database's page count (what a full disk looks like to SQLite)."""
    from sqlalchemy import event

    from app.core.errors import StoreError
    from app.store import EvalLog
    from tests.store.helpers import logged, request

    with EvalLog.open(tmp_path / "log.db") as log:
        logged(log)
        with log.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        log.engine.pool.dispose()
        event.listen(log.engine, "connect", lambda con, _r: con.execute(f"PRAGMA max_page_count = {pages + 1}"))
        with pytest.raises(StoreError, match="is full") as err:
            for i in range(50):
                logged(log, request(instruction=f"q{i}", note="A long note. " * 2000 + str(i)))
        assert "disk I/O" not in str(err.value)

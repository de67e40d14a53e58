"""Permissions, refusals, locks, concurrent writers, interrupted runs and SIGKILL, with real processes."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from app.core.errors import StoreError
from app.store import EvalLog
from tests.store.helpers import logged, model, request

HELPERS = "from tests.store.helpers import logged, model, request, result\nfrom app.store import EvalLog\n"


def spawn(code: str, *args: str, honour_permissions: bool = False) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", HELPERS + textwrap.dedent(code), *args]
    if honour_permissions and os.geteuid() == 0:
        # Root ignores permission bits through CAP_DAC_OVERRIDE; drop it so a 0555 directory is read-only.
        capsh = shutil.which("capsh")
        if capsh is None:
            pytest.skip("running as root without capsh: cannot make a location read-only for root")
        drop = "--drop=cap_dac_override,cap_dac_read_search"
        argv = [capsh, drop, "--", "-c", 'exec "$0" "$@"', *argv]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )


REFUSE = """
    import sys
    from app.core.errors import StoreError
    try:
        EvalLog.open(sys.argv[1])
    except StoreError as e:
        print("REFUSED", e)
"""


def test_files_are_private(db_path: Path) -> None:
    with EvalLog.open(db_path) as log:
        logged(log)
        for p in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700


def test_wal_and_foreign_keys_are_on(log: EvalLog) -> None:
    with log.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2000


def test_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    EvalLog.open(tmp_path / "a.db").close()
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a.db").stat().st_mode) == 0o600


def test_not_a_database_is_refused_untouched(db_path: Path) -> None:
    db_path.parent.mkdir()
    db_path.write_bytes(b"PK\x03\x04 this is a zip file, not a log" * 100)
    before = db_path.read_bytes()
    with pytest.raises(StoreError, match=r"not a SQLite database.*left untouched"):
        EvalLog.open(db_path)
    assert db_path.read_bytes() == before
    assert sorted(p.name for p in db_path.parent.iterdir()) == ["asclepius.db"]


def test_corrupt_pages_are_refused_untouched(db_path: Path) -> None:
    with EvalLog.open(db_path) as log:
        for i in range(200):
            logged(log, request(instruction=f"question {i} " + "x" * 200))
    # Closing the last connection checkpointed the WAL into the main file; now damage pages 3 onwards.
    data = bytearray(db_path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for off in range(2 * page, len(data), page):
        data[off : off + 64] = b"\xff" * 64
    db_path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"corrupt.*left untouched"):
        EvalLog.open(db_path)
    assert db_path.read_bytes() == bytes(data)


def test_foreign_sqlite_database_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir()
    con = sqlite3.connect(db_path)
    con.execute("CREATE TABLE photos (id INTEGER)")
    con.commit()
    con.close()
    before = db_path.read_bytes()
    with pytest.raises(StoreError, match="not an Asclepius evaluation log"):
        EvalLog.open(db_path)
    assert db_path.read_bytes() == before


def test_read_only_location_is_reported_before_any_work(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    p = spawn(REFUSE, str(ro / "sub" / "asclepius.db"), honour_permissions=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.startswith("REFUSED") and "read-only" in out, out
    assert list(ro.iterdir()) == []


def test_read_only_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with EvalLog.open(path) as log:
        logged(log)
    path.chmod(0o400)
    before = path.read_bytes()
    p = spawn(REFUSE, str(path), honour_permissions=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.startswith("REFUSED") and "read-only" in out, out
    assert path.read_bytes() == before


LOCKER = """
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.execute("COMMIT")
"""


def test_locked_log_is_waited_on_then_reported(log: EvalLog) -> None:
    rid = logged(log)
    locker = spawn(LOCKER, str(log.path), "30")
    try:
        assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
        slow = EvalLog.open(log.path, timeout_s=0.5)
        t0 = time.monotonic()
        with pytest.raises(StoreError, match="locked by another process"):
            slow.add_rating(rid, "dr-lee", 3)
        assert time.monotonic() - t0 >= 0.45
        slow.close()
    finally:
        locker.kill()
        locker.wait()
    assert log.rating_history(rid) == []


def test_short_lock_is_waited_out(log: EvalLog) -> None:
    rid = logged(log)
    locker = spawn(LOCKER, str(log.path), "0.7")
    assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
    t0 = time.monotonic()
    log.add_rating(rid, "dr-lee", 3)  # the fixture's timeout is 2 s
    assert time.monotonic() - t0 >= 0.3
    assert locker.wait(timeout=10) == 0
    assert [r.score for r in log.current_ratings(rid)] == [3]


def test_two_processes_write_at_once(db_path: Path) -> None:
    EvalLog.open(db_path).close()
    writer = """
        import sys
        log = EvalLog.open(sys.argv[1], timeout_s=20)
        for i in range(40):
            rid = logged(log, request(instruction=f"{sys.argv[2]} {i}"), model(int(sys.argv[2])))
            log.add_rating(rid, f"rater-{sys.argv[2]}", 1 + i % 4)
        print("ok")
    """
    procs = [spawn(writer, str(db_path), str(k)) for k in (0, 1)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out == "ok\n", err
    with EvalLog.open(db_path) as log:
        assert log.count_runs() == 80
        assert sorted((m.file_name, m.runs) for m in log.models()) == [
            ("asclepius-m0.Q4_K_M.gguf", 40),
            ("asclepius-m1.Q4_K_M.gguf", 40),
        ]
        assert [r.ratings for r in log.raters()] == [40, 40]
        assert log.integrity_check() == ["ok"]


def test_runs_of_a_dead_process_become_interrupted(db_path: Path) -> None:
    with EvalLog.open(db_path) as log:
        finished = logged(log)
        dead = log.start_run(request(instruction="dead"), model())
        alive = log.start_run(request(instruction="alive"), model())
    gone = subprocess.Popen(["true"])
    gone.wait()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        con = sqlite3.connect(db_path)
        con.execute("UPDATE runs SET pid = ? WHERE id = ?", (gone.pid, dead))
        con.execute("UPDATE runs SET pid = ? WHERE id = ?", (sleeper.pid, alive))
        con.commit()
        con.close()
        with EvalLog.open(db_path) as log:
            status = {rid: log.get_run(rid).status for rid in (finished, dead, alive)}  # type: ignore[union-attr]
            assert status == {finished: "finished", dead: "interrupted", alive: "started"}
            assert "ended before it finished" in (log.get_run(dead).error or "")  # type: ignore[union-attr]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sigkill_while_writing_loses_no_finished_run(db_path: Path) -> None:
    EvalLog.open(db_path).close()
    writer = """
        import sys
        log = EvalLog.open(sys.argv[1])
        i = 0
        while True:
            req, m = request(instruction=f"q{i}"), model()
            rid = log.start_run(req, m)
            log.finish_run(rid, result(req, m))
            print(req.run_uuid, flush=True)
            i += 1
    """
    p = spawn(writer, str(db_path))
    assert p.stdout is not None
    reported = [p.stdout.readline().strip() for _ in range(30)]
    os.kill(p.pid, signal.SIGKILL)
    rest, _ = p.communicate(timeout=30)
    reported += rest.split()
    assert p.returncode == -signal.SIGKILL
    with EvalLog.open(db_path) as log:
        assert log.integrity_check() == ["ok"]
        for uuid in reported:
            run = log.get_run(uuid)
            assert run is not None and run.status == "finished", uuid
        # At most the run in flight at the kill is left, and it is marked interrupted, not lost.
        started = log.count_runs() - len(reported)
        assert started in (0, 1)
        assert log.count_runs() == log.count_runs(_status("finished")) + log.count_runs(_status("interrupted"))


def _status(s: str):  # type: ignore[no-untyped-def]
    from app.store import RunFilter

    return RunFilter(status=s)

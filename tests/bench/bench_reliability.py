"""Reliability benchmarks (not collected by pytest; run by hand):

    .venv/bin/python tests/bench/bench_reliability.py                 # all parts, default sizes
    .venv/bin/python tests/bench/bench_reliability.py --rows 1000000 --compare-rows 3000 --batch-rows 1000000

1. import-ratings, side by side on the same file and log, sides interleaved over 3 repeats (medians):
   the previous algorithm (one transaction, a lookup and a savepoint per row: issue 9.9) against the
   chunked bulk import of app.store.ratings_import. Reports rows/s of each and the ratio.
2. import-ratings of ``--rows`` rows (target >= 20,000 rows/s) while another process logs a run every
   50 ms through the public API, as ``ask`` does: reports that writer's failures and its worst wait.
3. A ``--batch-rows`` valid batch input: time and peak memory to parse it before the first item runs
   (target < 5 s and < 300 MB; issue 9.14), measured in a fresh process.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.store import EvalLog  # noqa: E402
from app.store.ratings_import import import_ratings  # noqa: E402
from tests.store.helpers import logged  # noqa: E402

RATERS = 10


def make_log(path: Path, runs: int) -> None:
    """A log with ``runs`` finished runs (cloned in SQL from one logged through the API)."""
    with EvalLog.open(path) as log:
        logged(log)
    con = sqlite3.connect(path)
    cols = [r[1] for r in con.execute("PRAGMA table_info(runs)") if r[1] not in ("id", "uuid")]
    row = con.execute(f"SELECT {', '.join(cols)} FROM runs WHERE id = 1").fetchone()
    con.executemany(
        f"INSERT INTO runs (uuid, {', '.join(cols)}) VALUES (?, {', '.join('?' * len(cols))})",
        ((str(uuid.uuid4()), *row) for _ in range(runs - 1)),
    )
    con.commit()
    con.close()


def make_ratings(path: Path, rows: int, runs: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.write("run_id,rater,score,hallucination,comment\n")
        for i in range(rows):
            fh.write(f"{i % runs + 1},rater {i // runs % RATERS},{i % 4 + 1},no,comment {i}\n")


def old_import(log: EvalLog, path: Path) -> int:
    """The algorithm this replaces: one transaction; per row a lookup, a savepoint and ORM inserts."""
    from sqlalchemy import select

    from app.core.records import read_records
    from app.store.models import Rater, Rating
    from app.store.ratings import NewRating

    _names, records = read_records(path, max_bytes=1 << 30, what="ratings file")
    n = 0
    with log.write_session() as s:
        for _line, rec in records:
            r = NewRating(int(rec["run_id"]), rec["rater"], int(rec["score"]), False, rec["comment"] or None)
            rid = log._run_id(s, r.run)
            s.execute(
                select(Rating.score)
                .join(Rater, Rating.rater_id == Rater.id)
                .where(Rating.run_id == rid, Rater.name == r.rater, Rating.is_current.is_(True))
            ).first()
            with s.begin_nested():
                log.add_rating_in(s, r)
            n += 1
    return n


def part1(tmp: Path, rows: int, repeats: int = 3) -> dict[str, float]:
    base = tmp / "p1.db"
    make_log(base, max(1, rows // RATERS))
    csv = tmp / "p1.csv"
    make_ratings(csv, rows, max(1, rows // RATERS))
    times: dict[str, list[float]] = {"previous": [], "chunked": []}
    for _ in range(repeats):
        for side in ("previous", "chunked"):  # interleaved: both sides see the same machine state
            db = tmp / f"p1-{side}.db"
            shutil.copyfile(base, db)
            with EvalLog.open(db) as log:
                t0 = time.perf_counter()
                if side == "previous":
                    n = old_import(log, csv)
                else:
                    rep = import_ratings(log, csv, add_raters=True)
                    n = rep.imported
                    assert not rep.errors, rep.errors[:3]
                times[side].append(time.perf_counter() - t0)
            assert n == rows, (side, n)
            db.unlink()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rows": rows,
        "previous_rows_per_s": rows / med["previous"],
        "chunked_rows_per_s": rows / med["chunked"],
        "speedup": med["previous"] / med["chunked"],
    }


WRITER = """
import sys, time, json
from app.store import EvalLog
from tests.store.helpers import model, request, result
db, stop = sys.argv[1], sys.argv[2]
waits, failures = [], []
import os
with EvalLog.open(db) as log:  # the default 10 s busy timeout, as ask uses
    m = model()
    while not os.path.exists(stop):
        req = request(instruction="during import")
        t0 = time.perf_counter()
        try:
            rid = log.start_run(req, m)
            log.finish_run(rid, result(req, m))
        except Exception as e:
            failures.append(type(e).__name__ + ": " + str(e)[:200])
        waits.append(time.perf_counter() - t0)
        time.sleep(0.05)
print(json.dumps({"writes": len(waits), "failures": failures, "max_wait_s": max(waits or [0]),
                  "median_wait_s": sorted(waits)[len(waits) // 2] if waits else 0}))
"""


def part2(tmp: Path, rows: int) -> dict[str, object]:
    import json

    db = tmp / "p2.db"
    runs = max(1, rows // RATERS)
    make_log(db, runs)
    csv = tmp / "p2.csv"
    make_ratings(csv, rows, runs)
    stop = tmp / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(stop)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    time.sleep(2.0)  # the writer is up and writing
    with EvalLog.open(db) as log:
        t0, c0 = time.perf_counter(), time.process_time()
        rep = import_ratings(log, csv, add_raters=True)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    stop.touch()
    out, _ = writer.communicate(timeout=60)
    w = json.loads(out)
    return {
        "rows": rows, "seconds": dt, "rows_per_s": rep.imported / dt, "rows_per_cpu_s": rep.imported / cpu,
        "imported": rep.imported, "writer": w,
    }  # fmt: skip


PARSE = """
import sys, time

def peak_mb():
    # VmHWM: this process image's peak RSS (ru_maxrss would carry the forking parent's peak across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

t0 = time.perf_counter()
from pathlib import Path
from app.core.config import GenerationDefaults
from app.core.hashing import sha256_file
from app.cli.batch.items import count_lines, group_by_note, item_key, windows
from app.service import AskService
requests = AskService(lambda _m: None, None, GenerationDefaults())  # requests only, as the batch makes them
sha256_file(Path(sys.argv[1])), count_lines(Path(sys.argv[1]))  # what the batch does before its first window
stream = windows(Path(sys.argv[1]))
items, errors = next(stream)
keys = [item_key("0" * 64, requests.request(it.note, it.task, it.instruction), it) for it in group_by_note(items)]
first_s = time.perf_counter() - t0
first_mb = peak_mb()
n = len(items)
for items, errors in stream:  # the rest of the file, as the batch reads it
    n += len(items)
print(n, first_s, first_mb, time.perf_counter() - t0, peak_mb())
"""


def part3(tmp: Path, rows: int) -> dict[str, float]:
    src = tmp / "batch.csv"
    notes = [f"Patient {i} was admitted with pneumonia and treated with amoxicillin 500 mg." for i in range(1000)]
    with src.open("w", encoding="utf-8") as fh:
        fh.write("id,note,task,instruction\n")
        for i in range(rows):
            fh.write(f"{i},{notes[i % len(notes)]},qa,What medication was given? ({i % 7})\n")
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PARSE), str(src)], cwd=ROOT, capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=True,
    ).stdout.split()  # fmt: skip
    return {
        "rows": rows,
        "items": int(out[0]),
        "first_item_ready_s": float(out[1]),
        "peak_mb_at_first_item": float(out[2]),
        "whole_file_streamed_s": float(out[3]),
        "peak_mb_whole_file": float(out[4]),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--compare-rows", type=int, default=3000)
    ap.add_argument("--batch-rows", type=int, default=1_000_000)
    ap.add_argument("--parts", default="123")
    args = ap.parse_args()
    print(f"# {platform.machine()}, {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "1" in args.parts:
            print("1. import-ratings side by side:", part1(tmp, args.compare_rows), flush=True)
        if "2" in args.parts:
            print("2. import-ratings beside a writer:", part2(tmp, args.rows), flush=True)
        if "3" in args.parts:
            print("3. batch input before the first item (streamed):", part3(tmp, args.batch_rows), flush=True)


if __name__ == "__main__":
    main()

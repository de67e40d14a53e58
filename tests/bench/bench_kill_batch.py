"""Repeated SIGKILLs of a real batch on the demo model: is any run lost or run twice?

A batch of N items is started, killed with SIGKILL after a random number of newly finished items (1..3),
started again, killed again, ... until a run completes without being killed. Afterwards every item must have
exactly one finished run (none lost, none duplicated) and the log must pass SQLite's integrity check; runs a
kill interrupted are left as ``started``/``interrupted`` rows, never as a second finished run.

Rerun: ``PYTHONPATH=$PWD .venv/bin/python tests/bench/bench_kill_batch.py [--kills 30] [--items 60]``
(prints the figures, then one JSON line).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.store.test_batch import finished_count  # noqa: E402  (finished runs in a log, 0 before it exists)

NOTES = [
    "Patient admitted with pneumonia. Treated with ceftriaxone 1 g daily. Discharged on day 4.",
    "Chest pain ruled out for MI. Troponin negative x2. Started aspirin 81 mg daily.",
    "Hip fracture repaired. Enoxaparin 40 mg daily for 28 days. Physical therapy arranged.",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--items", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        inp, db = tmp / "in.jsonl", tmp / "log.db"
        inp.write_text(
            "".join(
                json.dumps({"id": f"i{k}", "note": NOTES[k % 3], "task": "qa", "instruction": f"Question {k}?"}) + "\n"
                for k in range(args.items)
            ),
            encoding="utf-8",
        )
        env = {**os.environ, "ASCLEPIUS_HOME": str(tmp / "home"), "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "tests.store.cli_runner", "batch", str(inp), "--db", str(db),
               "--max-tokens", "3", "--threads", "2"]  # fmt: skip
        kills, t0 = 0, time.monotonic()
        while True:
            before = finished_count(db)
            if kills >= args.kills or before >= args.items - 1:  # the last item is left to an unkilled run
                last = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=False)
                assert last.returncode == 0, last.stderr[-2000:]
                break
            target = min(args.items - 1, before + rng.randint(1, 3))
            p = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            while finished_count(db) < target and p.poll() is None:
                time.sleep(0.02)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                kills += 1
        con = sqlite3.connect(db)
        per_key = dict(
            con.execute("SELECT resume_key, count(*) FROM runs WHERE status = 'finished' GROUP BY resume_key")
        )
        statuses = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        con.close()
        lost = args.items - len(per_key)
        duplicated = sum(n - 1 for n in per_key.values() if n > 1)
        print(f"{kills} SIGKILLs of a {args.items}-item batch in {time.monotonic() - t0:.0f} s")
        print(f"finished items {len(per_key)} / {args.items}: lost {lost}, run twice {duplicated}")
        print(f"run rows by status: {statuses}; integrity_check: {integrity}")
        print(json.dumps({"kills": kills, "items": args.items, "lost": lost, "duplicated": duplicated,
                          "statuses": statuses, "integrity": integrity}))  # fmt: skip


if __name__ == "__main__":
    main()

"""A batch on the demo model: local parallel vs local sequential, and local vs llama.cpp's server on loopback.

Three sides, each a real ``asclepius batch`` process over the same input into a fresh log (so nothing is
skipped as already done), with the kept note states deleted first (every side reads every note):

* ``local-parallel``: the local engine, each note's questions decoded together (``--parallel`` default);
* ``local-sequential``: the local engine, one answer at a time (``--parallel 1``);
* ``remote``: ``--endpoint`` to ``python -m llama_cpp.server`` with the same model on 127.0.0.1, started once
  before the timings (its model load is not counted; the local sides' is), ``--concurrency 4``.

Sides alternate their order every repeat (so load on the shared machine hits each alike); the figures are
medians, and the ratios are medians of the per-repeat ratios. The remote side is a report, not a target:
server and client share this machine, and llama-cpp-python's server decodes one request at a time.

The input: ``--items`` questions (default 200) over ``--notes`` MTS-Dialog note sections (default 25; the
sections of 300-1,500 characters, in file order, the validation set's then the training set's), each note
asked each task's standard instruction in turn.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_batch.py                       # 200 items, 3 repeats
    PYTHONPATH=. .venv/bin/python tests/bench/bench_batch.py --items 24 --notes 3 --repeats 1   # quick
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from resources import TASKS  # noqa: E402

NOTES_DIR = ROOT.parent / "shared" / "data" / "notes"
# the validation set first (what the earlier runs used), then the training set: the validation set has only
# 21 sections of 300-1,500 characters, fewer than the default 25 notes
DATA = (NOTES_DIR / "mts_dialog_ValidationSet.csv", NOTES_DIR / "mts_dialog_TrainingSet.csv")
SIDES = ("local-parallel", "local-sequential", "remote")


def write_items(path: Path, n_items: int, n_notes: int) -> int:
    notes: list[str] = []
    for src in DATA:
        with src.open(encoding="utf-8", newline="") as fh:
            notes += [r["section_text"] for r in csv.DictReader(fh) if 300 <= len(r["section_text"]) <= 1500]
    notes = notes[:n_notes]
    if len(notes) < n_notes:
        raise SystemExit(f"only {len(notes)} notes of 300-1,500 characters in {', '.join(map(str, DATA))}")
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "note", "task", "instruction"])
        for i in range(n_items):  # note by note: each note's questions together, as batch groups them
            note = i * n_notes // n_items
            task = TASKS[i % len(TASKS)]
            w.writerow([f"i{i}", notes[note], task.name, task.standard_instruction])
    return len(notes)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_path: str, threads: int, logf: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1", "--port",
            str(port), "--n_ctx", "4096", "--n_threads", str(threads), "--n_threads_batch", str(threads),
            "--model_alias", "demo", "--interrupt_requests", "False"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=logf.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"llama_cpp.server exited; see {logf}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("llama_cpp.server did not start")


def run_side(side: str, items: Path, work: Path, home: Path, url: str, args: argparse.Namespace) -> dict[str, float]:
    db = work / f"{side}-{time.time_ns()}.db"
    shutil.rmtree(home / "data" / "kvstate", ignore_errors=True)  # every side reads every note
    argv = [sys.executable, "-m", "app.cli.main", "batch", str(items), "--db", str(db), "--prompt-style", "plain-qa",
            "--max-tokens", str(args.max_tokens), "--temperature", "0"]  # fmt: skip
    if side == "local-parallel":
        argv += ["--threads", str(args.threads)]
    elif side == "local-sequential":
        argv += ["--threads", str(args.threads), "--parallel", "1"]
    else:
        argv += ["--endpoint", url, "--endpoint-model", "demo", "--concurrency", str(args.concurrency)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASCLEPIUS_HOME": str(home)}
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{side} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    con = sqlite3.connect(db)
    n, tokens = con.execute(
        "SELECT COUNT(*), COALESCE(SUM(completion_tokens), 0) FROM runs WHERE finish_reason IN ('stop', 'length')"
    ).fetchone()
    con.close()
    if n != args.items:
        raise SystemExit(f"{side}: {n} answers for {args.items} items")
    return {"wall_s": wall, "answers": n, "completion_tokens": tokens, "items_per_s": n / wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=200)
    p.add_argument("--notes", type=int, default=25)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    home = work / "home"
    env = {**os.environ, "ASCLEPIUS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    model_path = subprocess.run(
        [sys.executable, "-c", "from app.core.config import Paths; from app.core.models import Registry; "
         "print(Registry(Paths.default()).ensure_demo().path)"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()  # fmt: skip
    items = work / "items.csv"
    n_notes = write_items(items, args.items, args.notes)
    server, url = start_server(model_path, args.threads, work / "server.log")
    results: dict[str, list[dict[str, float]]] = {s: [] for s in SIDES}
    started = datetime.now(UTC)
    try:
        for rep in range(args.repeats):
            order = SIDES[rep % 3 :] + SIDES[: rep % 3]
            for side in order:
                res = run_side(side, items, work, home, url, args)
                results[side].append(res)
                print(f"repeat {rep + 1}: {side:17s} {res['wall_s']:8.1f} s  {res['items_per_s']:.3f} items/s",
                      file=sys.stderr, flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    def ratio(a: str, b: str) -> float:
        return statistics.median(x["wall_s"] / y["wall_s"] for x, y in zip(results[a], results[b], strict=True))

    out = {
        "machine": f"{os.cpu_count()}-core {platform.machine()}",
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "items": args.items, "notes": n_notes, "repeats": args.repeats, "max_tokens": args.max_tokens,
        "threads": args.threads, "concurrency": args.concurrency,
        "median_wall_s": {s: med(s, "wall_s") for s in SIDES},
        "median_items_per_s": {s: med(s, "items_per_s") for s in SIDES},
        "median_completion_tokens": {s: med(s, "completion_tokens") for s in SIDES},
        "ratio_parallel_over_sequential": ratio("local-parallel", "local-sequential"),
        "ratio_remote_over_local_parallel": ratio("remote", "local-parallel"),
        "runs": results,
    }  # fmt: skip
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(
        f"\n{args.items} items over {n_notes} notes, max {args.max_tokens} tokens, {args.repeats} repeats (medians):\n"
        f"  local parallel   {out['median_wall_s']['local-parallel']:.1f} s\n"
        f"  local sequential {out['median_wall_s']['local-sequential']:.1f} s\n"
        f"  remote (c={args.concurrency})     {out['median_wall_s']['remote']:.1f} s\n"
        f"  parallel / sequential = {out['ratio_parallel_over_sequential']:.3f}; "
        f"remote / local parallel = {out['ratio_remote_over_local_parallel']:.3f}",
        file=sys.stderr,
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

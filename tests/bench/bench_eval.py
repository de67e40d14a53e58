"""``eval run`` on the demo model over the development splits: the figures with intervals, and its time per
item against ``asclepius batch`` on the same items, side by side.

For each suite (NCBI disease NER, PubMedQA decisions, case-report NER and relations from ``../shared/data/gold``)
the first ``--limit`` sampled items are written by ``eval items``, turned into a batch input (id, note, task,
instruction), and then answered twice per repeat, each side a real process into a fresh log with the kept note
states deleted first (so nothing is skipped and every side reads every note):

* ``batch``: ``asclepius batch items.jsonl`` (answers logged, nothing scored);
* ``eval``: ``asclepius eval run SUITE --data FILE --limit N --json`` (answers logged, scored, stored, results).

Same model, prompt style, answer limit, greedy sampling and threads; the order alternates every repeat (load on
the shared machine hits both alike); figures are medians, the ratio the median of the per-repeat ratios
(eval items/s over batch items/s; the target is >= 0.95). The demo model (Gemma 3 270M) is not trained for any
of these tasks: its figures show the harness works end to end, not what a clinical model scores.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_eval.py                 # 20 items a suite, 3 repeats
    PYTHONPATH=. .venv/bin/python tests/bench/bench_eval.py --limit 5 --repeats 1   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLD = ROOT.parent / "shared" / "data" / "gold"
SUITES = {
    "ncbi-disease": GOLD / "ncbi_disease_devel.pubtator.txt",
    "pubmedqa": GOLD / "pubmedqa_pqal_dev.json",
    "bioc-ner": GOLD / "adahealth_case_reports_dev.bioc.json",
    "bioc-re": GOLD / "adahealth_case_reports_dev.bioc.json",
}


def cli(args: list[str], home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASCLEPIUS_HOME": str(home)}
    r = subprocess.run([sys.executable, "-m", "app.cli.main", *args], capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


def batch_input(suite: str, data: Path, limit: int, work: Path, home: Path) -> Path:
    """The suite's items as a batch input with the suite's task."""
    listed = json.loads(cli(["eval", "suites", "--json"], home).stdout)
    task = next(s["task"] for s in listed if s["name"] == suite)
    items = work / f"{suite}.items.jsonl"
    cli(["eval", "items", suite, "--data", str(data), "--limit", str(limit), "-o", str(items)], home)
    out = work / f"{suite}.batch.jsonl"
    with items.open() as src, out.open("w") as dst:
        for line in src:
            r = json.loads(line)
            dst.write(json.dumps({"id": r["id"], "note": r["note"], "task": task, "instruction": r["instruction"]}))
            dst.write("\n")
    return out


def run_side(side: str, suite: str, inp: Path, work: Path, home: Path, a: argparse.Namespace) -> dict[str, object]:
    db = work / f"{side}-{suite}-{time.time_ns()}.db"
    shutil.rmtree(home / "data" / "kvstate", ignore_errors=True)
    common = ["--db", str(db), "--prompt-style", "plain-qa", "--max-tokens", str(a.max_tokens), "--temperature", "0",
              "--threads", str(a.threads)]  # fmt: skip
    if side == "batch":
        argv = ["batch", str(inp), *common]
    else:
        argv = ["eval", "run", suite, "--data", str(SUITES[suite]), "--limit", str(a.limit), "--json", *common]
    t0 = time.perf_counter()
    r = cli(argv, home, check=False)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 7):  # 7: an item failed (recorded); still timed alike on both sides
        raise SystemExit(f"{side} {suite} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    out: dict[str, object] = {"wall_s": wall, "items_per_s": a.limit / wall, "exit": r.returncode}
    if side == "eval":
        out["results"] = json.loads(r.stdout)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--suite", action="append", choices=sorted(SUITES), help="default: all four")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    home = work / "home"
    started = datetime.now(UTC)
    report: dict[str, object] = {}
    for suite in a.suite or list(SUITES):
        inp = batch_input(suite, SUITES[suite], a.limit, work, home)
        sides: dict[str, list[dict[str, object]]] = {"batch": [], "eval": []}
        for rep in range(a.repeats):
            for side in ("batch", "eval") if rep % 2 == 0 else ("eval", "batch"):
                res = run_side(side, suite, inp, work, home, a)
                sides[side].append(res)
                print(f"{suite} repeat {rep + 1}: {side:5s} {res['wall_s']:7.1f} s  {res['items_per_s']:.3f} items/s",
                      file=sys.stderr, flush=True)  # fmt: skip
        ratios = [
            float(e["items_per_s"]) / float(b["items_per_s"])
            for b, e in zip(sides["batch"], sides["eval"], strict=True)
        ]
        report[suite] = {
            "items": a.limit,
            "batch_s_per_item": statistics.median(float(r["wall_s"]) / a.limit for r in sides["batch"]),  # type: ignore[arg-type]
            "eval_s_per_item": statistics.median(float(r["wall_s"]) / a.limit for r in sides["eval"]),  # type: ignore[arg-type]
            "eval_over_batch_throughput": statistics.median(ratios),
            "results": sides["eval"][-1]["results"],
        }
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_1m": os.getloadavg()[0],
        "limit": a.limit,
        "repeats": a.repeats,
        "max_tokens": a.max_tokens,
    }
    text = json.dumps({"meta": meta, "suites": report}, indent=2)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

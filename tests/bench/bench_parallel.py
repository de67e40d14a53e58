"""Parallel answers benchmark: eight questions (one per task) about one note, parallel vs one at a time.

    .venv/bin/python tests/bench/bench_parallel.py [--model PATH] [--threads 2] [--repeats 3]
        [--max-tokens 64] [--agree-notes 4] [--bandwidth]

Both sides run on the same engine, in one process, interleaved over repeats (the order alternates) and
start from the same state (the note not in the context; the KV-state cache is off). Reports the median
wall time of ``engine.ask_many`` (parallel) over the sequential ``engine.ask`` loop (target <= 0.4),
the note's prefill (time to the first token, paid once by both sides) and the ratio of what follows it,
aggregate generated tokens/s of each side, optionally the memory-bandwidth bound of single-sequence
decoding, and how many greedy answers differ between the two paths (batched kernels sum in another order,
which can flip a near-tie) over the repeats' note and ``--agree-notes`` more notes. Prints a JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.core.config import EngineConfig, Paths  # noqa: E402
from app.core.engine import LlamaCppEngine  # noqa: E402
from app.core.models import Registry  # noqa: E402
from app.core.types import AskRequest, SamplingParams  # noqa: E402
from resources import TASKS  # noqa: E402
from tests.bench.bench_engine import memory_bandwidth_gbs  # noqa: E402

NOTES = ROOT.parent / "shared" / "data" / "notes" / "aci_bench_valid.csv"


def load_notes() -> list[str]:
    with NOTES.open(encoding="utf-8", newline="") as fh:
        return [row["note"] for row in csv.DictReader(fh)]


def requests(note: str, max_tokens: int) -> list[AskRequest]:
    return [AskRequest(note, t.name, t.standard_instruction, SamplingParams(max_tokens=max_tokens)) for t in TASKS]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="GGUF path (default: the embedded demo model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--note-tokens", type=int, default=1500, help="pick the note closest to this many tokens")
    ap.add_argument("--agree-notes", type=int, default=4, help="more notes on which greedy answers are compared")
    ap.add_argument("--bandwidth", action="store_true", help="also measure memory bandwidth (physical bound)")
    args = ap.parse_args()

    os.environ.setdefault("ASCLEPIUS_HOME", tempfile.mkdtemp(prefix="asclepius-bench-"))
    reg = Registry(Paths.default())
    model = reg.import_model(args.model) if args.model else reg.ensure_demo()
    engine = LlamaCppEngine(
        model, EngineConfig(n_threads=args.threads, n_ctx=min(model.context_length, 4096), kv_cache_mb=0)
    )
    style = engine.style_for(None)
    notes = load_notes()
    sizes = [len(engine.tokenize_prompt(style, n, "x").note_tokens) for n in notes]
    pick = min(range(len(notes)), key=lambda i: abs(sizes[i] - args.note_tokens))
    note, other = notes[pick], notes[(pick + 1) % len(notes)]
    reqs = requests(note, args.max_tokens)
    flush = AskRequest(other, TASKS[0].name, "x", SamplingParams(max_tokens=1))

    def sequential() -> tuple[float, list]:
        engine.ask(flush)  # the note is no longer in the context
        t0 = time.perf_counter()
        out = [engine.ask(r) for r in reqs]
        return time.perf_counter() - t0, out

    def parallel() -> tuple[float, list]:
        engine.ask(flush)
        t0 = time.perf_counter()
        out = engine.ask_many(reqs)
        return time.perf_counter() - t0, out

    seq_s, par_s, seq_tps, par_tps = [], [], [], []
    # the note's prefill, which both sides pay once: time to the first token of the first answer
    seq_pre, par_pre = [], []
    par_dec_tps = []  # generated tokens per second once the note is in: what the bandwidth bound limits
    differ: list[tuple[int, str]] = []
    compared = 0
    for r in range(args.repeats):
        sides = (sequential, parallel) if r % 2 == 0 else (parallel, sequential)
        got = {}
        for side in sides:
            got[side.__name__] = side()
        (ts, so), (tp, po) = got["sequential"], got["parallel"]
        seq_s.append(ts)
        par_s.append(tp)
        seq_tps.append(sum(x.completion_tokens for x in so) / ts)
        par_tps.append(sum(x.completion_tokens for x in po) / tp)
        seq_pre.append(so[0].ttft_s)
        par_pre.append(min(x.ttft_s for x in po))
        par_dec_tps.append(sum(x.completion_tokens for x in po) / (tp - par_pre[-1]))
        if r == 0:
            compared += len(so)
            differ += [(pick, a.task) for a, b in zip(so, po, strict=True) if a.answer != b.answer]
    for k in range(args.agree_notes):
        idx = (pick + 2 + k) % len(notes)
        more = requests(notes[idx], min(args.max_tokens, 48))
        a_out = [engine.ask(x) for x in more]
        b_out = engine.ask_many(more)
        compared += len(more)
        differ += [(idx, a.task) for a, b in zip(a_out, b_out, strict=True) if a.answer != b.answer]

    res = {
        "bench": "parallel",
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()}-core {platform.machine()}",
        "model": model.file_name,
        "threads": args.threads,
        "note_tokens": sizes[pick],
        "questions": len(reqs),
        "max_tokens": args.max_tokens,
        "repeats": args.repeats,
        "parallel_slots": engine.last_parallel,
        "sequential_s_median": statistics.median(seq_s),
        "parallel_s_median": statistics.median(par_s),
        "wall_ratio": statistics.median(p / s for p, s in zip(par_s, seq_s, strict=True)),
        "sequential_first_token_s_median": statistics.median(seq_pre),
        "parallel_first_token_s_median": statistics.median(par_pre),
        # what is left once the note is in the context: the part parallel decoding can shorten
        "after_note_ratio": statistics.median(
            (p - pp) / (s - sp) for p, pp, s, sp in zip(par_s, par_pre, seq_s, seq_pre, strict=True)
        ),
        "sequential_tps_median": statistics.median(seq_tps),
        "parallel_tps_median": statistics.median(par_tps),
        "parallel_after_note_tps_median": statistics.median(par_dec_tps),
        "greedy_answers_compared": compared,
        "greedy_answers_differing": len(differ),
        "differing": differ,
    }
    if args.bandwidth:
        bw = memory_bandwidth_gbs(threads=args.threads)
        res["bandwidth_gbs"] = bw
        res["bound_tps_single_sequence"] = bw / (model.size_bytes / 1e9)
        res["parallel_tps_of_bound"] = res["parallel_tps_median"] / res["bound_tps_single_sequence"]
        res["parallel_after_note_tps_of_bound"] = (
            res["parallel_after_note_tps_median"] / res["bound_tps_single_sequence"]
        )
    engine.close()
    ok = res["wall_ratio"] <= 0.4
    print(
        f"model {res['model']}, {args.threads} threads, note {res['note_tokens']} tokens, {len(reqs)} questions, "
        f"max {args.max_tokens} tokens, {args.repeats} interleaved repeats"
    )
    print(
        f"  wall parallel / sequential (median of ratios) {res['wall_ratio']:.3f}  target <= 0.4 "
        f"{'PASS' if ok else 'FAIL'}  ({res['parallel_s_median']:.1f} s vs {res['sequential_s_median']:.1f} s)"
    )
    print(
        f"  first token (the note's prefill): sequential {res['sequential_first_token_s_median']:.1f} s, parallel "
        f"{res['parallel_first_token_s_median']:.1f} s; after it, parallel / sequential {res['after_note_ratio']:.3f}"
    )
    print(
        f"  aggregate tok/s: parallel {res['parallel_tps_median']:.1f}, sequential {res['sequential_tps_median']:.1f}"
        f"; parallel once the note is in {res['parallel_after_note_tps_median']:.1f}"
    )
    if args.bandwidth:
        print(
            f"  single-sequence bandwidth bound {res['bound_tps_single_sequence']:.1f} tok/s; parallel aggregate "
            f"is {res['parallel_tps_of_bound']:.0%} of it "
            f"({res['parallel_after_note_tps_of_bound']:.0%} once the note is in)"
        )
    print(f"  greedy answers differing: {len(differ)} of {compared}")
    print(json.dumps(res))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

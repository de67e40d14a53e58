"""Prompt-lookup decoding against plain greedy decoding: tokens/s per task, acceptance, identical answers.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_lookup.py [--model PATH] [--notes 30] [--max-tokens 128]

One engine (the demo model unless ``--model``), held notes (ACI-bench validation) x the eight tasks (each
task's first example instruction), greedy. Every item is answered twice on the same engine, plain
(``EngineConfig.lookup`` off) and with lookup, the order alternating item by item so a change in the
machine's load falls on both alike; the note prefix is live for the second, which changes the time to first
token only: the decode rate counts the tokens after the first over the time after it. Printed per task: the
decode tokens/s of each, their ratio (lookup / plain, summed over the task's items), the acceptance rate, and
how many answers differed (text or token count; under greedy there must be none).

Before that, the kernel measurement that bounds the gain on this machine: one ``llama_decode`` of n
consecutive rows of one sequence (logits at every row, as a verification asks) against one row, after a
~1,000-token note, n = 1..9.

Prints the figures and, last, one JSON line ``{"ratio": ..., "acceptance": ..., ...}`` where ``ratio`` is
the decode-rate ratio over the copy-heavy tasks (NER, abbreviation expansion, relation and temporal
extraction) and ``ratio_other`` over the other four.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.core.config import EngineConfig, Paths  # noqa: E402
from app.core.engine import LlamaCppEngine  # noqa: E402
from app.core.llama_adapter import SequenceBatch  # noqa: E402
from app.core.models import Registry  # noqa: E402
from app.core.types import AskRequest, RunResult, SamplingParams  # noqa: E402
from resources import TASKS  # noqa: E402

NOTES = ROOT.parent / "shared" / "data" / "notes" / "aci_bench_valid.csv"
COPY_HEAVY = ("ner", "abbrev", "relation", "temporal")


def held_notes(n: int, first: int = 0) -> list[str]:
    with NOTES.open(encoding="utf-8", newline="") as fh:
        return [row["note"] for row in csv.DictReader(fh)][first : first + n]


def kernel_costs(engine: LlamaCppEngine, note: str, steps: int) -> dict[int, float]:
    """Milliseconds of one decode of n consecutive rows (logits at each) over a single row's, n = 1..9."""
    llm = engine._llm
    prefix = llm.tokenize(note.encode())[:1000]
    llm.reset()
    llm.eval(prefix)
    p, batch, ms = len(prefix), SequenceBatch(16), {}
    for n in (1, 2, 3, 4, 5, 7, 9, 1):
        t0 = time.perf_counter()
        for k in range(steps):
            batch.clear()
            for j in range(n):
                batch.add(prefix[(k + j) % p], p + j, 0, True)
            if batch.decode(llm.ctx) != 0:
                raise SystemExit("llama_decode failed")
            llm._ctx.kv_cache_seq_rm(-1, p, -1)
        ms[n] = 1000 * (time.perf_counter() - t0) / steps  # the later n=1 run wins: warmed up
    batch.close()
    llm.reset()
    return {n: v / ms[1] for n, v in ms.items()} | {0: ms[1]}


def identical_rows(engine: LlamaCppEngine, note: str, rows: int = 9) -> list[bool]:
    """Per row of one ``rows``-row decode: are its logits bit-identical to decoding the same tokens one by one?
    (What ``lookup.DRAFT_MAX`` rests on: only such rows can verify without changing a greedy answer.)"""
    import llama_cpp
    import numpy as np

    llm = engine._llm
    toks = llm.tokenize(note.encode())[: 300 + rows]
    prefix, cont, n_vocab = toks[:300], toks[300:], llm.n_vocab()
    llm.reset()
    llm.eval(prefix)
    batch = SequenceBatch(16)

    def decode(tokens: list[int], pos: int) -> list[np.ndarray]:
        batch.clear()
        for j, tok in enumerate(tokens):
            batch.add(tok, pos + j, 0, True)
        if batch.decode(llm.ctx) != 0:
            raise SystemExit("llama_decode failed")
        ptr = llama_cpp.llama_get_logits_ith
        return [np.ctypeslib.as_array(ptr(llm.ctx, j), shape=(n_vocab,)).copy() for j in range(len(tokens))]

    single = [decode([tok], 300 + j)[0] for j, tok in enumerate(cont)]
    llm._ctx.kv_cache_seq_rm(-1, 300, -1)
    together = decode(cont, 300)
    batch.close()
    llm.reset()
    return [bool(np.array_equal(a, b)) for a, b in zip(single, together, strict=True)]


def first_rows(engine: LlamaCppEngine, note: str, widths: tuple[int, ...] = (2, 3, 4, 9)) -> dict[str, dict]:
    """Row 0 of an n-row decode against a one-row decode of the same token at the same place (same KV cache):
    if even row 0 differs, no draft size can keep a greedy answer identical. Per n: how many of the probed
    positions gave bit-identical logits, and the largest difference seen."""
    import llama_cpp
    import numpy as np

    llm = engine._llm
    toks = llm.tokenize(note.encode())
    n_vocab, mem = llm.n_vocab(), llama_cpp.llama_get_memory(llm.ctx)
    positions = [p for p in (64, 200, 400, 700) if p + max(widths) < len(toks)]
    batch = SequenceBatch(max(widths))
    out: dict[str, dict] = {str(n): {"identical": 0, "probed": 0, "max_abs_diff": 0.0} for n in widths}

    def row0(tokens: list[int], pos: int) -> np.ndarray:
        batch.clear()
        for j, tok in enumerate(tokens):
            batch.add(tok, pos + j, 0, True)
        if batch.decode(llm.ctx) != 0:
            raise SystemExit("llama_decode failed")
        got = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, 0), shape=(n_vocab,)).copy()
        llama_cpp.llama_memory_seq_rm(mem, -1, pos, -1)
        return got

    for pos in positions:
        llm.reset()
        llm.eval(toks[:pos])
        single = row0(toks[pos : pos + 1], pos)
        for n in widths:
            got = row0(toks[pos : pos + n], pos)
            o = out[str(n)]
            o["probed"] += 1
            o["identical"] += bool(np.array_equal(single, got))
            o["max_abs_diff"] = max(o["max_abs_diff"], float(np.abs(single - got).max()))
    batch.close()
    llm.reset()
    return out


def decode_s(r: RunResult) -> float:
    return (r.completion_tokens - 1) / r.decode_tokens_per_s if r.decode_tokens_per_s else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="GGUF path (default: the embedded demo model)")
    ap.add_argument("--notes", type=int, default=30)
    ap.add_argument("--first", type=int, default=0, help="index of the first held note used")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kernel-steps", type=int, default=24)
    args = ap.parse_args()

    os.environ.setdefault("ASCLEPIUS_HOME", tempfile.mkdtemp(prefix="asclepius-bench-"))
    registry = Registry(Paths.default())
    info = registry.import_model(Path(args.model)) if args.model else registry.ensure_demo()
    on = EngineConfig(n_threads=args.threads, max_ctx=4096, kv_cache_mb=0)
    off = replace(on, lookup=False)
    notes = held_notes(args.notes, args.first)
    engine = LlamaCppEngine(info, on)
    costs = kernel_costs(engine, max(notes, key=len), args.kernel_steps)
    rows_same = identical_rows(engine, notes[0])
    row0 = first_rows(engine, notes[0])
    sp = SamplingParams(max_tokens=args.max_tokens)
    per_task: dict[str, dict[str, float]] = {}
    differing: list[str] = []
    k = 0
    for t in TASKS:
        acc = per_task.setdefault(t.slug, dict.fromkeys(("plain_s", "lookup_s", "tokens", "drafted", "accepted"), 0))
        for i, note in enumerate(notes):
            req = AskRequest(note, t.name, t.examples[0], sp, truncate=True)
            got = {}
            for mode in ("plain", "lookup") if k % 2 == 0 else ("lookup", "plain"):
                engine.config = off if mode == "plain" else on
                got[mode] = engine.ask(req.renewed())
            k += 1
            plain, look = got["plain"], got["lookup"]
            if (plain.answer, plain.completion_tokens) != (look.answer, look.completion_tokens):
                differing.append(f"{t.slug} note {i}")
            acc["plain_s"] += decode_s(plain)
            acc["lookup_s"] += decode_s(look)
            acc["tokens"] += look.completion_tokens - 1
            acc["drafted"] += look.lookup.drafted if look.lookup else 0
            acc["accepted"] += look.lookup.accepted if look.lookup else 0
        print(f"  done: {t.slug}, {len(differing)} differing so far", file=sys.stderr, flush=True)
    engine.close()

    def ratio(slugs: tuple[str, ...]) -> float:
        return sum(per_task[s]["plain_s"] for s in slugs) / max(1e-9, sum(per_task[s]["lookup_s"] for s in slugs))

    def acceptance(slugs: tuple[str, ...]) -> float | None:
        drafted = sum(per_task[s]["drafted"] for s in slugs)
        return sum(per_task[s]["accepted"] for s in slugs) / drafted if drafted else None

    other = tuple(s for s in per_task if s not in COPY_HEAVY)
    print(f"model {info.file_name}, {args.threads} threads, {len(notes)} held notes x {len(TASKS)} tasks, greedy")
    print(f"kernel: one decode of n rows / one row ({costs[0]:.1f} ms): " + ", ".join(
        f"n={n} {c:.2f}x" for n, c in sorted(costs.items()) if n > 1))  # fmt: skip
    print("rows of a 9-row decode bit-identical to single decodes: " + " ".join("y" if r else "n" for r in rows_same))
    same = [f"n={n} {o['identical']}/{o['probed']} (max diff {o['max_abs_diff']:.2g})" for n, o in row0.items()]
    print("row 0 of an n-row decode bit-identical to a one-row decode: " + ", ".join(same))
    for slug, a in per_task.items():
        rate = acceptance((slug,))
        print(
            f"  {slug:10s} plain {a['tokens'] / max(a['plain_s'], 1e-9):6.1f} tok/s, lookup "
            f"{a['tokens'] / max(a['lookup_s'], 1e-9):6.1f} tok/s, {ratio((slug,)):.2f}x, acceptance "
            f"{'-' if rate is None else f'{rate:.2f}'} ({a['accepted']:.0f}/{a['drafted']:.0f} drafted)"
        )
    print(
        f"answers differing from plain decoding: {len(differing)} of {k}"
        + (f" ({', '.join(differing)})" * bool(differing))
    )
    res = {
        "bench": "lookup",
        "ratio": ratio(COPY_HEAVY),
        "acceptance": acceptance(COPY_HEAVY),
        "ratio_other": ratio(other),
        "acceptance_other": acceptance(other),
        "per_task": {s: {"ratio": ratio((s,)), "acceptance": acceptance((s,))} for s in per_task},
        "differing": len(differing),
        "answers": k,
        "kernel_cost": {str(n): c for n, c in sorted(costs.items()) if n > 1},
        "single_row_ms": costs[0],
        "rows_identical_to_single": rows_same,
        "first_row_vs_single": row0,
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()}-core {platform.machine()}",
        "load": os.getloadavg()[0],
        "model": info.file_name,
        "notes": len(notes),
        "first_note": args.first,
        "max_tokens": args.max_tokens,
    }
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

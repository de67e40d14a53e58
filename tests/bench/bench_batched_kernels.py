"""What llama.cpp's CPU kernels allow for batched decoding, without the engine around them.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_batched_kernels.py [--model PATH] [--threads 2]

Two measurements on one context opened like the engine's parallel one (``open_llama``: unified KV cache,
9 sequences), a ~1,000-token ACI-bench note evaluated once in sequence 0 and shared with sequences 1..8:

* **decode scaling**: ``llama_decode`` of one token for each of N sequences per step (N = 1, 2, 4, 8, then
  1 and 8 again), 48 steps each: milliseconds per step and aggregate tokens per second. The best the parallel
  path can do after the note is the N=8 rate over the N=1 rate; sampling and bookkeeping come on top.
* **single vs batched logits**: the same token at the same position decoded alone (N=1) and as one of 8
  identical sequences (N=8): the largest logit difference, its size against the logits' spread, the gap
  between the two best tokens, and whether the greedy token is the same; also whether the 8 identical
  sequences of one batch got identical logits, and whether a single decode repeats bit for bit.

Prints a JSON line. In ``make bench``, after ``bench_parallel.py``, whose figures it explains.
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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import llama_cpp  # noqa: E402

from app.core.config import Paths  # noqa: E402
from app.core.llama_adapter import SequenceBatch, SequenceMemory, open_llama  # noqa: E402
from app.core.models import Registry  # noqa: E402

NOTES = ROOT.parent / "shared" / "data" / "notes" / "aci_bench_valid.csv"
SEQS = 8


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="GGUF path (default: the embedded demo model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--prefix", type=int, default=1000, help="note tokens in the shared prefix (at most)")
    args = ap.parse_args()

    os.environ.setdefault("ASCLEPIUS_HOME", tempfile.mkdtemp(prefix="asclepius-bench-"))
    path = args.model or str(Registry(Paths.default()).ensure_demo().path)
    llm = open_llama(
        n_seq_max=SEQS + 1, model_path=path, n_ctx=4096, n_threads=args.threads, n_threads_batch=args.threads,
        n_batch=512, n_ubatch=512, verbose=False,
    )  # fmt: skip
    n_vocab = llm.n_vocab()
    with NOTES.open(encoding="utf-8", newline="") as fh:
        note = max((row["note"] for row in csv.DictReader(fh)), key=len)
    prefix = llm.tokenize(note.encode())[: args.prefix]
    n = len(prefix)
    mem, batch = SequenceMemory(llm), SequenceBatch(512)

    t0 = time.perf_counter()
    for start in range(0, n, 512):
        batch.clear()
        for i, tok in enumerate(prefix[start : start + 512]):
            batch.add(tok, start + i, 0, False)
        if batch.decode(llm.ctx) != 0:
            raise SystemExit("llama_decode failed on the prefix")
    prefill_s = time.perf_counter() - t0

    def share_all() -> None:
        for q in range(1, SEQS + 1):
            mem.share(0, q, n)

    def logits(idx: int) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, idx)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float64)

    scaling = []
    for width in (1, 2, 4, 8, 1, 8):
        share_all()
        t0 = time.perf_counter()
        for k in range(args.steps):
            batch.clear()
            for q in range(1, width + 1):
                batch.add(prefix[(k + q) % n], n + k, q, True)
            if batch.decode(llm.ctx) != 0:
                raise SystemExit("llama_decode failed")
        dt = time.perf_counter() - t0
        scaling.append({"sequences": width, "ms_per_step": 1000 * dt / args.steps, "tok_s": width * args.steps / dt})
    rate = {s["sequences"]: s["tok_s"] for s in scaling}  # the later run of 1 and 8 wins: warmed up

    probes = []
    for tok in (prefix[5], prefix[50], prefix[100], prefix[200], prefix[400], prefix[n - 1]):
        share_all()
        batch.clear()
        batch.add(tok, n, 1, True)
        batch.decode(llm.ctx)
        single = logits(0)
        share_all()
        batch.clear()
        idx = [batch.add(tok, n, q, True) for q in range(1, SEQS + 1)]
        batch.decode(llm.ctx)
        batched = [logits(i) for i in idx]
        share_all()
        batch.clear()
        batch.add(tok, n, 1, True)
        batch.decode(llm.ctx)
        again = logits(0)
        top2 = np.sort(single)[-2:]
        diff = float(np.abs(single - batched[0]).max())
        probes.append(
            {
                "max_abs_diff": diff,
                "diff_of_logit_std": diff / float(single.std()),
                "top2_gap": float(top2[1] - top2[0]),
                "same_greedy_token": bool(single.argmax() == batched[0].argmax()),
                "batch_rows_identical": all(np.array_equal(batched[0], b) for b in batched[1:]),
                "single_repeatable": bool(np.array_equal(single, again)),
            }
        )
    batch.close()

    res = {
        "bench": "batched_kernels",
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()}-core {platform.machine()}",
        "model": Path(path).name,
        "threads": args.threads,
        "prefix_tokens": n,
        "prefill_s": prefill_s,
        "scaling": scaling,
        "batch8_over_single_rate": rate[8] / rate[1],
        "probes": probes,
    }
    print(f"model {res['model']}, {args.threads} threads, {n}-token shared prefix (prefill {prefill_s:.1f} s)")
    for s in scaling:
        print(f"  {s['sequences']} sequence(s) per step: {s['ms_per_step']:.1f} ms/step, {s['tok_s']:.1f} tok/s")
    print(f"  8 sequences decode {res['batch8_over_single_rate']:.2f}x the tokens/s of one")
    for p in probes:
        print(
            f"  single vs batched: max |logit diff| {p['max_abs_diff']:.4f} ({p['diff_of_logit_std']:.3f} of the "
            f"logits' std), top-2 gap {p['top2_gap']:.3f}, same greedy token {p['same_greedy_token']}; rows "
            f"identical {p['batch_rows_identical']}, single repeatable {p['single_repeatable']}"
        )
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""LoRA SFT against full SFT on CPU, side by side (not run by CI): trainable parameters, peak memory, tokens/s.

Both sides train the small LLaMA of ``bench_train.py`` (random weights, hidden 256, 4 layers, built here) on
the same SFT examples (shared notes, a task's example question, an answer cut from the note) in the same
padded micro-batches of 2, one optimizer step each, AdamW in fp32. ``full``: every parameter trains.
``lora``: the base is frozen and rank-``--r`` adapters sit on every projection (the trainer's own
``training.trainer.adapters.with_lora``). Each (side, repeat) runs in a fresh process (clean peak RSS), sides
interleaved and their order alternated per repeat; figures are medians. The last line is JSON with the
ratios (LoRA / full).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python tests/bench/bench_lora.py [--repeats 3] [--examples 60]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_train import MAX_LENGTH, build, padded_batches, rss_mb, train_steps  # noqa: E402


def run_side(model_dir: Path, data: Path, side: str, r: int, dropout: float) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.trainer.adapters import parameter_counts, with_lora
    from training.trainer.data import build_sft
    from training.trainer.recipe import LoraSettings

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    examples, _ = build_sft(data, tok, "asclepius-train", MAX_LENGTH)
    base_rss = rss_mb()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if side == "lora":
        model = with_lora(model, LoraSettings(r=r, alpha=2.0 * r, dropout=dropout))
    trainable, total = parameter_counts(model)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)
    batches = padded_batches(examples)
    real, _, seconds, cpu_seconds = train_steps(model, opt, batches)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "side": side,
        "trainable": trainable,
        "total": total,
        "micro_batches": len(batches),
        "real_tokens": real,
        "tokens_per_s": real / seconds,
        # One thread: tokens per CPU-second is what the work costs, less disturbed by other load on the machine.
        "tokens_per_cpu_s": real / cpu_seconds,
        "peak_delta_mb": peak - base_rss,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--examples", type=int, default=60)
    ap.add_argument("--r", type=int, default=16, help="adapter rank")
    ap.add_argument(
        "--dropout", type=float, default=0.05, help="adapter dropout (each adapter keeps its dropped input)"
    )
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        work = Path(args.work)
        print(json.dumps(run_side(work / "model", work / "sft.jsonl", args.side, args.r, args.dropout)))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    build(work, args.examples)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    results: dict[str, list[dict]] = {"lora": [], "full": []}
    for rep in range(args.repeats):
        for side in ("lora", "full") if rep % 2 == 0 else ("full", "lora"):
            cmd = [sys.executable, __file__, "--side", side, "--work", str(work), "--r", str(args.r)]
            cmd += ["--dropout", str(args.dropout)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[side].append(res)
            print(
                f"repeat {rep} {side}: {res['tokens_per_s']:.0f} tok/s wall, {res['tokens_per_cpu_s']:.0f} tok/CPU-s, "
                f"peak +{res['peak_delta_mb']:.0f} MB",
                flush=True,
            )
    keys = ("tokens_per_s", "tokens_per_cpu_s", "peak_delta_mb")
    med = {s: {k: statistics.median(x[k] for x in v) for k in keys} for s, v in results.items()}
    first = {s: v[0] for s, v in results.items()}
    full = first["full"]
    print(
        f"\nthreads {env['OMP_NUM_THREADS']}; {full['micro_batches']} micro-batches of 2, {full['real_tokens']} "
        f"tokens per side and repeat; LoRA r {args.r}, dropout {args.dropout} on every projection"
    )
    for s in ("lora", "full"):
        f = first[s]
        print(
            f"{s:4s} trainable {f['trainable']:>11,} of {f['total']:>11,}  median {med[s]['tokens_per_s']:7.0f} "
            f"tok/s wall  {med[s]['tokens_per_cpu_s']:7.0f} tok/CPU-s  peak RSS delta {med[s]['peak_delta_mb']:6.0f} MB"
        )
    ratio = {
        "trainable": first["lora"]["trainable"] / first["full"]["trainable"],
        "tokens_per_cpu_s": med["lora"]["tokens_per_cpu_s"] / med["full"]["tokens_per_cpu_s"],
        "tokens_per_s": med["lora"]["tokens_per_s"] / med["full"]["tokens_per_s"],
        "peak_delta_mb": med["lora"]["peak_delta_mb"] / med["full"]["peak_delta_mb"],
    }
    print(json.dumps({"ratio": {k: round(v, 4) for k, v in ratio.items()}, "lora_over": "full"}))


if __name__ == "__main__":
    main()

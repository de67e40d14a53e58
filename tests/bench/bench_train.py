"""Trainer benchmark on CPU (not run by CI): SFT tokens/s with packing vs the reference's right-padding
collator, peak memory of each, and ``asclepius train plan``'s estimate against the measured peak.

Both sides train the same small LLaMA (built here, random weights, SentencePiece tokenizer trained on the
shared notes) on the same SFT examples: notes from ``shared/data/notes`` (short MTS-Dialog sections and
long ACI-Bench visit notes: a realistic length mix), a task preset's example instruction, and an answer cut
from the note. Each (side, repeat) runs in a fresh process (clean peak RSS), sides interleaved and their
order alternated per repeat; the figures are medians.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python tests/bench/bench_train.py [--repeats 3] [--examples 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LENGTH = 2048
SHAPE = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4}


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def build(work: Path, n_examples: int) -> tuple[Path, Path]:
    """The model directory and an SFT JSONL with a realistic length mix."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from quantize.notes import load_notes
    from resources import TASKS
    from tests.fixtures_llama import train_sentencepiece

    model_dir = work / "model"
    train_sentencepiece(model_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=512, max_position_embeddings=MAX_LENGTH, bos_token_id=1, eos_token_id=2, **SHAPE)
    LlamaForCausalLM(cfg).save_pretrained(model_dir)
    rng = random.Random(0)
    notes = [t for _, t in load_notes()]
    rng.shuffle(notes)
    rows = []
    for note in notes[:n_examples]:
        words = note.split()
        start = rng.randrange(max(1, len(words) - 60))
        answer = " ".join(words[start : start + rng.randint(5, 60)])
        question = rng.choice(rng.choice(TASKS).examples)
        rows.append({"note": note, "question": question, "answer": answer})
    data = work / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model_dir, data


def run_side(model_dir: Path, data: Path, side: str) -> dict:
    """One side in this process: an epoch over the examples, per-device batch 2 (padded) or 1 row (packed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.trainer.attention import register
    from training.trainer.data import build_sft, pack_examples

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    examples, stats = build_sft(data, tok, "asclepius-train", MAX_LENGTH)
    base_rss = rss_mb()
    # What the trainer's attn_implementation=auto picks on CPU; unpacked batches fall back to plain SDPA.
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=register())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    # A 16-token warm-up step allocates the AdamW moments and pages in the kernels: what is resident after it is
    # the weights, the moments and the runtime's fixed footprint (libraries, allocator arenas); the training
    # steps add activations and gradients on top, which is what ``train plan``'s activation terms model.
    warm = torch.arange(3, 19).unsqueeze(0)
    model(input_ids=warm, labels=warm, use_cache=False).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    warm_rss = rss_mb()
    if side == "packed":
        rows = pack_examples(examples, MAX_LENGTH)
        batches = [rows[i : i + 1] for i in range(len(rows))]
    else:
        batches = padded_batches(examples)
    real, padded, seconds, cpu_seconds = train_steps(model, opt, batches)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "side": side,
        "examples": stats.examples,
        "dropped_truncated": stats.dropped_truncated,
        "micro_batches": len(batches),
        "real_tokens": real,
        "padded_tokens": padded,
        "seconds": seconds,
        "tokens_per_s": real / seconds,
        # One thread: tokens per CPU-second is what the work costs, less disturbed by other load on the machine.
        "tokens_per_cpu_s": real / cpu_seconds,
        "peak_delta_mb": peak - base_rss,
        # Above the warm-up's resident set: activations + gradients of the largest micro-batch.
        "peak_over_warm_mb": peak - warm_rss,
        # Resident after the warm-up minus the weights and moments: the CPU runtime's fixed footprint.
        "fixed_mb": warm_rss - base_rss - 12 * sum(p.numel() for p in model.parameters()) / 2**20,
        "max_batch": max(([len(b), max(len(x["input_ids"]) for x in b)] for b in batches), key=lambda x: x[0] * x[1]),
        "params": sum(p.numel() for p in model.parameters()),
    }


def padded_batches(examples: list[dict], size: int = 2) -> list[list[dict]]:
    """The examples in a seeded random order, ``size`` per micro-batch (padded by ``collate``)."""
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    return [[examples[j] for j in order[i : i + size]] for i in range(0, len(order), size)]


def train_steps(model, opt, batches: list[list[dict]]) -> tuple[int, int, float, float]:
    """One optimizer step per micro-batch: (real tokens, padded tokens, wall seconds, CPU seconds)."""
    import torch

    from training.trainer.data import collate

    real = padded = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for batch in batches:
        b = collate(batch, pad_id=0)
        real += b.pop("real_tokens")
        padded += b["input_ids"].numel()
        n = int((b["labels"][:, 1:] != -100).sum())
        out = model(**b, use_cache=False, num_items_in_batch=n)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # frozen parameters have no gradient to clip
        opt.step()
        opt.zero_grad(set_to_none=True)
    return real, padded, time.perf_counter() - t0, time.process_time() - c0


def plan_mb(model_dir: Path, batch: int, length: int, attention: str) -> tuple[float, float]:
    """``train plan`` for this model on 1 CPU process in fp32, ``batch`` x ``length`` tokens, no overhead term:
    (total, activations + gradients) in MiB."""
    from training.trainer.plan import ModelShape, estimate
    from training.trainer.recipe import load_recipe

    recipe = load_recipe(
        "asclepius-7b-sft",
        {"max_length": length, "per_device_batch_size": batch, "global_batch_size": batch, "precision": "fp32"},
    )
    recipe = recipe.with_overrides({"gradient_checkpointing": False})
    shape = ModelShape.from_config(model_dir / "config.json")
    p = estimate(recipe, shape, gpus=1, gpu_mem_gb=1e9, strategy="ddp", overhead_gb=0.0, attention=attention)
    return p.total_gb * 1e9 / 2**20, (p.activations_full_gb + p.grads_gb) * 1e9 / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        work = Path(args.work)
        print(json.dumps(run_side(work / "model", work / "sft.jsonl", args.side)))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    model_dir, _ = build(work, args.examples)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    results: dict[str, list[dict]] = {"packed": [], "padded": []}
    for r in range(args.repeats):
        for side in ("packed", "padded") if r % 2 == 0 else ("padded", "packed"):
            cmd = [sys.executable, __file__, "--side", side, "--work", str(work)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[side].append(res)
            (work / "results.json").write_text(json.dumps(results, indent=1))
            print(
                f"repeat {r} {side}: {res['tokens_per_s']:.0f} tok/s wall, {res['tokens_per_cpu_s']:.0f} tok/CPU-s, "
                f"peak +{res['peak_delta_mb']:.0f} MB",
                flush=True,
            )
    keys = ("tokens_per_s", "tokens_per_cpu_s", "peak_delta_mb", "peak_over_warm_mb", "fixed_mb")
    med = {s: {k: statistics.median(x[k] for x in v) for k in keys} for s, v in results.items()}
    first = results["packed"][0]
    pad0 = results["padded"][0]
    print(f"\nmodel: {first['params'] / 1e6:.2f} M parameters, {SHAPE}; threads {env['OMP_NUM_THREADS']}")
    print(f"data: {first['examples']} examples ({first['dropped_truncated']} dropped > {MAX_LENGTH} tokens)")
    print(
        f"packed: {first['micro_batches']} rows, padding {1 - first['real_tokens'] / first['padded_tokens']:.1%}; "
        f"padded: {pad0['micro_batches']} batches of 2, padding {1 - pad0['real_tokens'] / pad0['padded_tokens']:.1%}"
    )
    for s in ("packed", "padded"):
        print(
            f"{s:7s} median {med[s]['tokens_per_s']:8.0f} tok/s wall  {med[s]['tokens_per_cpu_s']:8.0f} tok/CPU-s  "
            f"peak RSS delta {med[s]['peak_delta_mb']:7.0f} MB"
        )
    ratios = [
        p["tokens_per_cpu_s"] / q["tokens_per_cpu_s"] for p, q in zip(results["packed"], results["padded"], strict=True)
    ]
    print(
        f"packing speed-up: {med['packed']['tokens_per_cpu_s'] / med['padded']['tokens_per_cpu_s']:.2f}x per CPU-s "
        f"(per-repeat {', '.join(f'{x:.2f}' for x in ratios)}), "
        f"{med['packed']['tokens_per_s'] / med['padded']['tokens_per_s']:.2f}x wall (target >= 1.5x)"
    )
    # The CPU run uses PyTorch's flash-attention CPU kernel (no s x s scores kept); "math" is shown for reference.
    for s in ("packed", "padded"):
        batch, length = results[s][0]["max_batch"]
        meas, act, fixed = (med[s][k] for k in ("peak_delta_mb", "peak_over_warm_mb", "fixed_mb"))
        for attention in ("flash", "math"):
            total, act_plan = plan_mb(model_dir, batch, length, attention)
            e_act, e_total, e_fixed = ((x - y) / y for x, y in ((act_plan, act), (total, meas), (total + fixed, meas)))
            print(
                f"plan ({attention}) vs measured, {s}, largest micro-batch {batch} x {length}: "
                f"activations+gradients plan {act_plan:.0f} MB, measured {act:.0f} MB, error {e_act:+.0%}; "
                f"total plan {total:.0f} MB (+ {fixed:.0f} MB fixed CPU runtime = {total + fixed:.0f}) vs measured "
                f"{meas:.0f} MB, error {e_total:+.0%} without / {e_fixed:+.0%} with it"
            )


if __name__ == "__main__":
    main()

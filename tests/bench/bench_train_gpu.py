"""GPU benchmark (not run by CI; needs one CUDA GPU): the SFT recipe scaled to one GPU on a ~1B
LLaMA-shaped model for a few hundred steps, through the real command (``python -m training.trainer sft``).

Reports tokens/s/GPU (median of the logged windows after warm-up), peak memory against ``train plan``'s
estimate for the same shape and batch, and MFU = 6 x parameters x tokens/s / peak bf16 dense FLOP/s
(attention FLOPs not counted, so MFU is slightly understated). Random weights: throughput and memory do not
depend on the values. The tokenizer is the test SentencePiece one (ids < 512) inside a 32000-row
embedding, so the shapes are LLaMA-1's.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_train_gpu.py --steps 300 [--peak-tflops 989]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# ~1.1 B parameters, LLaMA layout: 22 layers x 2048 hidden (TinyLlama-1.1B's shape, 32 heads, 4 KV heads).
SHAPE = dict(
    hidden_size=2048,
    intermediate_size=5632,
    num_hidden_layers=22,
    num_attention_heads=32,
    num_key_value_heads=4,
    vocab_size=32000,
)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
"""Dense bf16 tensor-core peaks (SXM datasheets)."""


def build(work: Path, n_rows: int) -> tuple[Path, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from quantize.notes import load_notes
    from resources import TASKS
    from tests.fixtures_llama import train_sentencepiece

    model_dir = work / "model"
    train_sentencepiece(model_dir)
    cfg = LlamaConfig(max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, **SHAPE)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(model_dir)
    rng = random.Random(0)
    notes = [t for _, t in load_notes()]
    rows = []
    for i in range(n_rows):
        note = notes[i % len(notes)]
        words = note.split()
        start = rng.randrange(max(1, len(words) - 80))
        rows.append(
            {
                "note": note,
                "question": rng.choice(rng.choice(TASKS).examples),
                "answer": " ".join(words[start : start + rng.randint(10, 80)]),
            }
        )
    data = work / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model_dir, data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--per-device", type=int, default=4)
    ap.add_argument("--accum", type=int, default=4)
    ap.add_argument("--packing", action="store_true", default=True)
    ap.add_argument("--peak-tflops", type=float, help="GPU peak dense bf16 TFLOP/s (default: from the GPU name)")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    name = torch.cuda.get_device_name(0)
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    work = Path(tempfile.mkdtemp(prefix="bench-train-gpu-"))
    global_batch = args.per_device * args.accum
    model_dir, data = build(work, n_rows=global_batch * args.steps)
    out = work / "run"
    sets = {
        "global_batch_size": global_batch,
        "per_device_batch_size": args.per_device,
        "packing": args.packing,
        "logging_steps": 10,
        "save_steps": 0,
        "epochs": 1,
    }
    cmd = [sys.executable, "-m", "training.trainer", "sft", "asclepius-7b-sft", "--model", str(model_dir)]
    cmd += ["--data", str(data), "--out", str(out), "--max-steps", str(args.steps)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={json.dumps(v)}"]
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})

    logs = [json.loads(x) for x in (out / "logs" / "train.jsonl").read_text().splitlines()]
    steady = logs[len(logs) // 5 :] or logs  # the first fifth is warm-up (allocator, kernels)
    tps = statistics.median(r["tokens_per_s"] for r in steady)
    peak_mb = max(r["peak_mem_mb"] for r in logs)
    from safetensors.torch import load_file

    params = sum(t.numel() for t in load_file(str(out / "model" / "model.safetensors")).values())
    plan = subprocess.run(
        [sys.executable, "-m", "training.trainer", "plan", "asclepius-7b-sft", "--model", str(model_dir), "--gpus", "1"]
        + ["--gpu-mem", "80", "--strategy", "ddp", "--json"]
        + [x for k in ("global_batch_size", "per_device_batch_size") for x in ("--set", f"{k}={sets[k]}")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    planned = json.loads(plan.stdout)
    print(f"GPU: {name}; model {params / 1e9:.2f} B parameters; micro-batch {args.per_device} x 2048 (packed)")
    print(f"tokens/s/GPU (median after warm-up): {tps:,.0f}")
    print(f"peak memory: {peak_mb / 1024:.1f} GiB; plan: {planned['total_gb'] * 1e9 / 2**30:.1f} GiB")
    if peak:
        print(f"MFU: {6 * params * tps / (peak * 1e12):.1%} (peak {peak:g} TFLOP/s)")
    print(f"final loss {logs[-1]['loss']:.3f}; logs in {out / 'logs' / 'train.jsonl'}")


if __name__ == "__main__":
    main()

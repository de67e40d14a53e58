"""Evaluation-while-training benchmark on CPU (not run by CI): a 200-step DAPT of the tiny test LLaMA on the
shared notes with the held-out loss every 20 steps, the curve read back from TensorBoard's event file
(``EventAccumulator``), and ``train plan``'s time estimate against the measured run.

The run goes through the real command (``python -m training.trainer pretrain``) with 10% of the notes held
out by seed. The plan is asked for the same recipe, shape and token count with ``--gpu cpu --gpus 1``: its
peak is this CPU's measured fp32 matmul rate (with the run's thread count) and its MFU the default; the
ratio plan / measured and the MFU the run achieved are printed. ``--size small`` trains the 256-wide,
4-layer model of bench_train.py instead of the 64-wide, 2-layer test one. The last line is JSON.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python tests/bench/bench_train_eval.py [--steps 200] [--size tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4}


def build(work: Path, size: str) -> tuple[Path, Path]:
    """The model directory and the notes corpus (every shared note, one JSONL row each)."""
    from quantize.notes import load_notes
    from tests.fixtures_llama import build_tiny_checkpoint, train_sentencepiece

    model_dir = work / "model"
    if size == "tiny":
        build_tiny_checkpoint(model_dir, "llama1")
    else:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        train_sentencepiece(model_dir)
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=512, max_position_embeddings=2048, bos_token_id=1, eos_token_id=2, **SMALL)
        LlamaForCausalLM(cfg).save_pretrained(model_dir)
    corpus = work / "notes.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for _, t in load_notes()), encoding="utf-8")
    return model_dir, corpus


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--size", choices=("tiny", "small"), default="tiny")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8, help="global batch (sequences per optimizer step)")
    args = ap.parse_args()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work = Path(tempfile.mkdtemp(prefix="bench-train-eval-"))
    model_dir, corpus = build(work, args.size)
    sets = {
        "max_length": args.max_length,
        "global_batch_size": args.batch,
        "per_device_batch_size": 2,
        "learning_rate": 1e-3,
        "epochs": 100,
        "gradient_checkpointing": False,
        "logging_steps": 10,
        "save_steps": 0,
        "eval.split": 0.1,
        "eval.every_steps": args.every,
        "eval.max_batches": 20,
    }
    set_args = [x for k, v in sets.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = work / "run"
    cmd = [sys.executable, "-m", "training.trainer", "pretrain", "asclepius-7b-pretrain", "--model", str(model_dir)]
    t0 = time.perf_counter()
    subprocess.run(
        [*cmd, "--data", str(corpus), "--out", str(out), "--max-steps", str(args.steps), *set_args],
        check=True,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    manifest = json.loads((out / "model" / "asclepius-train-manifest.json").read_text())
    records = [json.loads(x) for x in (out / "logs" / "train.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "tokens_per_s" in r]

    acc = EventAccumulator(str(out / "logs" / "tensorboard"))
    acc.Reload()
    curve = [(e.step, e.value) for e in acc.Scalars("eval/loss")]
    print(f"held-out loss from TensorBoard ({manifest['data']['held_out']['documents']} held-out notes):")
    for step, loss in curve:
        print(f"  step {step:4d}  loss {loss:.4f}  ppl {2.718281828459045**loss:9.2f}")

    tokens = args.steps * args.batch * args.max_length  # full blocks: every token is trained on
    plan_cmd = [sys.executable, "-m", "training.trainer", "plan", "asclepius-7b-pretrain", "--model", str(model_dir)]
    plan_cmd += ["--gpu", "cpu", "--gpus", "1", "--json", "--tokens", str(tokens), "--strategy", "ddp"]
    plan_cmd += [
        x for k in ("max_length", "global_batch_size", "per_device_batch_size") for x in ("--set", f"{k}={sets[k]}")
    ]
    plan = json.loads(subprocess.run(plan_cmd, check=True, capture_output=True, text=True, cwd=ROOT, env=env).stdout)
    seconds = manifest["seconds"]  # the training loop, evaluations included (model loading and saving not)
    # Time in training steps alone: tokens / mean tokens/s of the logged windows (evaluation excluded).
    tps = sum(r["tokens_per_s"] for r in train_records) / len(train_records)
    measured_mfu = plan["flops_per_token"] * tps / (plan["peak_tflops"] * 1e12)
    ratio = plan["estimated_hours"] * 3600 / seconds
    print(
        f"plan: {plan['estimated_hours'] * 3600:.1f} s for {tokens:,} tokens at MFU {plan['mfu']:.0%} of a measured "
        f"{plan['peak_tflops'] * 1000:.1f} GFLOP/s; measured {seconds:.1f} s in the loop ({wall:.1f} s with start-up): "
        f"plan/measured {ratio:.3f}; the run reached MFU {measured_mfu:.2%} ({tps:,.0f} tokens/s)"
    )
    result = {
        "bench": "train_eval",
        "size": args.size,
        "params": plan["params"],
        "steps": args.steps,
        "eval_every": args.every,
        "heldout_curve": curve,
        "best": manifest["eval"]["best"],
        "loop_seconds": seconds,
        "wall_seconds": round(wall, 2),
        "tokens": tokens,
        "tokens_per_s": round(tps, 1),
        "cpu_peak_gflops": round(plan["peak_tflops"] * 1000, 2),
        "plan_seconds": round(plan["estimated_hours"] * 3600, 2),
        "plan_over_measured": round(ratio, 4),
        "measured_mfu": round(measured_mfu, 5),
        "threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

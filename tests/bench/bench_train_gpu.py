"""GPU benchmark (not run by CI; needs one CUDA GPU; NOT YET RUN anywhere): the one script to run on a GPU
machine. It proves the GPU paths of the trainer through the real command and records their figures.

A random-weight ~1.1 B LLaMA (TinyLlama-1.1B's shape: 22 layers x 2048, 32 heads, 4 KV heads, 32000 vocab)
is built here (nothing downloads); the tokenizer is the test SentencePiece one (ids < 512) inside the
32000-row embedding. Data: the shared notes (DAPT: every note; SFT: note + a task preset's example question
+ an answer cut from the note). Every path runs the same steps on the same data with the same seed, in bf16,
through ``accelerate launch --num_processes 1 --config_file <written here> -m training.trainer``:

    dapt-fsdp        pretrain, FSDP full shard on 1 GPU, SDPA (asclepius_packed_sdpa)
    dapt-fsdp-flash  the same with FlashAttention-2 (when flash_attn is installed)
    dapt-zero3       pretrain, DeepSpeed ZeRO-3 (when deepspeed is installed)
    sft-fsdp         SFT (packed), FSDP, SDPA
    sft-fsdp-flash   the same with FlashAttention-2
    sft-zero3        SFT, DeepSpeed ZeRO-3
    sft-lora         SFT with ``--set adapter=lora`` (when the recipe has the adapter field)
    sft-qlora        SFT with ``--set adapter=qlora`` (also needs bitsandbytes)

Per path: tokens/s (median of the logged windows after the first fifth), MFU = FLOPs/token (``train plan``'s
6N + 12 x layers x hidden x seq) x tokens/s / the GPU's dense bf16 peak, peak memory against ``train plan``'s
estimate for the same shape, batch and strategy, and the held-out loss at the end. Loss equivalence: the
step losses of each path against its stage's reference path (``dapt-fsdp``, ``sft-fsdp``): full fine-tuning
paths must agree within bf16 noise (``--tolerance``, default 2% relative, max over steps); LoRA/QLoRA start
from the same model (adapter B = 0), so only their first step's loss is compared. The last line is JSON;
``--out FILE`` also writes it. A path whose package is missing is reported as skipped, not failed.

    PYTHONPATH=. python tests/bench/bench_train_gpu.py --steps 60 [--paths dapt-fsdp,sft-fsdp] [--out gpu.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHAPE = dict(
    hidden_size=2048,
    intermediate_size=5632,
    num_hidden_layers=22,
    num_attention_heads=32,
    num_key_value_heads=4,
    vocab_size=32000,
)
GPU_KEYS = {"H200": "h100-sxm", "H100": "h100-sxm", "A100": "a100-80g", "L40S": "l40s", "4090": "rtx4090"}
"""A CUDA device name's part -> the ``train plan --gpu`` row whose dense bf16 peak it has (the H200 has the
H100 SXM's compute)."""
PATHS = (
    "dapt-fsdp",
    "dapt-fsdp-flash",
    "dapt-zero3",
    "sft-fsdp",
    "sft-fsdp-flash",
    "sft-zero3",
    "sft-lora",
    "sft-qlora",
)

FSDP = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
mixed_precision: bf16
num_machines: 1
num_processes: 1
use_cpu: false
fsdp_config:
  fsdp_version: 1
  fsdp_sharding_strategy: FULL_SHARD
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer
  fsdp_backward_prefetch: BACKWARD_PRE
  fsdp_state_dict_type: SHARDED_STATE_DICT
  fsdp_sync_module_states: true
  fsdp_use_orig_params: true
  fsdp_activation_checkpointing: true
"""
ZERO3 = """compute_environment: LOCAL_MACHINE
distributed_type: DEEPSPEED
mixed_precision: bf16
num_machines: 1
num_processes: 1
use_cpu: false
deepspeed_config:
  zero_stage: 3
  zero3_init_flag: true
  zero3_save_16bit_model: true
  offload_optimizer_device: none
  offload_param_device: none
  gradient_accumulation_steps: {accum}
  gradient_clipping: 1.0
"""


def build(work: Path, sft_rows: int) -> tuple[Path, Path, Path]:
    """The random ~1.1 B checkpoint, a notes corpus and an SFT file."""
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
    notes = [t for _, t in load_notes()]
    corpus = work / "notes.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in notes))
    rng = random.Random(0)
    rows = []
    for i in range(sft_rows):
        words = notes[i % len(notes)].split()
        start = rng.randrange(max(1, len(words) - 80))
        answer = " ".join(words[start : start + rng.randint(10, 80)])
        rows.append(
            {"note": notes[i % len(notes)], "question": rng.choice(rng.choice(TASKS).examples), "answer": answer}
        )
    sft = work / "sft.jsonl"
    sft.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model_dir, corpus, sft


def available(path: str) -> str | None:
    """Why ``path`` cannot run here, or None."""
    from training.trainer.recipe import Recipe

    if "flash" in path and importlib.util.find_spec("flash_attn") is None:
        return "flash_attn not installed"
    if "zero3" in path and importlib.util.find_spec("deepspeed") is None:
        return "deepspeed not installed"
    if ("lora" in path) and "adapter" not in Recipe.__dataclass_fields__:
        return "the recipe has no adapter field in this checkout"
    if path.endswith("qlora") and importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes not installed"
    return None


def run_path(path: str, args: argparse.Namespace, work: Path, model: Path, corpus: Path, sft: Path) -> dict:
    stage = "pretrain" if path.startswith("dapt") else "sft"
    accum = args.accum
    sets = {
        "global_batch_size": args.per_device * accum,
        "per_device_batch_size": args.per_device,
        "max_length": 2048,
        "logging_steps": 1,
        "save_steps": 0,
        "epochs": 100,
        "eval.split": 0.05,
        "eval.every_steps": 0,  # once, at the end
        "eval.max_batches": 8,
        "attn_implementation": "flash_attention_2" if "flash" in path else "asclepius_packed_sdpa",
    }
    if stage == "sft":
        sets["packing"] = True
    if path.endswith("lora"):
        sets["adapter"] = "qlora" if path.endswith("qlora") else "lora"
    cfg = work / f"{path}.yaml"
    cfg.write_text(ZERO3.format(accum=accum) if "zero3" in path else FSDP)
    out = work / path
    recipe = "asclepius-7b-pretrain" if stage == "pretrain" else "asclepius-7b-sft"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg), "--num_processes", "1"]
    cmd += ["-m", "training.trainer", stage, recipe, "--model", str(model), "--out", str(out)]
    cmd += ["--data", str(corpus if stage == "pretrain" else sft), "--max-steps", str(args.steps)]
    cmd += [x for k, v in sets.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    if done.returncode != 0:
        return {"path": path, "status": "failed", "exit": done.returncode, "stderr": done.stderr[-3000:]}
    records = [json.loads(x) for x in (out / "logs" / "train.jsonl").read_text().splitlines()]
    steps = [r for r in records if "tokens_per_s" in r]
    evals = [r for r in records if "eval_loss" in r]
    plan = subprocess.run(
        [sys.executable, "-m", "training.trainer", "plan", recipe, "--model", str(model), "--gpus", "1", "--json"]
        + ["--strategy", "fsdp", "--gpu-mem", "80", "--tokens", "1"]
        + [x for k in ("global_batch_size", "per_device_batch_size") for x in ("--set", f"{k}={sets[k]}")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    planned = json.loads(plan.stdout)
    return {
        "path": path,
        "status": "ok",
        "seconds": round(time.perf_counter() - t0, 1),
        "losses": [r["loss"] for r in steps],
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steps[len(steps) // 5 :] or steps),
        "peak_mem_gib": max(r["peak_mem_mb"] for r in steps) / 1024,
        "plan_gib": planned["total_gb"] * 1e9 / 2**30,
        "flops_per_token": planned["flops_per_token"],
        "heldout_loss": evals[-1]["eval_loss"] if evals else None,
    }


def compare(results: dict[str, dict], tolerance: float) -> dict[str, dict]:
    """Each path's step losses against its stage's reference path."""
    out = {}
    for name, r in results.items():
        ref = results.get("dapt-fsdp" if name.startswith("dapt") else "sft-fsdp")
        if r.get("status") != "ok" or not ref or ref.get("status") != "ok" or ref is r:
            continue
        pairs = list(zip(r["losses"], ref["losses"], strict=False))
        if name.endswith("lora"):
            pairs = pairs[:1]  # adapters train other weights: only the untouched first step must agree
        worst = max(abs(a - b) / abs(b) for a, b in pairs)
        out[name] = {"against": ref["path"], "steps": len(pairs), "max_rel_diff": worst, "ok": worst <= tolerance}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--per-device", type=int, default=4)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument("--peak-tflops", type=float, help="GPU dense bf16 peak (default: from the GPU's name)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")
    name = torch.cuda.get_device_name(0)
    from training.trainer.timeplan import ACCELERATORS

    key = next((v for k, v in GPU_KEYS.items() if k in name), None)
    peak = args.peak_tflops or (ACCELERATORS[key].peak_tflops if key else None)
    work = Path(tempfile.mkdtemp(prefix="bench-train-gpu-"))
    model, corpus, sft = build(work, n := args.per_device * args.accum * (args.steps + 10))
    results: dict[str, dict] = {}
    for path in args.paths.split(","):
        why = available(path)
        results[path] = (
            {"path": path, "status": "skipped", "why": why} if why else run_path(path, args, work, model, corpus, sft)
        )
        r = results[path]
        if r["status"] == "ok":
            mfu = r["flops_per_token"] * r["tokens_per_s"] / (peak * 1e12) if peak else None
            r["mfu"] = mfu
            print(
                f"{path:16s} {r['tokens_per_s']:>10,.0f} tok/s  MFU {mfu or 0:6.1%}  peak {r['peak_mem_gib']:5.1f} GiB "
                f"(plan {r['plan_gib']:5.1f})  final loss {r['losses'][-1]:.3f}  held-out {r['heldout_loss']}",
                flush=True,
            )
        else:
            print(f"{path:16s} {r['status']}: {r.get('why') or r.get('stderr', '')[-500:]}", flush=True)
    equivalence = compare(results, args.tolerance)
    for path, e in equivalence.items():
        print(
            f"{path:16s} vs {e['against']}: max relative loss difference {e['max_rel_diff']:.4f} "
            f"over {e['steps']} steps"
        )
    summary = {
        "bench": "train_gpu",
        "gpu": name,
        "peak_tflops": peak,
        "torch": torch.__version__,
        "sft_rows": n,
        "results": {k: {kk: vv for kk, vv in v.items() if kk != "losses"} for k, v in results.items()},
        "equivalence": equivalence,
    }
    line = json.dumps(summary)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()

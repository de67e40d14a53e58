"""``asclepius train plan``'s wall-time estimate: model FLOPs over the accelerators' useful FLOP/s.

FLOPs per trained token = 6 x N + 12 x layers x hidden x seq (forward + backward; the second term is the
attention scores and their weighted sum, PaLM's appendix-B formula with full, non-causal s x s products),
where N counts every parameter that takes part in a matmul: all of them but the input embedding table, a
lookup (a tied table counts once, as the LM head). Gradient checkpointing's recomputation is not model FLOPs:
it shows up as a lower MFU. The wall time is

    hours = tokens x FLOPs/token / (GPUs x peak x MFU) / 3600

with ``peak`` the accelerator's dense bf16 tensor-core peak (datasheet, no sparsity) and MFU the fraction of
it a run achieves. ``cpu`` has no datasheet figure: its peak is measured here (fp32 matmul, all threads).

The Asclepius model card (13B: pretraining 1 h 52 min, SFT 12 h 16 min; 7B pretraining 1 h 33 min; 8x A100
80G) states times, not token counts; see docs/model-builders.md for the token counts assumed and the MFU
that reproduces each time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from training.trainer.plan import ModelShape
from training.trainer.recipe import Recipe


@dataclass(frozen=True)
class GpuSpec:
    """One row of the table ``train plan --gpu NAME`` picks from."""

    label: str
    """The name printed in the plan."""
    peak_tflops: float | None
    """Dense bf16 peak (TFLOP/s per device, datasheet); None: measured (CPU)."""
    mem_gb: float | None
    """Memory per device, the default ``--gpu-mem``; None: the machine's RAM (CPU)."""


ACCELERATORS: dict[str, GpuSpec] = {
    "a100-40g": GpuSpec("NVIDIA A100 40GB", 312.0, 40.0),
    "a100-80g": GpuSpec("NVIDIA A100 80GB", 312.0, 80.0),
    "h100-sxm": GpuSpec("NVIDIA H100 SXM", 989.0, 80.0),
    "l40s": GpuSpec("NVIDIA L40S", 362.0, 48.0),
    "rtx4090": GpuSpec("NVIDIA RTX 4090", 165.0, 24.0),
    "cpu": GpuSpec("this machine's CPU (fp32, peak measured)", None, None),
}
DEFAULT_GPU = "a100-80g"
DEFAULT_MFU = 0.40
"""The MFU assumed unless ``--mfu`` says otherwise: FSDP full shard with gradient checkpointing on 8 A100s
reproduces the 13B model card within x1.2 at 0.46 (pretraining) and 0.30 (padded SFT) under the token
counts assumed in the docs; 0.40 sits between them."""


@dataclass
class TimeEstimate:
    """The time part of a plan (``train plan --json`` merges it beside the memory figures)."""

    gpu: str
    """The accelerator's label."""
    peak_tflops: float
    """Per device; measured for the CPU."""
    mfu: float
    flops_per_token: float
    """6 x N + 12 x layers x hidden x max_length."""
    matmul_params: int
    """N: every parameter except the input embedding table."""
    tokens: int | None
    """Tokens trained on (all epochs, capped by max_steps); None when not known."""
    tokens_source: str
    """Where ``tokens`` comes from."""
    hours_per_billion_tokens: float
    estimated_hours: float | None
    """None without ``--tokens`` or a recipe ``max_steps``."""
    formula: str


def flops_per_token(shape: ModelShape, seq: int) -> tuple[float, int]:
    """(training FLOPs per token, N) for a LLaMA-shaped model at sequence length ``seq``."""
    n = shape.params - (0 if shape.tied else shape.vocab * shape.hidden)
    return 6.0 * n + 12.0 * shape.layers * shape.hidden * seq, n


def measure_cpu_tflops(seconds: float = 0.5, size: int = 1024) -> float:
    """fp32 matmul throughput of this CPU with torch's threads (TFLOP/s): the CPU's stand-in for a peak."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # first call: thread pool and allocation
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        a @ b
        n += 1
    return 2.0 * size**3 * n / elapsed / 1e12


def trained_tokens(recipe: Recipe, tokens_per_epoch: int | None) -> tuple[int | None, str]:
    """Tokens a run of ``recipe`` trains on, and where the figure comes from."""
    cap = recipe.max_steps * recipe.global_batch_size * recipe.max_length if recipe.max_steps else None
    if tokens_per_epoch is not None:
        total = int(tokens_per_epoch * recipe.epochs)
        if cap is not None and cap < total:
            return cap, "max_steps x global batch x max_length (full sequences; fewer than --tokens x epochs)"
        return total, f"--tokens {tokens_per_epoch:,} x {recipe.epochs:g} epoch(s)"
    if cap is not None:
        return cap, "max_steps x global batch x max_length (full sequences: an upper bound for SFT)"
    return None, "unknown: give --tokens N (tokens in one epoch of the data)"


def estimate_time(
    recipe: Recipe,
    shape: ModelShape,
    gpu: str = DEFAULT_GPU,
    gpus: int = 8,
    mfu: float = DEFAULT_MFU,
    tokens_per_epoch: int | None = None,
    peak_tflops: float | None = None,
) -> TimeEstimate:
    """The wall time of ``recipe`` on ``gpus`` x ``gpu`` at ``mfu`` (``peak_tflops`` overrides the table; the
    CPU's is measured when not given)."""
    acc = ACCELERATORS[gpu]
    peak = peak_tflops or acc.peak_tflops or measure_cpu_tflops()
    if not (0 < mfu <= 1 and gpus > 0):
        raise ValueError("--mfu must be in (0, 1] and --gpus > 0")
    per_token, n = flops_per_token(shape, recipe.max_length)
    tokens, source = trained_tokens(recipe, tokens_per_epoch)
    useful = gpus * peak * 1e12 * mfu
    per_billion = 1e9 * per_token / useful / 3600
    return TimeEstimate(
        gpu=acc.label,
        peak_tflops=round(peak, 3),
        mfu=mfu,
        flops_per_token=per_token,
        matmul_params=n,
        tokens=tokens,
        tokens_source=source,
        hours_per_billion_tokens=per_billion,
        estimated_hours=None if tokens is None else tokens * per_token / useful / 3600,
        formula="hours = tokens x (6 N + 12 x layers x hidden x max_length) / (GPUs x peak x MFU) / 3600",
    )


def format_time(t: TimeEstimate, gpus: int) -> str:
    hours = "unknown" if t.estimated_hours is None else _hm(t.estimated_hours)
    return "\n".join(
        [
            f"  time on {gpus} x {t.gpu} at {t.peak_tflops:g} TFLOP/s peak and MFU {t.mfu:.0%} (assumed):",
            f"    {t.flops_per_token / 1e9:.1f} GFLOP per token (6 x {t.matmul_params / 1e9:.2f} B + attention)",
            f"    tokens: {'?' if t.tokens is None else f'{t.tokens:,}'} ({t.tokens_source})",
            f"    {_hm(t.hours_per_billion_tokens)} per billion tokens -> estimated {hours}",
        ]
    )


def _hm(hours: float) -> str:
    minutes = round(hours * 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def to_dict(t: TimeEstimate) -> dict[str, Any]:
    return asdict(t)

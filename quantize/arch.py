"""Supported architectures, as data, and the hyperparameters read from ``config.json``.

Adding an architecture means adding a row to ``ARCHITECTURES`` (and, if its layout differs, a tensor
transform), not another ``if`` on model names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quantize.errors import QuantizeError


@dataclass(frozen=True)
class ArchSpec:
    hf_name: str
    gguf_arch: str
    """The ``gguf.MODEL_ARCH`` member name; llama.cpp runs LLaMA-1/2/3 and Mistral as ``llama``."""
    label: str


ARCHITECTURES: dict[str, ArchSpec] = {
    "LlamaForCausalLM": ArchSpec("LlamaForCausalLM", "LLAMA", "LLaMA-1/2/3"),
    "MistralForCausalLM": ArchSpec("MistralForCausalLM", "LLAMA", "Mistral"),
}


def supported_list() -> str:
    return ", ".join(f"{a.hf_name} ({a.label})" for a in ARCHITECTURES.values())


@dataclass(frozen=True)
class HParams:
    """Everything the GGUF header and the shape checks need, validated once."""

    arch: ArchSpec
    vocab_size: int
    hidden: int
    intermediate: int
    layers: int
    n_heads: int
    n_kv_heads: int
    context: int
    rms_eps: float
    rope_theta: float
    rope_linear_factor: float | None
    tie_embeddings: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.n_heads

    def expected_shape(self, tensor_kind: str) -> tuple[int, ...] | None:
        """HF ``[out, in]`` shape for a ``gguf.MODEL_TENSOR`` member name, or None if not checked."""
        h, hd = self.hidden, self.head_dim
        return {
            "TOKEN_EMBD": (self.vocab_size, h),
            "OUTPUT": (self.vocab_size, h),
            "OUTPUT_NORM": (h,),
            "ATTN_NORM": (h,),
            "FFN_NORM": (h,),
            "ATTN_Q": (self.n_heads * hd, h),
            "ATTN_K": (self.n_kv_heads * hd, h),
            "ATTN_V": (self.n_kv_heads * hd, h),
            "ATTN_OUT": (h, self.n_heads * hd),
            "FFN_GATE": (self.intermediate, h),
            "FFN_UP": (self.intermediate, h),
            "FFN_DOWN": (h, self.intermediate),
        }.get(tensor_kind)


def _rope(config: dict[str, Any]) -> tuple[float, float | None, list[str]]:
    """(theta, linear factor or None, problems); handles both the pre-v5 and the v5 config layouts."""
    params = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    theta = config.get("rope_theta", params.get("rope_theta", 10000.0))
    rope_type = scaling.get("rope_type", scaling.get("type")) or params.get("rope_type", "default")
    factor = scaling.get("factor", params.get("factor"))
    if rope_type in (None, "default"):
        return float(theta), None, []
    if rope_type == "linear" and factor:
        return float(theta), float(factor), []
    return float(theta), None, [f"rope scaling {rope_type!r} is not supported (only none or linear)"]


def read_hparams(config: dict[str, Any]) -> HParams:
    archs = config.get("architectures") or []
    arch = next((ARCHITECTURES[a] for a in archs if a in ARCHITECTURES), None)
    if arch is None:
        got = ", ".join(archs) or f"model_type {config.get('model_type')!r} with no architectures"
        raise QuantizeError(f"unsupported architecture: {got}; supported: {supported_list()}")
    problems = []
    need = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    missing = [k for k in need if not isinstance(config.get(k), int)]
    if missing:
        raise QuantizeError(f"config.json lacks {', '.join(missing)}")
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_heads
    hidden = config["hidden_size"]
    if hidden % n_heads or n_heads % n_kv:
        problems.append(f"hidden_size {hidden}, {n_heads} heads and {n_kv} KV heads do not divide evenly")
    head_dim = config.get("head_dim")
    if head_dim is not None and head_dim * n_heads != hidden:
        problems.append(f"head_dim {head_dim} x {n_heads} heads != hidden_size {hidden} (not supported)")
    if config.get("attention_bias") or config.get("mlp_bias"):
        problems.append("attention or MLP biases are not supported for LLaMA-family conversion")
    if config.get("hidden_act", "silu") != "silu":
        problems.append(f"activation {config.get('hidden_act')!r} is not supported (LLaMA uses silu)")
    theta, factor, rope_problems = _rope(config)
    problems += rope_problems
    if problems:
        raise QuantizeError("config.json: " + "; ".join(problems))
    return HParams(
        arch=arch,
        vocab_size=config["vocab_size"],
        hidden=hidden,
        intermediate=config["intermediate_size"],
        layers=config["num_hidden_layers"],
        n_heads=n_heads,
        n_kv_heads=n_kv,
        context=int(config.get("max_position_embeddings") or 2048),
        rms_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=theta,
        rope_linear_factor=factor,
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
    )

"""Supported architectures, as data, and the hyperparameters read from ``config.json``.

Adding an architecture means adding a row to ``ARCHITECTURES`` (and, if its layout differs, a tensor
transform), not another ``if`` on model names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.core.bounds import MODEL_HPARAM_MAX
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


def _number(config: dict[str, Any], key: str, default: float) -> tuple[float, list[str]]:
    """A finite positive float setting (``rms_norm_eps``, ``rope_theta``), or the problem with it."""
    value = config.get(key)
    if value is None:
        return default, []
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        return default, [f"{key} must be a positive number, not {_shown(value)}"]
    return float(value), []


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str | int | float | None) else f"a JSON {type(value).__name__}"


def _whole(config: dict[str, Any], key: str) -> tuple[int | None, list[str]]:
    value = config.get(key)
    if value is None:
        return None, []
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MODEL_HPARAM_MAX:
        return None, [f"{key} must be a whole number 1..{MODEL_HPARAM_MAX:,}, not {_shown(value)}"]
    return value, []


DIMENSIONS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
"""The ``config.json`` integers every LLaMA-family shape is built from (``num_key_value_heads`` defaults
to the head count)."""


def config_dims(config: Any, where: str = "config.json") -> dict[str, int]:
    """The shape integers of a ``config.json`` (``DIMENSIONS`` and ``num_key_value_heads``), each a whole
    number 1..``MODEL_HPARAM_MAX``, heads dividing the width and KV heads dividing the heads; or a
    QuantizeError listing every problem (``where`` names the file). The one check of a config's shape
    (convert, ``train plan``): a zero head count would otherwise divide by zero."""
    if not isinstance(config, dict):
        raise QuantizeError(f"{where} must be a JSON object of settings, not a JSON {type(config).__name__}")
    dims: dict[str, int] = {}
    problems = []
    for key in (*DIMENSIONS, "num_key_value_heads"):
        value, bad = _whole(config, key)
        problems += bad
        if value is not None:
            dims[key] = value
    missing = [k for k in DIMENSIONS if k not in dims and config.get(k) is None]
    if missing:
        problems.insert(0, f"lacks {', '.join(missing)}")
    if problems:
        raise QuantizeError(f"{where}: " + "; ".join(problems))
    dims.setdefault("num_key_value_heads", dims["num_attention_heads"])
    hidden, n_heads, n_kv = dims["hidden_size"], dims["num_attention_heads"], dims["num_key_value_heads"]
    if hidden % n_heads or n_heads % n_kv:
        raise QuantizeError(f"{where}: hidden_size {hidden}, {n_heads} heads and {n_kv} KV heads do not divide evenly")
    return dims


def _rope(config: dict[str, Any]) -> tuple[float, float | None, list[str]]:
    """(theta, linear factor or None, problems); handles both the pre-v5 and the v5 config layouts."""
    params = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    if not isinstance(params, dict) or not isinstance(scaling, dict):
        return 10000.0, None, ["rope_parameters and rope_scaling must be JSON objects"]
    theta, problems = _number({"rope_theta": params.get("rope_theta")} | config, "rope_theta", 10000.0)
    rope_type = scaling.get("rope_type", scaling.get("type")) or params.get("rope_type", "default")
    factor = scaling.get("factor", params.get("factor"))
    if rope_type in (None, "default"):
        return theta, None, problems
    if rope_type == "linear" and factor:
        factor_value, bad = _number({"factor": factor}, "factor", 1.0)
        return theta, factor_value, problems + [f"rope scaling {b}" for b in bad]
    return theta, None, [*problems, f"rope scaling {_shown(rope_type)} is not supported (only none or linear)"]


def read_hparams(config: dict[str, Any]) -> HParams:
    archs = config.get("architectures") if isinstance(config, dict) else None
    archs = [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []
    arch = next((ARCHITECTURES[a] for a in archs if a in ARCHITECTURES), None)
    if arch is None:
        got = ", ".join(archs) or f"model_type {config.get('model_type')!r} with no architectures"
        raise QuantizeError(f"unsupported architecture: {got}; supported: {supported_list()}")
    dims = config_dims(config)
    hidden, n_heads = dims["hidden_size"], dims["num_attention_heads"]
    problems = []
    head_dim = config.get("head_dim")
    if head_dim is not None and head_dim != hidden // n_heads:
        problems.append(f"head_dim {_shown(head_dim)} x {n_heads} heads != hidden_size {hidden} (not supported)")
    if config.get("attention_bias") or config.get("mlp_bias"):
        problems.append("attention or MLP biases are not supported for LLaMA-family conversion")
    if config.get("hidden_act", "silu") != "silu":
        problems.append(f"activation {_shown(config.get('hidden_act'))} is not supported (LLaMA uses silu)")
    context, bad_context = _whole(config, "max_position_embeddings")
    rms_eps, bad_eps = _number(config, "rms_norm_eps", 1e-6)
    theta, factor, rope_problems = _rope(config)
    problems += bad_context + bad_eps + rope_problems
    if problems:
        raise QuantizeError("config.json: " + "; ".join(problems))
    return HParams(
        arch=arch,
        vocab_size=dims["vocab_size"],
        hidden=hidden,
        intermediate=dims["intermediate_size"],
        layers=dims["num_hidden_layers"],
        n_heads=n_heads,
        n_kv_heads=dims["num_key_value_heads"],
        context=context or 2048,
        rms_eps=rms_eps,
        rope_theta=theta,
        rope_linear_factor=factor,
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
    )

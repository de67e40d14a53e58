"""Bad-input rows for ``quantize`` and ``train``: numeric flags, checkpoint directories and their config.json.

Numeric flags are refused by argparse (exit 2) before any work, with the ranges of ``app.core.bounds``. A
checkpoint that does not exist, or whose ``config.json`` is not a usable shape (a list, nested past the
JSON parser, a zero head count, wrong types), is a model problem (exit 4) with one line naming it, and no
output folder is created. The ``hf_dir`` step makes a checkpoint directory that passes the file checks
(config, tokenizer, a safetensors file with an empty header) around the given ``config.json`` text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.reliability.cases import MODEL, USAGE, Case

QQ = ("quantize", "quantize", "{tmp}/in.gguf")
VERIFY = ("quantize", "verify", "{tmp}/in.gguf", "--notes", "{note}")
CONVERT = ("quantize", "convert", "{tmp}/ck", "-o", "{tmp}/out/m.gguf")
PLAN = ("train", "plan", "asclepius-7b-sft")
PLAN_MODEL = (*PLAN, "--model", "{tmp}/ck")

SHAPE = '"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "vocab_size": 512'
ZERO_HEADS = '{"architectures": ["LlamaForCausalLM"], "num_attention_heads": 0, ' + SHAPE + "}"
BAD_TYPES = (
    '{"architectures": ["LlamaForCausalLM"], "num_attention_heads": 4, "rms_norm_eps": "small", '
    '"max_position_embeddings": [2048], "rope_scaling": [1], ' + SHAPE + "}"
)
NESTED = "[" * 100_000 + "]" * 100_000
EMPTY_SAFETENSORS = (2).to_bytes(8, "little") + b"{}"


def _hf_dir(tmp: Path, name: str, config: str) -> None:
    d = tmp / name
    d.mkdir()
    (d / "config.json").write_text(config, encoding="utf-8")
    (d / "tokenizer.json").write_text("{}", encoding="utf-8")
    (d / "model.safetensors").write_bytes(EMPTY_SAFETENSORS)


STEPS: dict[str, Any] = {"hf_dir": _hf_dir}


def _ck(config: str) -> tuple[tuple[Any, ...], ...]:
    return (("hf_dir", "ck", config),)


CASES: tuple[Case, ...] = (
    # -- quantize quantize: --threads was int (0 = all cores); -5 was accepted, 100000 aborted llama.cpp ------
    Case("quantize-threads-negative", (*QQ, "--threads", "-5"), USAGE, "threads must be 1.."),
    Case("quantize-threads-0", (*QQ, "--threads", "0"), USAGE, "threads must be 1.."),
    Case("quantize-threads-huge", (*QQ, "--threads", "100000"), USAGE, "threads must be 1.."),
    Case("quantize-threads-text", (*QQ, "--threads", "all"), USAGE, "threads must be a whole number"),
    Case(
        "quantize-out-dir-before-input",
        ("quantize", "quantize", "{tmp}/nope.gguf", "--out-dir", "{tmp}/out"),
        MODEL,
        "no such file",
        absent=("{tmp}/out",),
    ),
    # -- quantize verify: windows and counts -----------------------------------------------------------------
    Case("verify-ctx-0", (*VERIFY, "--ctx", "0"), USAGE, "perplexity window must be 16.."),
    Case("verify-ctx-negative", (*VERIFY, "--ctx", "-1"), USAGE, "perplexity window must be 16.."),
    Case("verify-ctx-huge", (*VERIFY, "--ctx", "1000000"), USAGE, "perplexity window must be 16.."),
    Case("verify-ppl-tokens-0", (*VERIFY, "--ppl-tokens", "0"), USAGE, "perplexity tokens must be 16.."),
    Case("verify-prompts-0", (*VERIFY, "--prompts", "0"), USAGE, "prompts must be 1.."),
    Case("verify-max-tokens-0", (*VERIFY, "--max-tokens", "0"), USAGE, "max tokens must be 1.."),
    Case(
        "verify-checkpoint-missing",
        (*VERIFY, "--checkpoint", "{tmp}/nope"),
        MODEL,
        "no such checkpoint",
        setup=(("toy_gguf", "in.gguf"),),
        hidden=("huggingface.co",),
    ),
    # -- quantize convert: the checkpoint and its config.json -----------------------------------------------
    Case("convert-checkpoint-missing", CONVERT, MODEL, "no such checkpoint", absent=("{tmp}/out",)),
    Case(
        "convert-config-heads-0",
        CONVERT,
        MODEL,
        "num_attention_heads must be a whole number 1..",
        setup=_ck(ZERO_HEADS),
        absent=("{tmp}/out",),
    ),
    Case("convert-config-list", CONVERT, MODEL, "not a JSON object", setup=_ck("[1, 2]"), absent=("{tmp}/out",)),
    Case("convert-config-nested", CONVERT, MODEL, "nested too deeply", setup=_ck(NESTED), absent=("{tmp}/out",)),
    Case(
        "convert-config-bad-types",
        CONVERT,
        MODEL,
        "rms_norm_eps must be a positive number",
        setup=_ck(BAD_TYPES),
        absent=("{tmp}/out",),
    ),
    # -- train plan / sft: numbers and --model -----------------------------------------------------------------
    Case("train-plan-gpu-mem-nan", (*PLAN, "--gpu-mem", "nan"), USAGE, "GPU memory must be a finite number"),
    Case("train-plan-gpu-mem-inf", (*PLAN, "--gpu-mem", "inf"), USAGE, "GPU memory must be a finite number"),
    Case("train-plan-gpu-mem-0", (*PLAN, "--gpu-mem", "0"), USAGE, "GPU memory must be a finite number from 1"),
    Case("train-plan-gpus-0", (*PLAN, "--gpus", "0"), USAGE, "GPUs must be 1.."),
    Case("train-plan-gpus-negative", (*PLAN, "--gpus", "-8"), USAGE, "GPUs must be 1.."),
    Case(
        "train-sft-max-steps-0",
        ("train", "sft", "asclepius-7b-sft", "--model", "m", "--data", "d", "--out", "o", "--max-steps", "0"),
        USAGE,
        "max steps must be 1..",
    ),
    Case("train-plan-model-missing", (*PLAN, "--model", "{tmp}/nope"), MODEL, "does not exist"),
    Case("train-plan-model-file", (*PLAN, "--model", "{note}"), MODEL, "is not a directory"),
    Case("train-plan-model-heads-0", PLAN_MODEL, MODEL, "num_attention_heads must be", setup=_ck(ZERO_HEADS)),
    Case("train-plan-model-config-list", PLAN_MODEL, MODEL, "not a JSON list", setup=_ck("[1, 2]")),
    Case("train-plan-model-config-nested", PLAN_MODEL, MODEL, "nested too deeply", setup=_ck(NESTED)),
)

"""Base checkpoint + LoRA adapter -> one merged checkpoint: the one merge, used by the trainer's output and by
``asclepius quantize convert --adapter ADAPTER BASE``.

The base is loaded in fp32 on the CPU, the adapter (PEFT: ``adapter_config.json`` +
``adapter_model.safetensors``) applied and folded into the weights (``merge_and_unload``: W + B A x alpha/r),
so the merged model computes what the base with its adapter computes, to fp32 rounding. A merge for
conversion is written in the base's own dtype (a bf16 base stays bf16, and ``--outtype auto`` picks what it
would for the base), with the base's tokenizer files and the training manifest of the adapter (its prompt
style), so the converter reads it as any trained checkpoint. peft and transformers load only here, inside the
call.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from quantize.checkpoint import TRAIN_MANIFEST, open_checkpoint, read_json
from quantize.errors import MissingExtraError, QuantizeError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
"""A checkpoint's tokenizer files, copied byte for byte wherever a checkpoint is written from another (the
trainer's output, a merge): training does not change the tokenizer, and transformers >= 5 would not re-save
the SentencePiece ``tokenizer.model`` that GGUF conversion reads."""


def check_adapter_dir(adapter_dir: Path) -> dict[str, Any]:
    """The adapter's config, or a QuantizeError saying why ``adapter_dir`` is not a LoRA adapter directory."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise QuantizeError(f"--adapter {adapter_dir}: not a directory (expected adapter_config.json and weights)")
    config = (
        read_json(adapter_dir / ADAPTER_CONFIG, "adapter config") if (adapter_dir / ADAPTER_CONFIG).is_file() else None
    )
    if not isinstance(config, dict):
        raise QuantizeError(f"{adapter_dir} is not an adapter directory: no readable {ADAPTER_CONFIG}")
    if config.get("peft_type") != "LORA":
        raise QuantizeError(f"{adapter_dir}: a {config.get('peft_type')!r} adapter; only LoRA adapters are merged")
    if not any((adapter_dir / n).is_file() for n in ADAPTER_WEIGHTS):
        raise QuantizeError(f"{adapter_dir} has no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")
    return config


def merge_adapter(base_dir: Path, adapter_dir: Path) -> Any:
    """The base model with the adapter merged in: a plain transformers model, fp32, on the CPU."""
    try:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
    except ImportError as exc:
        raise MissingExtraError(
            f"merging an adapter needs peft and transformers: pip install 'asclepius-desk[train]' ({exc})"
        ) from None
    check_adapter_dir(adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    try:
        model = PeftModel.from_pretrained(base, str(adapter_dir))
    except (ValueError, RuntimeError, KeyError) as exc:  # shapes or module names of another base
        raise QuantizeError(f"the adapter {adapter_dir} does not fit the base {base_dir}: {exc}") from None
    return model.merge_and_unload()


def base_dtype(base_dir: Path) -> str:
    """The dtype most of the base's matrix elements are stored in (``float32``, ``float16``, ``bfloat16``)."""
    ckpt = open_checkpoint(Path(base_dir))
    counts: Counter[str] = Counter()
    for meta in ckpt.tensors.values():
        if len(meta.shape) == 2:
            counts[meta.dtype] += meta.numel
    return counts.most_common(1)[0][0] if counts else "float32"


def copy_tokenizer_files(src: Path, out: Path) -> list[str]:
    """Copy the tokenizer files ``src`` has into ``out``; returns their names."""
    copied = [n for n in TOKENIZER_FILES if (Path(src) / n).is_file()]
    for name in copied:
        shutil.copyfile(Path(src) / name, Path(out) / name)
    return copied


def write_merged(base_dir: Path, adapter_dir: Path, out: Path) -> Path:
    """Merge into ``out`` (an empty or new directory): weights in the base's dtype, the base's config and
    tokenizer files, and the adapter's training manifest when it has one (else the base's)."""
    import torch

    base_dir, adapter_dir, out = Path(base_dir), Path(adapter_dir), Path(out)
    dtype = getattr(torch, base_dtype(base_dir))
    model = merge_adapter(base_dir, adapter_dir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = {k: v.detach().to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.config.dtype = dtype
    model.save_pretrained(out, state_dict=state, safe_serialization=True)
    copy_tokenizer_files(base_dir, out)
    for src in (adapter_dir, base_dir):
        if (src / TRAIN_MANIFEST).is_file():
            shutil.copyfile(src / TRAIN_MANIFEST, out / TRAIN_MANIFEST)
            break
    return out

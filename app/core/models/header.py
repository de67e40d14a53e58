"""A GGUF file's header, read and checked (``gguf_scan.scan_gguf``): the metadata a registry entry is built from.

A truncated download is caught here (its tensors would end past the end of the file), not in llama.cpp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.errors import ModelError
from app.core.infile import open_regular
from app.core.models.entries import printable
from app.core.models.gguf_scan import scan_gguf
from app.core.privatefile import os_problem
from resources.prompts import KEY_PROMPT_STYLE

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "gemma3")
"""LLaMA-family Asclepius models (LLaMA-1/2, Llama-3 and Mistral convert to ``llama``; llama.cpp also
names Mistral ``mistral`` in some converters) and the Gemma 3 demo model."""

_HF_SUFFIXES = (".safetensors", ".bin", ".pt")
"""A file with one of these names and no GGUF magic is most likely a checkpoint still to be converted."""


def read_gguf(path: Path) -> dict[str, Any]:
    """Read and check a GGUF header; raise ModelError with a specific message for anything wrong."""
    _check_magic(path)
    try:
        header = scan_gguf(path)
        end = header.data_end()
    except (ValueError, KeyError) as exc:
        raise ModelError(f"{path} is a damaged or truncated GGUF file: {exc}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {os_problem(exc)}") from None
    size = header.size
    if end > size:
        raise ModelError(
            f"{path} is truncated: its tensors need {end:,} bytes but the file has {size:,} "
            "(an interrupted download or copy?)"
        )
    meta = {k: v for k, v in header.metadata.items() if not k.startswith("tokenizer.ggml.")}
    arch = str(meta.get("general.architecture") or "")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelError(
            f"{path}: architecture {arch or 'unknown'!r} is not supported; supported: "
            + ", ".join(SUPPORTED_ARCHITECTURES)
        )
    ctx = meta.get(f"{arch}.context_length")
    if not ctx or isinstance(ctx, bool) or not isinstance(ctx, int):
        raise ModelError(f"{path}: the GGUF has no usable {arch}.context_length ({ctx!r}); cannot budget prompts")
    provenance = {
        k: str(v)
        for k, v in meta.items()
        if k.startswith(("asclepius.", "general.source", "general.license", "general.base_model"))
    }
    n_params = sum(t.n_elements for t in header.tensors.values())
    return {
        "architecture": arch,
        "name": printable(str(meta.get("general.name") or path.stem)),  # the file's own text: never obeyed
        "context_length": int(ctx),
        "file_type": _file_type_name(meta.get("general.file_type")),
        "parameter_count": n_params or None,
        "prompt_style": str(meta.get(KEY_PROMPT_STYLE) or ""),
        "provenance": provenance,
        "size_bytes": size,
    }


def _check_magic(path: Path) -> None:
    """ModelError for a path that is not there, a directory, not a regular file (a FIFO would block the read
    for good), unreadable, or a file without the GGUF magic bytes."""
    try:
        with open_regular(path, "model file", ModelError) as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {os_problem(exc)}") from None
    if magic != b"GGUF":
        hint = " (it looks like a Hugging Face checkpoint: convert it with `asclepius quantize convert`)"
        hint = hint if path.suffix in _HF_SUFFIXES else ""
        raise ModelError(f"{path} is not a GGUF file (no GGUF magic bytes){hint}")


def _file_type_name(ftype: Any) -> str:
    """``general.file_type`` as llama.cpp names it (``Q4_K_M``, ``F16``), without its ``MOSTLY_`` prefix."""
    if ftype is None:
        return "unknown"
    from gguf import LlamaFileType

    try:
        return LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"type {ftype}"

"""Session-cached tiny checkpoints for the quantize tests (each is built once, converted many times)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the quantize tests need the quantize extra")
pytest.importorskip("transformers", reason="the quantize tests need the quantize extra")

from tests.fixtures_llama import build_tiny_checkpoint, tiny_llama_gguf  # noqa: F401


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_checkpoint(style, fmt="safetensors", shards=1, dtype="float32", with_inv_freq=False)``:
    built on first request, then shared (tests must not modify it; copy it first)."""
    cache: dict[tuple, Path] = {}

    def get(
        style: str, fmt: str = "safetensors", shards: int = 1, dtype: str = "float32", with_inv_freq: bool = False
    ) -> Path:
        key = (style, fmt, shards, dtype, with_inv_freq)
        if key not in cache:
            d = tmp_path_factory.mktemp(f"{style}-{fmt}-{shards}-{dtype}")
            cache[key] = build_tiny_checkpoint(d, style, fmt, shards, dtype, with_inv_freq)  # type: ignore[arg-type]
        return cache[key]

    return get


@pytest.fixture(scope="session")
def hf_cache() -> Callable[[Path], tuple]:
    from quantize.verify import load_hf

    cache: dict[Path, tuple] = {}

    def get(path: Path) -> tuple:
        if path not in cache:
            cache[path] = load_hf(path)
        return cache[path]

    return get


@pytest.fixture(scope="session")
def few_notes() -> list[tuple[str, str]]:
    from quantize.notes import load_notes

    notes = load_notes()
    # Two prompts of different lengths from different files; the first has digits, units and abbreviations.
    return [notes[-1], notes[5]]

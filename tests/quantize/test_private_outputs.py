"""Issue #21: every file ``quantize`` creates is readable by the user alone, while written and after.

GGUF outputs, their partial files (written by gguf-py, the tensor writer and llama.cpp's quantizer in a
child process) and ``manifest.json`` are 0600 under the usual umask; folders ``quantize`` creates are 0700,
each of them, and a folder that already existed keeps its mode.
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantize import cli


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="asclepius")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a file created without an explicit mode is 0644 and a folder 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_convert_output_folders_and_partial_file_are_private(tiny_checkpoint, tmp_path, monkeypatch, umask_022):
    from quantize.stream import TensorDataWriter

    out = tmp_path / "new" / "deeper" / "m.gguf"
    seen: list[int] = []
    real = TensorDataWriter.end_tensor

    def watch(self, nbytes):
        seen.extend(mode(p) for p in out.parent.glob(".m.gguf.partial-*"))
        return real(self, nbytes)

    monkeypatch.setattr(TensorDataWriter, "end_tensor", watch)
    assert run(["quantize", "convert", str(tiny_checkpoint("llama1")), "-o", str(out), "--outtype", "f32", "-q"]) == 0
    assert seen and set(seen) == {0o600}, "the partial GGUF is 0600 while it is written"
    assert mode(out) == 0o600
    assert mode(tmp_path / "new") == mode(out.parent) == 0o700


def test_quantize_outputs_and_manifest_are_private(tiny_llama_gguf, tmp_path, monkeypatch, umask_022):
    from quantize import quant

    modes: list[tuple[str, int]] = []
    real = quant.run_quantize

    def watch(inp, tmp, ftype, nthread, progress=None):
        modes.append(("before llama.cpp", mode(tmp)))
        result = real(inp, tmp, ftype, nthread, progress)
        modes.append(("after llama.cpp", mode(tmp)))
        return result

    monkeypatch.setattr(quant, "run_quantize", watch)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    out_dir = shared / "q" / "r"
    assert run(["quantize", "quantize", str(tiny_llama_gguf), "-t", "Q8_0", "--out-dir", str(out_dir), "-q"]) == 0
    assert modes == [("before llama.cpp", 0o600), ("after llama.cpp", 0o600)]
    (gguf,) = out_dir.glob("*.gguf")
    assert mode(gguf) == mode(out_dir / "manifest.json") == 0o600
    assert mode(shared / "q") == mode(out_dir) == 0o700
    assert mode(shared) == 0o755, "a folder that already existed keeps its mode"

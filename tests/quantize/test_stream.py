"""The one-pass converter: same bytes as torch's casts, digests of what was read, changes caught mid-read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app.core.hashing import sha256_file
from quantize import convert as convert_mod
from quantize import stream as stream_mod
from quantize.checkpoint import TensorMeta, read_safetensors_header
from quantize.convert import ConvertOptions, TensorPlan, convert_checkpoint, tensor_to_numpy
from quantize.errors import QuantizeError
from quantize.gguf_io import KEY_SOURCE_FILES, KEY_SOURCE_SHA256, inspect_gguf
from quantize.stream import ChunkConverter, Piece

ROOT = Path(__file__).resolve().parents[2]
TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
OUT = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def _values(rows: int, cols: int, src: str) -> torch.Tensor:
    """Random weights plus the awkward ones: F16 subnormals and rounding ties, BF16 ties, zeros, signs."""
    g = torch.Generator().manual_seed(7)
    t = torch.randn(rows, cols, generator=g, dtype=torch.float64) * 0.05
    flat = t.view(-1)
    top = 65280.0 if src == "bfloat16" else 65504.0  # the largest value F16 can hold from that source
    edge = [0.0, -0.0, 6e-8, -6e-8, 3e-5, 1e-7, top, -top, 1.0 + 2**-11, 1.0 + 3 * 2**-11, 1.0 + 2**-8, 1e-40]
    flat[: len(edge)] = torch.tensor(edge, dtype=torch.float64)
    flat[len(edge) : len(edge) + 64] = torch.randn(64, generator=g, dtype=torch.float64) * 1e-6  # F16 subnormal
    return t.to(TORCH[src])


def _via_stream(t: torch.Tensor, src: str, out: str, heads: int | None, chunk_bytes: int) -> bytes:
    rows, cols = t.shape
    raw = t.contiguous().view(torch.uint8).numpy().tobytes()
    piece = Piece(0, "w (blk.0.attn_q.weight)", 0, len(raw), rows, cols, src, out, heads)
    conv, got = ChunkConverter(), []
    old, stream_mod.CHUNK_BYTES = stream_mod.CHUNK_BYTES, chunk_bytes
    try:
        step = piece.chunk_rows * cols * t.element_size()
    finally:
        stream_mod.CHUNK_BYTES = old
    for at in range(0, len(raw), step):
        got.append(bytes(conv.convert(piece, memoryview(raw)[at : at + step])))
    return b"".join(got)


@pytest.mark.parametrize("src", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("out", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("heads", [None, 4])
def test_chunked_numpy_casts_equal_torch_byte_for_byte(src, out, heads):
    """Every source/output pair, with and without the rotary permutation, in chunks of whole heads: the bytes
    are what the torch path (still used for .bin files) writes."""
    t = _values(64, 48, src)
    meta = TensorMeta("w", tuple(t.shape), src, Path("x"))
    plan = TensorPlan(meta, "blk.0.attn_q.weight", "ATTN_Q", OUT[out], heads)
    want = tensor_to_numpy(plan, t.clone()).tobytes()
    # 16 rows per head x 48 columns: a 1-byte target still gives whole heads; 5000 bytes gives several rows.
    for chunk in (1, 5000, 1 << 20):
        assert _via_stream(t, src, out, heads, chunk) == want, (src, out, heads, chunk)


@pytest.mark.parametrize(("src", "bad"), [("float16", float("nan")), ("bfloat16", float("inf")), ("float32", -np.inf)])
def test_nan_and_inf_are_found_in_any_chunk(src, bad):
    t = _values(64, 48, src)
    t[50, 7] = bad  # in the last chunk when chunks are small
    with pytest.raises(QuantizeError, match=r"tensor w \(blk\.0\.attn_q\.weight\) contains NaN or Inf"):
        _via_stream(t, src, src, None, 5000)


def test_f16_overflow_is_refused_like_the_torch_path():
    t = _values(8, 16, "float32")
    t[3, 3] = 70000.0
    with pytest.raises(QuantizeError, match=r"beyond the F16 range \(65504\)"):
        _via_stream(t, "float32", "float16", None, 1 << 20)


def _recorded(gguf_path: Path) -> dict[str, str]:
    meta = inspect_gguf(gguf_path).metadata
    return dict(zip(meta[KEY_SOURCE_FILES], meta[KEY_SOURCE_SHA256], strict=True))


@pytest.mark.parametrize(("fmt", "shards"), [("safetensors", 2), ("bin", 2)])
def test_recorded_hashes_equal_an_independent_sha256(tiny_checkpoint, tmp_path, fmt, shards):
    ckpt = tiny_checkpoint("llama1", fmt, shards, "float32", fmt == "bin")
    res = convert_checkpoint(ConvertOptions(ckpt, tmp_path / "m.gguf", out_type="f16"))
    recorded = _recorded(tmp_path / "m.gguf")
    sources = [
        p for p in ckpt.iterdir() if p.suffix in (".safetensors", ".bin") or p.name.startswith(("config", "tok"))
    ]
    assert sorted(recorded) == sorted(p.name for p in sources)
    assert recorded == {p.name: sha256_file(p) for p in sources}
    assert res.source_sha256 == recorded
    # Weights come after config and tokenizer files, in shard order, as before.
    weights = [n for n in recorded if n.endswith(fmt)]
    assert weights == sorted(weights) and list(recorded)[-len(weights) :] == weights


def test_small_chunks_give_the_same_file(tiny_checkpoint, tmp_path, monkeypatch):
    """Tensors split over many chunks (and gaps skipped in pieces) give exactly the one-chunk output."""
    ckpt = tiny_checkpoint("mistral", "safetensors", 2)
    convert_checkpoint(ConvertOptions(ckpt, tmp_path / "a.gguf", out_type="f16"))
    monkeypatch.setattr(stream_mod, "CHUNK_BYTES", 1000)
    convert_checkpoint(ConvertOptions(ckpt, tmp_path / "b.gguf", out_type="f16"))
    assert (tmp_path / "a.gguf").read_bytes() == (tmp_path / "b.gguf").read_bytes()


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path) -> Path:
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint("llama1"), dst)
    return dst


def _change_after(monkeypatch, n_buffers: int, change) -> None:
    """Run ``change()`` in the reader thread when it takes its ``n_buffers``-th buffer (mid-file)."""
    real = stream_mod.SourceStream._get_buffer
    calls = {"n": 0}

    def hooked(self):
        calls["n"] += 1
        if calls["n"] == n_buffers:
            change()
        return real(self)

    monkeypatch.setattr(stream_mod.SourceStream, "_get_buffer", hooked)


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".gguf") or ".partial-" in p.name)


def _rewrite_keeping_size_and_mtime(f: Path) -> None:
    st = f.stat()
    with f.open("r+b") as fh:
        fh.seek(st.st_size - 64)
        fh.write(bytes(64))  # zeros over the last tensor's tail: still finite values
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("how", ["append", "rewrite", "replace"])
def test_a_source_changed_mid_read_fails_and_leaves_nothing(ckpt, tmp_path, monkeypatch, how):
    f = ckpt / "model.safetensors"
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def change() -> None:
        if how == "append":
            with f.open("ab") as fh:
                fh.write(b"\0" * 128)
        elif how == "rewrite":
            _rewrite_keeping_size_and_mtime(f)
        else:
            copy = f.with_suffix(".new")
            shutil.copy2(f, copy)
            os.replace(copy, f)

    _change_after(monkeypatch, 3, change)
    with pytest.raises(QuantizeError, match=r"model\.safetensors changed while it was being converted"):
        convert_checkpoint(ConvertOptions(ckpt, out_dir / "o.gguf", out_type="f32"))
    assert _leftovers(out_dir) == []


def test_a_header_changed_after_planning_is_caught(ckpt, tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    f = ckpt / "model.safetensors"
    state = load_file(str(f))

    real = convert_mod.load_vocab

    def change_then_load_vocab(*a, **kw):  # after planning, before the first byte of data is read
        save_file(state, str(f), metadata={"format": "pt", "note": "rewritten"})
        return real(*a, **kw)

    monkeypatch.setattr(convert_mod, "load_vocab", change_then_load_vocab)
    with pytest.raises(QuantizeError, match="safetensors header differs"):
        convert_checkpoint(ConvertOptions(ckpt, tmp_path / "o.gguf", out_type="f32"))


def test_unchanged_bytes_rewritten_in_place_are_still_a_change(ckpt, tmp_path, monkeypatch):
    """ctime moves even when size, mtime and content are restored: the run cannot vouch for what it read."""
    f = ckpt / "model.safetensors"
    data = f.read_bytes()

    def change() -> None:
        st = f.stat()
        f.write_bytes(data)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))

    _change_after(monkeypatch, 2, change)
    with pytest.raises(QuantizeError, match="written to during the read"):
        convert_checkpoint(ConvertOptions(ckpt, tmp_path / "o.gguf", out_type="f32"))


def test_truncated_and_damaged_safetensors_are_named(ckpt, tmp_path):
    f = ckpt / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:-100])
    with pytest.raises(QuantizeError, match=r"model\.safetensors: truncated: its header needs"):
        convert_checkpoint(ConvertOptions(ckpt, tmp_path / "o.gguf", out_type="f32"))
    f.write_bytes(data[:8] + b"{not json" + data[17:])
    with pytest.raises(QuantizeError, match=r"model\.safetensors: damaged safetensors header"):
        convert_checkpoint(ConvertOptions(ckpt, tmp_path / "o.gguf", out_type="f32"))
    f.write_bytes(b"\xff" * 8 + data[8:])
    with pytest.raises(QuantizeError, match="not a safetensors file"):
        convert_checkpoint(ConvertOptions(ckpt, tmp_path / "o.gguf", out_type="f32"))
    assert _leftovers(tmp_path) == []


def test_header_parser_agrees_with_the_safetensors_library(tiny_checkpoint):
    from safetensors import safe_open

    f = tiny_checkpoint("mistral", "safetensors", 1, "bfloat16") / "model.safetensors"
    raw, metas = read_safetensors_header(f)
    with safe_open(str(f), framework="pt") as sf:
        for m in metas:
            t = sf.get_tensor(m.name)
            assert (m.shape, m.dtype) == (tuple(t.shape), str(t.dtype).removeprefix("torch."))
            with f.open("rb") as fh:
                fh.seek(m.offset)
                assert fh.read(m.nbytes) == t.contiguous().view(torch.uint8).numpy().tobytes()
    assert raw == f.read_bytes()[: len(raw)]


def test_safetensors_conversion_does_not_import_torch(tiny_checkpoint, tmp_path):
    """torch's import alone is ~0.3 GB of RSS and seconds of start-up; the safetensors path needs none of it."""
    ckpt = tiny_checkpoint("llama3")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from quantize.convert import ConvertOptions, convert_checkpoint\n"
        f"convert_checkpoint(ConvertOptions(Path({str(ckpt)!r}), Path({str(tmp_path / 'm.gguf')!r})))\n"
        "print(sorted(m for m in ('torch', 'safetensors', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_the_written_check_reads_what_gguf_reader_reads_and_catches_damage(tiny_checkpoint, tmp_path):
    import gguf

    from quantize.gguf_io import check_written, scan_layout

    out = tmp_path / "m.gguf"
    convert_checkpoint(ConvertOptions(tiny_checkpoint("llama3"), out, out_type="f16"))
    layout = scan_layout(out)
    reader = gguf.GGUFReader(out)
    assert layout.keys == {k for k in reader.fields if not k.startswith("GGUF.")}
    assert {t.name: (tuple(reversed(t.shape.tolist())), int(t.tensor_type)) for t in reader.tensors} == {
        n: (shape, ttype) for n, (shape, ttype, _) in layout.tensors.items()
    }
    assert layout.data_start == reader.data_offset
    expected = {n: (shape, gguf.GGMLQuantizationType(t).name) for n, (shape, t, _) in layout.tensors.items()}
    check_written(out, expected, ("asclepius.prompt_style",))
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(out.read_bytes()[:-10])
    with pytest.raises(QuantizeError, match="the tensor data needs"):
        check_written(cut, expected)
    name = next(iter(expected))
    with pytest.raises(QuantizeError, match=rf"tensor {name}: shape"):
        check_written(out, {**expected, name: ((1, 2), None)})
    with pytest.raises(QuantizeError, match=rf"tensor {name}: type"):
        check_written(out, {**expected, name: (expected[name][0], "Q8_0")})
    with pytest.raises(QuantizeError, match="metadata key nope missing"):
        check_written(out, expected, ("nope",))
    cut.write_bytes(out.read_bytes()[:5000])  # inside the vocabulary
    with pytest.raises(QuantizeError, match="does not read back as GGUF"):
        check_written(cut, expected)


def test_an_interrupt_stops_the_reader_thread(ckpt, tmp_path, monkeypatch):
    import threading

    def interrupted(self, nbytes):
        raise KeyboardInterrupt

    monkeypatch.setattr(stream_mod, "CHUNK_BYTES", 1000)  # many chunks: the reader is mid-file when it stops
    monkeypatch.setattr(stream_mod.TensorDataWriter, "end_tensor", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(ConvertOptions(ckpt, tmp_path / "o.gguf", out_type="f32"))
    assert [t for t in threading.enumerate() if t.name == "asclepius-convert-reader"] == []
    assert _leftovers(tmp_path) == []

"""The fast GGUF header reader agrees with gguf.GGUFReader on what it returns and refuses damaged headers."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter

from app.core.models.gguf_scan import SHORT_ARRAY, ArrayInfo, scan_gguf


def _write(path: Path, vocab: int = 500) -> Path:
    w = GGUFWriter(str(path), "llama")
    w.add_context_length(2048)
    w.add_name("Ward model ü")
    w.add_uint8("t.u8", 7)
    w.add_int16("t.i16", -3)
    w.add_uint64("t.u64", 1 << 40)
    w.add_float32("t.f32", 0.5)
    w.add_float64("t.f64", -2.25)
    w.add_bool("t.bool", True)
    w.add_array("t.short", ["a", "b"])
    w.add_array("t.short_ints", [1, 2, 3])
    w.add_token_list([f"tok{i}" for i in range(vocab)])
    w.add_token_scores([float(i) for i in range(vocab)])
    w.add_tensor("blk.0.attn_q.weight", np.arange(24, dtype=np.float32).reshape(4, 6))
    w.add_tensor("output.weight", np.ones((3, 8), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_metadata_and_tensors_agree_with_gguf_reader(tmp_path):
    path = _write(tmp_path / "m.gguf")
    h = scan_gguf(path)
    reader = GGUFReader(str(path))
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        want = field.contents()
        got = h.metadata[key]
        if isinstance(want, list) and len(want) > SHORT_ARRAY:
            assert got == ArrayInfo(int(field.types[1]), len(want)), key
        elif isinstance(want, float):
            assert got == pytest.approx(want), key
        else:
            assert got == want, key
    assert list(h.tensors) == [t.name for t in reader.tensors]
    for t in reader.tensors:
        mine = h.tensors[t.name]
        assert mine.n_elements == int(t.n_elements) and mine.n_bytes() == int(t.n_bytes)
        assert h.data_start + mine.offset == int(t.data_offset)
        assert int(mine.ggml_type) == int(t.tensor_type)
    assert mine.shape == (3, 8), "row-major, as PyTorch writes it"
    assert h.data_end() == max(int(t.data_offset) + int(t.n_bytes) for t in reader.tensors)
    assert h.size == path.stat().st_size


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"GGUX" + b[4:], "no GGUF magic"),
        (lambda b: b[:200], "ends early"),
        (lambda b: b[:4] + struct.pack("<I", 1) + b[8:], "version 1"),
    ],
)
def test_damaged_headers_are_refused(tmp_path, damage, message):
    raw = _write(tmp_path / "m.gguf").read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(damage(raw))
    with pytest.raises(ValueError, match=message):
        scan_gguf(bad)


def test_an_absurd_string_length_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "absurd.gguf"
    key = b"general.name"
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 8)
    path.write_bytes(head + struct.pack("<Q", 1 << 40) + b"x" * 16)
    with pytest.raises(ValueError, match="metadata string of"):
        scan_gguf(path)

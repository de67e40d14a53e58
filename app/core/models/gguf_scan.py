"""The one fast reader of a GGUF header: metadata values and tensor infos in one buffered pass.

``gguf.GGUFReader`` builds a numpy view of every vocabulary string: about 20 s for the demo model's
262,144-token vocabulary on this project's 2-core machine, paid on every import and first start. This
reader skips arrays (keeping only short ones) and takes tens of milliseconds. It is the header reader of
``header.read_gguf`` (registry entries), the Models screen's RAM estimate and ``quantize``'s written-file
check. Standard library only, plus ``gguf``'s table of block sizes for a tensor's byte length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

_SCALAR_FORMAT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
"""GGUF metadata value types with a fixed size (uint8 ... float64); 8 is a string, 9 an array."""
_STRING, _ARRAY = 8, 9
_MAX_STRING = 1 << 24
"""A metadata string longer than 16 MiB is a damaged header, not a value (the longest real ones are chat
templates of a few KiB)."""
SHORT_ARRAY = 64
"""Arrays up to this many elements are returned as lists (tags, languages); longer ones (a vocabulary, its
scores and merges) as an :class:`ArrayInfo` without their values."""


@dataclass(frozen=True)
class ArrayInfo:
    """A long metadata array, skipped: its element type and length only."""

    element_type: int
    """The GGUF value type of the elements."""
    count: int
    """How many elements it has."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in the header."""

    name: str
    """The tensor's name (``blk.0.attn_q.weight``)."""
    shape: tuple[int, ...]
    """Shape in row-major order, as PyTorch writes it (GGUF stores the dimensions reversed)."""
    ggml_type: int
    """The ggml type id (``gguf.GGMLQuantizationType``)."""
    offset: int
    """Offset of its data from the start of the data section."""

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def n_bytes(self) -> int:
        """Bytes of its data; ValueError for a type id ``gguf`` does not know."""
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(self.ggml_type)]
        return self.n_elements // block * type_size


@dataclass(frozen=True)
class GgufHeader:
    """What a GGUF's header says, read without its long arrays."""

    version: int
    """GGUF format version (2 or 3)."""
    metadata: dict[str, Any]
    """Key -> value: numbers, bools, strings (undecodable bytes replaced), short arrays as lists, long ones
    as :class:`ArrayInfo`."""
    tensors: dict[str, TensorInfo]
    """Tensor name -> its entry, in file order."""
    data_start: int
    """Where the tensor data section begins (the header's end, aligned to ``general.alignment``)."""
    size: int
    """The file's size in bytes."""

    def data_end(self) -> int:
        """Where the last tensor's data ends; ValueError for an unknown tensor type."""
        return max((self.data_start + t.offset + t.n_bytes() for t in self.tensors.values()), default=self.data_start)


class _Stream:
    """Little-endian reads from a buffered file that fail on a short read (a truncated header)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh

    def take(self, n: int) -> bytes:
        b = self.fh.read(n)
        if len(b) != n:
            raise ValueError("the header ends early")
        return b

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > _MAX_STRING:
            raise ValueError(f"a metadata string of {n:,} bytes")
        return self.take(n).decode("utf-8", "replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALAR_FORMAT:
            return self.unpack(_SCALAR_FORMAT[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            if count <= SHORT_ARRAY:
                return [self.value(etype) for _ in range(count)]
            self.skip_elements(etype, count)
            return ArrayInfo(etype, count)
        raise ValueError(f"unknown metadata value type {vtype}")

    def skip_elements(self, etype: int, count: int) -> None:
        if etype in _SCALAR_FORMAT:
            self.fh.seek(struct.calcsize(_SCALAR_FORMAT[etype]) * count, 1)
        elif etype == _STRING:
            read, seek = self.fh.read, self.fh.seek
            for _ in range(count):  # the vocabulary: 8-byte length, then the bytes
                head = read(8)
                if len(head) != 8:
                    raise ValueError("the header ends early")
                n = int.from_bytes(head, "little")
                if n > _MAX_STRING:
                    raise ValueError(f"a metadata string of {n:,} bytes")
                seek(n, 1)
        else:
            for _ in range(count):
                self.value(etype)


def scan_gguf(path: Path) -> GgufHeader:
    """Read ``path``'s GGUF header. ValueError for a file that is not a GGUF or whose header is damaged or
    truncated (the caller words the message); OSError when it cannot be read."""
    size = path.stat().st_size
    with path.open("rb", buffering=1 << 20) as fh:
        s = _Stream(fh)
        if s.take(4) != b"GGUF":
            raise ValueError("no GGUF magic bytes")
        version, n_tensors, n_kv = s.unpack("<I"), s.unpack("<Q"), s.unpack("<Q")
        if version < 2:
            raise ValueError(f"GGUF version {version} (llama.cpp reads 2 and 3)")
        if n_kv > size or n_tensors > size:
            raise ValueError(f"the header claims {n_kv:,} keys and {n_tensors:,} tensors")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = s.string()
            metadata[key] = s.value(s.unpack("<I"))
        tensors: dict[str, TensorInfo] = {}
        for _ in range(n_tensors):
            name = s.string()
            n_dims = s.unpack("<I")
            if n_dims > 8:
                raise ValueError(f"tensor {name} has {n_dims} dimensions")
            dims = [s.unpack("<Q") for _ in range(n_dims)]
            ttype, offset = s.unpack("<I"), s.unpack("<Q")
            tensors[name] = TensorInfo(name, tuple(reversed(dims)), ttype, offset)
        start = fh.tell()
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0:
        raise ValueError(f"general.alignment is {alignment!r}")
    return GgufHeader(version, metadata, tensors, start + (-start % alignment), size)

"""One pass over each safetensors file: read in order, hash what is read, check, cast and write each chunk.

A reader thread reads every weight file front to back exactly once into a small pool of reusable buffers
and feeds every byte it reads (header, tensor data, gaps, dropped tensors) to sha256, so the digest
recorded in the GGUF is the digest of the bytes that were converted. The main thread checks each chunk
for NaN/Inf, applies the rotary row permutation, casts it and writes it. Both sides release the GIL in
the costly parts (``readinto``, ``sha256.update``, numpy, ``write``), so reading and hashing overlap
checking and writing. Memory stays at a few chunk buffers whatever the tensor size; the source is never
memory-mapped, so no shard's pages are counted against the process.

A file that changes while it is read (size, mtime, ctime or inode differ at the end from the start, or its
safetensors header differs from the one the plan was made from) fails the conversion.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from quantize.errors import QuantizeError

CHUNK_BYTES = 8 << 20
"""Target bytes per chunk: large enough that per-chunk Python costs vanish, small enough to stay cached."""
POOL_SIZE = 3
"""Buffers in flight: one being read, one being converted, one spare."""

# (exponent mask with the sign cleared, unsigned view dtype) per source/output type: a value is NaN or Inf
# exactly when (bits & abs_mask) >= exp_mask.
_BITS = {"float32": ("<u4", 0x7FFFFFFF, 0x7F800000), "float16": ("<u2", 0x7FFF, 0x7C00)}
_BITS["bfloat16"] = ("<u2", 0x7FFF, 0x7F80)
_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}
_RANGE = {"float16": "F16 range (65504)", "bfloat16": "BF16 range"}
OUT_DTYPE = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class Piece:
    """One planned tensor's bytes inside a source file, and how to turn them into GGUF bytes."""

    index: int
    """Position in the plan (and in the GGUF)."""
    name: str
    """For messages: ``hf.name (gguf.name)``."""
    offset: int
    nbytes: int
    rows: int
    cols: int
    src: str
    """``float32``, ``float16`` or ``bfloat16``."""
    out: str
    """``float32``, ``float16`` or ``bfloat16``."""
    permute_heads: int | None = None

    @property
    def chunk_rows(self) -> int:
        unit = self.rows // self.permute_heads if self.permute_heads else 1
        row_bytes = self.cols * _ITEMSIZE[self.src]
        return min(self.rows, max(unit, (CHUNK_BYTES // row_bytes) // unit * unit))

    @property
    def out_nbytes(self) -> int:
        return self.rows * self.cols * _ITEMSIZE[self.out]


@dataclass
class SourceFile:
    path: Path
    header: bytes
    """The safetensors header (length prefix and JSON) the plan was made from."""
    pieces: list[Piece] = field(default_factory=list)


@dataclass
class Chunk:
    piece: Piece
    buf: bytearray
    n: int
    last: bool


@dataclass
class FileDone:
    path: Path
    sha256: str


class _Stop(Exception):
    pass


class SourceStream:
    """Reads ``files`` in a background thread; iterate to get chunks and per-file digests in order."""

    def __init__(self, files: Sequence[SourceFile]):
        self.files = list(files)
        size = CHUNK_BYTES
        for f in self.files:
            for p in f.pieces:
                size = max(size, p.chunk_rows * p.cols * _ITEMSIZE[p.src])
        self._pool: queue.Queue[bytearray] = queue.Queue()
        for _ in range(POOL_SIZE):
            self._pool.put(bytearray(size))
        self._out: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self.hash_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="asclepius-convert-reader", daemon=True)

    # -- reader thread ---------------------------------------------------------------------------------
    def _get_buffer(self) -> bytearray:
        while True:
            if self._stop.is_set():
                raise _Stop
            try:
                return self._pool.get(timeout=0.1)
            except queue.Empty:
                continue

    def _run(self) -> None:
        try:
            for f in self.files:
                self._out.put(FileDone(f.path, self._read_file(f)))
            self._out.put(None)
        except _Stop:
            pass
        except BaseException as exc:  # handed to the main thread, which raises it
            self._out.put(exc)

    def _read_file(self, f: SourceFile) -> str:
        h = hashlib.sha256()
        with open(f.path, "rb", buffering=0) as fh:
            st0 = os.fstat(fh.fileno())
            pos = 0

            def read_exact(buf: bytearray, n: int, what: str) -> None:
                nonlocal pos
                view = memoryview(buf)[:n]
                got = 0
                while got < n:
                    k = fh.readinto(view[got:])
                    if not k:
                        raise QuantizeError(
                            f"{f.path.name} ended after {pos + got:,} bytes while reading {what}; "
                            "the file is truncated or was changed during the conversion"
                        )
                    got += k
                t = time.perf_counter()
                h.update(view)
                self.hash_seconds += time.perf_counter() - t
                pos += n

            head = bytearray(len(f.header))
            read_exact(head, len(head), "the safetensors header")
            if bytes(head) != f.header:
                raise _changed(f.path, "its safetensors header differs from the one read when planning")
            for p in f.pieces:
                self._skip(read_exact, p.offset - pos)
                row_bytes = p.cols * _ITEMSIZE[p.src]
                done = 0
                while done < p.rows:
                    rows = min(p.chunk_rows, p.rows - done)
                    buf = self._get_buffer()
                    read_exact(buf, rows * row_bytes, p.name)
                    done += rows
                    self._out.put(Chunk(p, buf, rows * row_bytes, done == p.rows))
            # The rest of the file (dropped tensors, trailing bytes) is hashed too: the digest is the file's.
            buf = self._get_buffer()
            while True:
                k = fh.readinto(buf)
                if not k:
                    break
                t = time.perf_counter()
                h.update(memoryview(buf)[:k])
                self.hash_seconds += time.perf_counter() - t
                pos += k
            self._pool.put(buf)
            st1 = os.fstat(fh.fileno())
        _check_unchanged(f.path, st0, st1, pos)
        return h.hexdigest()

    def _skip(self, read_exact: Any, n: int) -> None:
        if n < 0:
            raise QuantizeError("internal error: tensors planned out of file order")
        if n == 0:
            return
        buf = self._get_buffer()
        try:
            while n > 0:
                k = min(n, len(buf))
                read_exact(buf, k, "the bytes between tensors")
                n -= k
        finally:
            self._pool.put(buf)

    # -- main thread -----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Chunk | FileDone]:
        self._thread.start()
        try:
            while True:
                msg = self._out.get()
                if msg is None:
                    return
                if isinstance(msg, BaseException):
                    raise msg
                yield msg
        finally:
            self.close()

    def release(self, chunk: Chunk) -> None:
        self._pool.put(chunk.buf)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            # Unblock a reader waiting for a buffer; it notices the stop flag within 0.1 s.
            self._thread.join(timeout=5)


def _changed(path: Path, why: str) -> QuantizeError:
    return QuantizeError(
        f"{path.name} changed while it was being converted ({why}); the partial GGUF was removed. "
        "Convert again once nothing is writing to the checkpoint."
    )


def _check_unchanged(path: Path, st0: os.stat_result, st1: os.stat_result, nread: int) -> None:
    if nread != st0.st_size or st1.st_size != st0.st_size:
        raise _changed(path, f"{st0.st_size:,} bytes when opened, {st1.st_size:,} at the end, {nread:,} read")
    if (st1.st_mtime_ns, st1.st_ctime_ns) != (st0.st_mtime_ns, st0.st_ctime_ns):
        raise _changed(path, "it was written to during the read")
    try:
        now = os.stat(path)
    except OSError:
        raise _changed(path, "it was removed") from None
    if (now.st_ino, now.st_dev) != (st0.st_ino, st0.st_dev):
        raise _changed(path, "it was replaced by another file")


# -- converting one chunk --------------------------------------------------------------------------------
class ChunkConverter:
    """Checks, permutes and casts chunks; reuses one scratch array per role for every chunk it converts."""

    def __init__(self) -> None:
        self._scratch: dict[str, Any] = {}

    def _buf(self, role: str, dtype: str, n: int) -> Any:
        import numpy as np

        have = self._scratch.get(role)
        if have is None or have.dtype != np.dtype(dtype) or have.size < n:
            have = self._scratch[role] = np.empty(n, dtype=dtype)
        return have[:n]

    def convert(self, p: Piece, data: memoryview) -> memoryview:
        """GGUF bytes for ``data`` (whole rows of ``p``); raises QuantizeError on NaN/Inf or overflow."""
        import numpy as np

        src_bits, abs_mask, exp = _BITS[p.src]
        bits = np.frombuffer(data, dtype=src_bits)
        n = bits.size
        if _any_nonfinite(bits, abs_mask, exp, self._buf("check", src_bits, n)):
            raise QuantizeError(f"tensor {p.name} contains NaN or Inf values")
        if p.permute_heads:
            bits = interleave_rotary_halves(bits, p.rows // p.permute_heads, p.cols, self._buf("permute", src_bits, n))
        if p.src == p.out:
            return memoryview(bits).cast("B")
        return memoryview(self._cast(p, bits)).cast("B")

    def _cast(self, p: Piece, bits: Any) -> Any:
        import numpy as np

        n = bits.size
        if p.src == "bfloat16":
            wide = self._buf("wide", "<u4", n)
            np.left_shift(bits, 16, out=wide, dtype="<u4")
            f32 = wide.view("<f4")
        elif p.src == "float16":
            f32 = self._buf("wide", "<f4", n)
            np.copyto(f32, bits.view("<f2"))
        else:
            f32 = bits.view("<f4")
        if p.out == "float32":
            return f32
        if p.out == "float16":
            out = self._buf("out", "<f2", n)
            with np.errstate(over="ignore"):  # overflow becomes inf, which the check below reports
                np.copyto(out, f32, casting="unsafe")
        else:
            out = _to_bf16(f32, self._buf("tmp", "<u4", n), self._buf("out", "<u2", n))
        out_bits, abs_mask, exp = _BITS[p.out]
        if _any_nonfinite(out.view(out_bits), abs_mask, exp, self._buf("check_out", out_bits, n)):
            raise QuantizeError(
                f"tensor {p.name} has values beyond the {_RANGE[p.out]}; convert with --outtype bf16 or f32"
            )
        return out


def interleave_rotary_halves(rows: Any, head_rows: int, cols: int, out: Any) -> Any:
    """HF stores each Q/K head as [first halves of the rotary pairs | second halves] (``rotate_half``);
    llama.cpp's LLaMA rope rotates adjacent pairs, as Meta's original weights are laid out. Interleave the
    halves back, head by head, into ``out``; ``rows`` holds whole heads of ``head_rows`` rows each."""
    import numpy as np

    heads = rows.size // cols // head_rows
    halves = rows.reshape(heads, 2, head_rows // 2, cols).swapaxes(1, 2)
    np.copyto(out.reshape(heads, head_rows // 2, 2, cols), halves)
    return out


def _any_nonfinite(bits: Any, abs_mask: int, exp: int, scratch: Any) -> bool:
    import numpy as np

    if bits.size == 0:
        return False
    np.bitwise_and(bits, abs_mask, out=scratch)
    return bool(scratch.max() >= exp)


def _to_bf16(f32: Any, tmp: Any, out: Any) -> Any:
    """float32 -> bfloat16 bits, rounding to nearest even (what torch does for finite values)."""
    import numpy as np

    u = f32.view("<u4")
    np.right_shift(u, 16, out=tmp)
    np.bitwise_and(tmp, 1, out=tmp)
    np.add(tmp, 0x7FFF, out=tmp)
    np.add(tmp, u, out=tmp)
    np.right_shift(tmp, 16, out=tmp)
    np.copyto(out, tmp, casting="unsafe")
    return out


# -- writing the GGUF data section ------------------------------------------------------------------------
class TensorDataWriter:
    """Writes tensor data after a GGUFWriter has written header, metadata and tensor infos."""

    def __init__(self, fout: IO[bytes], alignment: int):
        self.fout = fout
        self.alignment = alignment
        self._pad_to_alignment(fout.tell())

    def _pad_to_alignment(self, n: int) -> None:
        pad = -n % self.alignment
        if pad:
            self.fout.write(b"\0" * pad)

    def write(self, data: memoryview) -> None:
        self.fout.write(data)

    def end_tensor(self, nbytes: int) -> None:
        """Called once per tensor after its last chunk (tests inject failures here)."""
        self._pad_to_alignment(nbytes)

"""Checks on model files the registry relies on: change detection, a llama.cpp load check, a prepare lock.

- ``Fingerprint``: size, mtime (ns) and a "quick hash" (sha256 of the first, middle and last MiB, with the
  size). Compared on every load; when anything differs the full sha256 is computed again before the file is
  used, so the sha256 logged with a run is always that of the file that answered (issue 9, item 1). A
  file rewritten in place with the same size and a restored mtime still changes the quick hash unless the
  edit misses all three sampled MiB; the full hash is always available through ``models verify``.
- ``check_loadable``: a vocab-only load through llama.cpp (reads the header and the vocabulary, no
  tensors): a GGUF that gguf-py reads but llama.cpp cannot load is refused at import, not at the first ask.
- ``exclusive``: an ``fcntl`` lock file, so two first starts do not both prepare the demo model.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import ModelError
from app.core.infile import open_regular

QUICK_BLOCK = 1 << 20
"""1 MiB from the start, the middle and the end: ~3 ms on an SSD for any model size."""


@dataclass(frozen=True)
class Fingerprint:
    """What is compared on every load to tell that a file is still the one that was hashed."""

    size: int
    """Bytes, from ``stat``."""
    mtime_ns: int
    """Modification time in nanoseconds, from ``stat``."""
    quick: str
    """``quick_hash``: sha256 of the size and the first, middle and last MiB."""

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, quick_hash(path, st.st_size))

    def as_entry(self) -> dict[str, Any]:
        return {"size_bytes": self.size, "mtime_ns": self.mtime_ns, "quick_sha256": self.quick}

    def matches(self, entry: dict[str, Any]) -> bool:
        return (
            entry.get("size_bytes") == self.size
            and entry.get("mtime_ns") == self.mtime_ns
            and entry.get("quick_sha256") == self.quick
        )


def quick_hash(path: Path, size: int | None = None) -> str:
    """The fingerprint's hash; ModelError for a file that cannot be read (no permission, not a regular file):
    every load of a registered model passes here first, before its sha256 or llama.cpp reads it."""
    size = path.stat().st_size if size is None else size
    h = hashlib.sha256(str(size).encode())
    with open_regular(path, "model file", ModelError) as fh:
        for offset in sorted({0, max(0, size // 2 - QUICK_BLOCK // 2), max(0, size - QUICK_BLOCK)}):
            fh.seek(offset)
            h.update(fh.read(QUICK_BLOCK))
    return h.hexdigest()


def check_loadable(path: Path) -> None:
    """Load only the vocabulary with llama.cpp; ModelError if it refuses the file."""
    import llama_cpp

    from app.core.engine import _quiet_llama_cpp

    _quiet_llama_cpp()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode("utf-8"), params)
    if not model:
        raise ModelError(
            f"{path}: llama.cpp cannot load this GGUF (its header or vocabulary is not one llama.cpp "
            "supports); it was not imported"
        )
    llama_cpp.llama_model_free(ctypes.c_void_p(model) if isinstance(model, int) else model)


@contextmanager
def exclusive(lock_path: Path, timeout_s: float = 600.0, what: str = "preparing a model") -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``lock_path`` (created 0600); wait up to ``timeout_s`` for it.

    The lock dies with its process, so a killed holder never blocks the next start.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ModelError(
                        f"another Asclepius process has held {lock_path.name} for over {timeout_s:.0f} s "
                        f"({what}); try again when it has finished"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

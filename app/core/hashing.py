"""The one streaming sha256 of a file, for every package: the model registry, quantize's source and output
digests, the installer's SHA256SUMS and SBOM, training's input manifests and batch input files.

Standard library only, and outside ``app.core.models`` on purpose: importing it runs no package
``__init__`` that needs third-party packages, so ``installer/`` (run by a bare ``python3`` in
``installer/wheelhouse.sh``) and ``quantize/`` can import it as well as the app.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)`` in bytes."""

CHUNK = 8 << 20
"""8 MiB: large enough that hashing runs at disk speed, small enough that memory use stays flat."""


def sha256_file(path: Path, progress: ProgressFn | None = None, chunk: int = CHUNK) -> str:
    """The hex sha256 of ``path``, read once in ``chunk``-sized blocks; ``progress(done, total)`` per block."""
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return h.hexdigest()


def copy_hashing(
    sources: Iterable[Path],
    out: BinaryIO,
    progress: ProgressFn | None = None,
    before_block: Callable[[], None] | None = None,
    chunk: int = CHUNK,
) -> str:
    """Write ``sources`` one after another to ``out`` and return the sha256 of what was written (one pass).

    ``progress(done, total)`` counts bytes over all sources; ``before_block()`` runs before each block and
    stops the copy by raising (a Cancel).
    """
    paths = list(sources)
    total = sum(p.stat().st_size for p in paths)
    h, done = hashlib.sha256(), 0
    for path in paths:
        with path.open("rb") as fh:
            while block := fh.read(chunk):
                if before_block is not None:
                    before_block()
                out.write(block)
                h.update(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
    return h.hexdigest()

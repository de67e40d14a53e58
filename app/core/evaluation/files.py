"""Reading a whole text file the user named (a gold file, a suite file), with every refusal in one place.

Refused, each with the file's name in the message: missing, a directory or not a regular file (through
``app.core.infile.open_regular``, so a FIFO or a device never blocks), over the size limit (checked before
anything is read), empty, binary (a NUL byte), not UTF-8 (with the byte offset). A leading byte-order mark is
dropped. Gold corpora are read whole: BioC and PubMedQA are single JSON documents, and PubTator's offsets
index documents assembled from several lines.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.core.errors import UsageError
from app.core.infile import open_regular
from app.core.privatefile import os_problem

MAX_GOLD_BYTES = 512 << 20
"""The largest gold file read: BC5CDR's whole PubTator release is under 10 MB and the full PubMedQA
artificial set about 300 MB; past this a JSON corpus would not fit a desktop's memory as Python objects."""


def read_text(path: str | os.PathLike[str], what: str, max_bytes: int) -> str:
    """The file's text, or a ``UsageError`` naming ``path`` and the problem (see the module docstring)."""
    p = Path(path)
    try:
        with open_regular(p, what, UsageError) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise UsageError(f"{p}: {size:,} bytes, over the {max_bytes:,} a {what} may have")
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {p}: {os_problem(exc)}") from None
    if len(raw) > max_bytes:  # grew while being read
        raise UsageError(f"{p}: over the {max_bytes:,} bytes a {what} may have")
    if not raw.strip():
        raise UsageError(f"{p}: empty file, not a {what}")
    if b"\x00" in raw:
        raise UsageError(f"{p}: a binary file (it holds NUL bytes), not a {what}")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{p}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None

"""The one way the app opens a file the user named for reading: a note, a model, a batch or ratings input.

Only a regular file is read. A FIFO opened for reading blocks until some process opens it for writing, so
``ask --note fifo`` (or a FIFO as a model or a batch row's ``note_path``) used to hang for good; a character
device such as ``/dev/zero`` never ends, and ``/dev/tty`` waits for the keyboard. The path is opened with
``stat`` first (a device or FIFO is refused without being opened), then opened with ``O_NONBLOCK`` (should the
path have become a FIFO meanwhile, it still opens at once) and the open descriptor checked again with
``fstat``: what is read is what was checked.

It sits beside ``app.core.privatefile`` (the one writer) and shares its wording of OS errors and file
kinds (``os_problem``, ``file_kind``).
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO

from app.core.errors import AsclepiusError
from app.core.privatefile import file_kind, os_problem

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
"""``O_NONBLOCK`` so a FIFO or a device opens without waiting; ``O_NOCTTY`` so a terminal device given as a
note never becomes this process's controlling terminal."""


def open_regular(path: str | os.PathLike[str], what: str, error: type[AsclepiusError]) -> BinaryIO:
    """``path`` opened for binary reading, or ``error`` with a message naming ``what`` ("note file").

    Refused: a missing path, a directory, anything that is not a regular file (a FIFO, a device, a socket),
    and a file the user may not read. The caller closes the returned file (``with open_regular(...) as fh``).
    """
    p = Path(path)

    def refuse_unless_regular(mode: int) -> None:
        if stat.S_ISDIR(mode):
            raise error(f"{p} is a directory, not a {what}")
        if not stat.S_ISREG(mode):
            raise error(f"{p} is not a regular file ({file_kind(mode)}); give a {what}")

    try:
        refuse_unless_regular(os.stat(p).st_mode)  # a device is never opened (a tape would rewind)
        fd = os.open(p, _FLAGS)
    except FileNotFoundError:
        raise error(f"{what} not found: {p}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {os_problem(exc)}") from None
    try:
        refuse_unless_regular(os.fstat(fd).st_mode)  # what was opened, should the path have been swapped
        # Reads of a regular file never block, but a caller may hand the descriptor on: make it ordinary.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise

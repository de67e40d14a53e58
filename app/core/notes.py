"""Validating note text from any source (a file, stdin, a paste) before it reaches a model."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.errors import NoteError, UsageError
from app.core.infile import open_regular
from app.core.privatefile import os_problem
from resources import get_task

if TYPE_CHECKING:
    from app.core.types import AskRequest

MAX_NOTE_CHARS = 200_000
"""Far beyond any model's context (a 2,048-token LLaMA-1 holds ~8,000 characters); anything longer is
almost certainly the wrong file, and would stall tokenization and the editor."""

_MAX_FILE_BYTES = 4 * MAX_NOTE_CHARS  # UTF-8 is at most 4 bytes a character


def _looks_binary(data: bytes) -> bool:
    if b"\x00" in data[:65536]:
        return True
    sample = data[:8192]
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    return bool(sample) and control / len(sample) > 0.05


def _invisible(text: str) -> bool:
    """Nothing a reader (or a model) would see: whitespace and format characters only (Unicode category Cf:
    zero-width space and joiners, the byte-order mark, bidirectional marks). A paste of those is an empty
    note, not a note to spend a model run on. Stops at the first visible character."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def validate_note(text: str, source: str = "note", kind: str = "note") -> str:
    """Return the note ready for a prompt (line endings normalised, outer blank lines removed).

    ``kind`` names the text in messages: ``asclepius ground`` reads an answer file by the same rules."""
    if not isinstance(text, str):
        raise NoteError(f"{source}: expected text, got {type(text).__name__}")
    if "\x00" in text:
        raise NoteError(f"{source}: contains NUL characters; this looks like a binary file, not a {kind}")
    if len(text) > MAX_NOTE_CHARS:
        raise NoteError(
            f"{source}: {len(text):,} characters is over the {MAX_NOTE_CHARS:,}-character limit for one {kind}"
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Outer whitespace carries no meaning and would change tokens at the template boundaries.
    text = text.strip()
    if _invisible(text):
        raise NoteError(f"{source}: the {kind} is empty (only whitespace or invisible characters)")
    return text


def decode_note_bytes(data: bytes, source: str = "note", kind: str = "note") -> str:
    if len(data) > _MAX_FILE_BYTES:
        raise NoteError(
            f"{source}: {len(data):,} bytes is far over the {MAX_NOTE_CHARS:,}-character limit for one {kind}"
        )
    if _looks_binary(data):
        raise NoteError(f"{source}: this is a binary file, not a plain-text {kind}")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(
            f"{source}: not valid UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            f"save the {kind} as UTF-8 and try again"
        ) from None
    return validate_note(text, source, kind)


def read_note_file(path: str | Path, kind: str = "note") -> str:
    """A note file's text, checked; NoteError for a path that is missing, not a regular file (a FIFO would
    block the read for good), unreadable, or whose bytes are not a note."""
    p = Path(path)
    try:
        with open_regular(p, f"{kind} file", NoteError) as fh:
            data = fh.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise NoteError(f"cannot read {kind} file {p}: {os_problem(exc)}") from None
    return decode_note_bytes(data, str(p), kind)


def validate_request(request: AskRequest) -> tuple[str, str, str]:
    """(note, instruction, task name) of a request, checked before any evaluation by every engine (local or
    remote): NoteError for the note, UsageError for an empty instruction or an unknown task."""
    note = validate_note(request.note)
    instruction = request.instruction.strip()
    if not instruction:
        raise UsageError("the instruction is empty")
    try:
        task = get_task(request.task).name
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    return note, instruction, task

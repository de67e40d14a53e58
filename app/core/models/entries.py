"""``models.json``: its format (version 2, one entry per file path), reading versions 1 and 2, and the status
of an entry's file. The ``Registry`` (``app.core.models.registry``) owns reading, migrating and writing the
file."""

from __future__ import annotations

import os
import stat
import time
import unicodedata
from pathlib import Path
from typing import Any

from app.core.errors import ModelError, UsageError

REGISTRY_VERSION = 2
"""``models.json`` version 2: one entry per absolute file path (the entry's id), each with its sha256.
Version 1 keyed entries by sha256, so two files with the same bytes could not both be listed and importing
a copy of a registered file moved the entry to the copy; it is migrated on first read (kept as ``.v1``)."""

OK, MISSING, CHANGED = "ok", "missing", "changed"
"""An entry's file: as hashed; gone (a removed USB stick, a deleted or moved file); or its size or mtime
differ from when it was hashed (its "verified" mark is void until it is hashed again)."""


MAX_NAME = 120
"""Longest model name (after collapsing spaces): a name is a label in a table row, not a description."""


def _unprintable(c: str) -> bool:
    """A control character (C0, DEL, C1: ESC starts the sequences a terminal obeys) or a lone surrogate (a
    byte that was not UTF-8 in argv or a file name: it cannot be written to a UTF-8 stream or the log)."""
    return unicodedata.category(c) in ("Cc", "Cs")


def printable(text: str) -> str:
    """``text`` safe to print: each control character or non-UTF-8 byte shown as an escape (``\\x1b``),
    for names and paths that reached the registry before names were checked (or from a file's own name)."""
    if not any(_unprintable(c) for c in text):
        return text
    out = []
    for c in text:
        if not _unprintable(c):
            out.append(c)
        elif 0xDC80 <= ord(c) <= 0xDCFF:  # Python's surrogateescape form of the byte 0x80..0xFF
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        else:
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
    return "".join(out)


def check_name(name: str) -> str:
    """A model name as it is stored (spaces collapsed), or UsageError: empty, over ``MAX_NAME`` characters,
    holding a byte that is not UTF-8 (every later run with the model would fail to log it) or a control
    character (``models list`` would send an escape sequence to the terminal). The one name rule, for
    ``models import --name``, ``models rename`` and the Models screen."""
    name = " ".join(name.split())  # tabs and newlines are whitespace: collapsed, not refused
    if not name or len(name) > MAX_NAME:
        raise UsageError(f"a model name is 1 to {MAX_NAME} characters (not counting spaces at either end)")
    for i, c in enumerate(name):
        if 0xD800 <= ord(c) <= 0xDFFF:
            raise UsageError(
                f"the model name is not valid UTF-8 text (a byte that is not UTF-8 at character {i}); "
                "check the terminal's encoding"
            )
        if _unprintable(c):
            raise UsageError(
                f"a model name may not hold control characters (U+{ord(c):04X} at character {i}: a terminal "
                "would obey it as an escape sequence)"
            )
    return name


def entry_key(path: str | Path) -> str:
    """The id of the entry for ``path``: its absolute path with links resolved (a link and its target are
    one file, so one entry)."""
    return str(Path(path).expanduser().resolve())


def file_status(entry: dict[str, Any]) -> str:
    """OK, MISSING or CHANGED for an entry, from one ``stat`` (no reading)."""
    try:
        st = os.stat(entry["path"])
    except OSError:
        return MISSING
    if not stat.S_ISREG(st.st_mode):
        return MISSING
    if st.st_size != entry.get("size_bytes") or st.st_mtime_ns != entry.get("mtime_ns"):
        return CHANGED
    return OK


_V2_REQUIRED = ("path", "sha256", "file_name", "name", "architecture", "context_length", "file_type", "size_bytes")
_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("path", "sha256", "file_name", "name", "architecture", "file_type"), (str,)),
    **dict.fromkeys(("quick_sha256", "prompt_style", "style_override"), (str,)),
    **dict.fromkeys(("context_length", "size_bytes", "mtime_ns"), (int,)),
    "parameter_count": (int, type(None)),
    **dict.fromkeys(("is_demo", "in_library", "verified", "renamed"), (bool,)),
    "provenance": (dict,),
}
"""The JSON type of each field an entry may have: a hand-edited or damaged file with ``"size_bytes": "x"``
would otherwise fail later, in whichever command first did arithmetic on it (exit 1)."""


def _type_problem(e: dict[str, Any]) -> str | None:
    for k, kinds in _TYPES.items():
        v = e.get(k)
        if k in e and (not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds)):
            return f"an entry's {k} is {type(v).__name__}, not {' or '.join(t.__name__ for t in kinds)}"
    return None


def parse_registry(data: Any, library: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """Entries by id from a parsed ``models.json`` (version 1 or 2); ValueError/KeyError/TypeError if malformed
    (a field of the wrong JSON type included: the file is then kept aside as damaged, like one that does not
    parse)."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ValueError('expected an object with a "models" list')
    version = data.get("version", 1)
    if version not in (1, REGISTRY_VERSION):
        raise ValueError(f"version {version!r} is not one this app reads (1 or {REGISTRY_VERSION})")
    out: dict[str, dict[str, Any]] = {}
    for e in data["models"]:
        if not isinstance(e, dict):
            raise TypeError(f"an entry is {type(e).__name__}, not an object")
        missing = [k for k in _V2_REQUIRED if k not in e]
        if missing:
            raise KeyError(f"an entry lacks {', '.join(missing)}")
        if problem := _type_problem(e):
            raise TypeError(problem)
        e = dict(e)
        e["name"] = printable(e["name"])  # written before names were checked: shown, never obeyed
        if version == 1:  # v1 had no library flag and no rename flag; a file in the models directory is a copy
            key = entry_key(e["path"])
            e["in_library"] = not e.get("is_demo") and Path(key).parent == library.resolve()
            e["renamed"] = False
            e.pop("mtime", None)
        else:
            key = e["path"]
        e["path"] = key
        e.setdefault("is_demo", False)
        e.setdefault("in_library", False)
        e.setdefault("verified", True)
        out[key] = e  # v1 could hold two shas for one path only transiently: the later one is current
    return out, int(version)


def keep_aside(f: Path) -> Path:
    """Rename a damaged ``models.json`` to ``models.json.damaged-<time>`` (never over an earlier one)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = f.with_name(f"{f.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        aside = f.with_name(f"{f.name}.damaged-{stamp}-{n}")
        n += 1
    try:
        os.replace(f, aside)
    except OSError as exc:
        raise ModelError(
            f"the model registry {f} is damaged and could not be moved aside ({exc.strerror or exc}); "
            "move it away by hand to start afresh"
        ) from None
    return aside

"""``models.json``: its format (version 2, one entry per file path), reading versions 1 and 2, and the status
of an entry's file. The ``Registry`` (``app.core.models.registry``) owns reading, migrating and writing the
file."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

from app.core.errors import ModelError

REGISTRY_VERSION = 2
"""``models.json`` version 2: one entry per absolute file path (the entry's id), each with its sha256.
Version 1 keyed entries by sha256, so two files with the same bytes could not both be listed and importing
a copy of a registered file moved the entry to the copy; it is migrated on first read (kept as ``.v1``)."""

OK, MISSING, CHANGED = "ok", "missing", "changed"
"""An entry's file: as hashed; gone (a removed USB stick, a deleted or moved file); or its size or mtime
differ from when it was hashed (its "verified" mark is void until it is hashed again)."""


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


def parse_registry(data: Any, library: Path) -> tuple[dict[str, dict[str, Any]], int]:
    """Entries by id from a parsed ``models.json`` (version 1 or 2); ValueError/KeyError/TypeError if malformed."""
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
        e = dict(e)
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

"""Bad-input rows for files, names, notes and config (issue #21): non-regular files given as inputs or
outputs, unreadable model files, model names with control characters or non-UTF-8 bytes, notes of only
invisible characters, an empty ``--model``, config numbers out of range and a config nested too deeply.

Rows that could hang (a FIFO opened for reading blocks until a writer comes) carry ``deadline_s``. A
registry entry with wrong field types is not a refusal (the damaged file is kept aside and the command goes
on, exit 0), so it is tested in tests/unit/test_files_names.py, not here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from tests.reliability.cases import ASK, LOG, MODEL, NOTE, USAGE, Case

HANG_S = 30.0
"""A FIFO row must end well within this; the old code blocked in open() until killed."""


def _demo_copy(tmp: Path, name: str, *, link: bool = True) -> None:
    """A second path holding the demo model's bytes: a hard link when the file system allows (no 250 MB
    copy), for rows that never change the file; a link shares the inode, so a chmod would hit the session's
    demo model too."""
    from app.core.models.demo import demo_file

    src = demo_file(tmp / "home" / "data" / "models").resolve()
    if link:
        with contextlib.suppress(OSError):  # another file system: copy
            os.link(src, tmp / name)
            return
    shutil.copyfile(src, tmp / name)


def _registered(tmp: Path, name: str) -> None:
    """``name`` (a copy of the demo model, its own inode: the row may chmod it) registered in the case's own
    registry."""
    from app.core.config import Paths
    from app.core.models import Registry

    _demo_copy(tmp, name, link=False)
    Registry(Paths(tmp / "home" / "data", tmp / "home" / "config")).import_model(tmp / name)


STEPS: dict[str, Any] = {"demo_copy": _demo_copy, "registered": _registered}

_BATCH = ("batch", "{tmp}/in.csv", "--db", "{tmp}/b.db")
_NOTE_PATH_INPUT = ("write", "in.csv", "note_path,task,instruction\nf.txt,qa,What medication?\n")
_ESCAPE_NAME = "\x1b[2J\x1b]0;pwned\x07Evil"


def _config(engine: str) -> tuple[Any, ...]:
    return ("config", '{"engine": {' + engine + "}}")


CASES: tuple[Case, ...] = (
    # -- non-regular files as inputs ---------------------------------------------------------------
    Case(
        "files-note-fifo",
        (*ASK, "{tmp}/f.txt"),
        NOTE,
        "not a regular file",
        setup=(("fifo", "f.txt"),),
        deadline_s=HANG_S,
    ),
    Case(
        "files-batch-note-path-fifo",
        _BATCH,
        USAGE,
        "not a regular file",
        setup=(_NOTE_PATH_INPUT, ("fifo", "f.txt")),
        deadline_s=HANG_S,
    ),
    Case(
        "files-batch-input-fifo",
        _BATCH,
        USAGE,
        "not a regular file",
        setup=(("fifo", "in.csv"),),
        deadline_s=HANG_S,
        absent=("{tmp}/b.db",),
    ),
    Case(
        "files-ask-model-fifo",
        (*ASK, "{note}", "--model", "{tmp}/m.gguf"),
        MODEL,
        "not a regular file",
        setup=(("fifo", "m.gguf"),),
        deadline_s=HANG_S,
    ),
    Case(
        "files-import-fifo",
        ("models", "import", "{tmp}/m.gguf"),
        MODEL,
        "not a regular file",
        setup=(("fifo", "m.gguf"),),
        deadline_s=HANG_S,
    ),
    Case(
        "files-info-fifo",
        ("models", "info", "{tmp}/m.gguf"),
        MODEL,
        "not a regular file",
        setup=(("fifo", "m.gguf"),),
        deadline_s=HANG_S,
    ),
    # -- unreadable model files (as a user: root reads any mode) -----------------------------------
    Case(
        "files-import-unreadable",
        ("models", "import", "{tmp}/m.gguf"),
        MODEL,
        "permission denied",
        setup=(("write", "m.gguf", b"GGUF" + bytes(60)), ("chmod", "m.gguf", 0o000)),
        drop_root=True,
    ),
    Case(
        "files-ask-model-unreadable",
        (*ASK, "{note}", "--model", "{tmp}/m.gguf"),
        MODEL,
        "permission denied",
        setup=(("write", "m.gguf", b"GGUF" + bytes(60)), ("chmod", "m.gguf", 0o000)),
        drop_root=True,
    ),
    Case(
        "files-ask-registered-model-unreadable",
        (*ASK, "{note}", "--model", "{tmp}/m.gguf"),
        MODEL,
        "permission denied",
        setup=(("registered", "m.gguf"), ("chmod", "m.gguf", 0o000)),
        drop_root=True,
    ),
    # -- outputs that are not regular files: never replaced by a file of patient data ----------------
    Case(
        "files-export-output-fifo",
        ("log", "export", "--db", "{db}", "-o", "{tmp}/out.csv"),
        USAGE,
        "not a regular file",
        setup=(LOG, ("fifo", "out.csv")),
        deadline_s=HANG_S,
    ),
    Case(
        "files-batch-output-fifo",
        (*_BATCH, "--output", "{tmp}/out.csv"),
        USAGE,
        "not a regular file",
        setup=(("batch_input", "in.csv"), ("fifo", "out.csv")),
        deadline_s=HANG_S,
        absent=("{tmp}/b.db",),
    ),
    # -- model names -------------------------------------------------------------------------------
    Case(
        "files-import-name-escape",
        ("models", "import", "{tmp}/m.gguf", "--no-copy", "--name", _ESCAPE_NAME),
        USAGE,
        "control character",
        setup=(("demo_copy", "m.gguf"),),
        hidden=("\x1b",),
    ),
    Case(
        "files-import-name-not-utf8",
        ("models", "import", "{tmp}/m.gguf", "--no-copy", "--name", "Caf\udce9"),
        USAGE,
        "not valid UTF-8",
        setup=(("demo_copy", "m.gguf"),),
    ),
    Case(
        "files-rename-escape",
        ("models", "rename", "{tmp}/m.gguf", _ESCAPE_NAME),
        USAGE,
        "control character",
        setup=(("demo_copy", "m.gguf"),),
        hidden=("\x1b",),
    ),
    Case("files-rename-not-utf8", ("models", "rename", "{tmp}/m.gguf", "x\udcff"), USAGE, "not valid UTF-8"),
    # -- notes and --model -------------------------------------------------------------------------
    Case(
        "files-note-zero-width",
        (*ASK, "{tmp}/n.txt"),
        NOTE,
        "empty",
        setup=(("write", "n.txt", "\u200b\u200c\u200d\u2060\ufeff \n\u200b\n"),),
    ),
    Case("files-ask-model-empty", (*ASK, "{note}", "--model", ""), USAGE, "the model is empty"),
    Case("files-ask-model-blank", (*ASK, "{note}", "--model", "  "), USAGE, "the model is empty"),
    Case(
        "files-batch-model-empty",
        (*_BATCH, "--model", ""),
        USAGE,
        "the model is empty",
        setup=(("batch_input", "in.csv"),),
        absent=("{tmp}/b.db",),
    ),
    # -- config numbers and shape ------------------------------------------------------------------
    Case(
        "files-config-n-ctx-huge",
        ("models", "list"),
        USAGE,
        "engine: n_ctx must be 0 (the model's context) or 256..",
        setup=(_config('"n_ctx": 4294967808'),),
    ),
    Case(
        "files-config-max-ctx-huge",
        ("models", "list"),
        USAGE,
        "max_ctx must be 256..",
        setup=(_config('"max_ctx": 4294967808'),),
    ),
    Case(
        "files-config-kv-cache-huge",
        ("models", "list"),
        USAGE,
        "kv_cache_mb must be 0..",
        setup=(_config('"kv_cache_mb": 1099511627776'),),
    ),
    Case(
        "files-config-kv-disk-huge",
        ("models", "list"),
        USAGE,
        "kv_disk_mb must be 0..",
        setup=(_config('"kv_disk_mb": 1099511627776'),),
    ),
    Case(
        "files-config-n-batch-huge",
        ("models", "list"),
        USAGE,
        "n_batch must be 1..",
        setup=(_config('"n_batch": 4294967808'),),
    ),
    Case(
        "files-config-deep",
        ("models", "list"),
        USAGE,
        "nested too deeply",
        setup=(("config", '{"engine": ' + "[" * 100_000 + "]" * 100_000 + "}"),),
    ),
)

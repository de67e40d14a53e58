"""Files, names, notes and config (issue #21) where a bad-input row cannot say it: the one regular-file check
(``app.core.infile.open_regular``), outputs that are devices, the one model-name rule and how an old name is
shown, a damaged registry entry (the command goes on, exit 0) and config bounds at their edges."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from app.core.bounds import BATCH_MAX, CONTEXT_MAX, CONTEXT_MIN, KV_CACHE_MB_MAX, KV_DISK_MB_MAX
from app.core.config import EngineConfig, Paths, load_config
from app.core.errors import ModelError, NoteError, UsageError
from app.core.infile import open_regular
from app.core.models import Registry, check_name, parse_registry, printable
from app.core.notes import read_note_file, validate_note
from app.core.privatefile import OutputError, check_output, private_file

DEADLINE_S = 20.0
"""open_regular answers at once; a regression would block in open() until a writer comes."""


def _in_thread(fn: Any) -> BaseException | None:
    """Run ``fn`` in a thread and wait for it to end (bounded): the exception it raised, or None."""
    out: list[BaseException | None] = [None]

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the test
            out[0] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(DEADLINE_S)
    return None if t.is_alive() else out[0] or AssertionError("no exception")


@pytest.fixture
def fifo(tmp_path: Path):
    p = tmp_path / "note.txt"
    os.mkfifo(p)
    yield p
    # A regressed reader blocked in open() is let go by a writer (O_NONBLOCK: no wait if none is blocked).
    with contextlib.suppress(OSError):
        os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))


# -- the one regular-file check -------------------------------------------------------------------
def test_a_fifo_note_is_refused_without_waiting_for_a_writer(fifo: Path):
    err = _in_thread(lambda: read_note_file(fifo))
    assert isinstance(err, NoteError), f"no refusal within {DEADLINE_S} s: {err!r}"
    assert "not a regular file (a named pipe (FIFO))" in str(err)


def test_a_fifo_model_is_refused_with_the_model_code(fifo: Path):
    from app.core.models import read_gguf

    err = _in_thread(lambda: read_gguf(fifo))
    assert isinstance(err, ModelError) and "not a regular file" in str(err), repr(err)


def test_a_device_is_refused_before_it_is_opened():
    with pytest.raises(NoteError, match=r"not a regular file \(a device\)"):
        read_note_file("/dev/null")
    with pytest.raises(UsageError, match="is a directory, not a batch input"):
        open_regular("/", "batch input", UsageError)


def test_a_regular_file_opens_blocking_and_readable(tmp_path: Path):
    p = tmp_path / "n.txt"
    p.write_bytes(b"A note.")
    with open_regular(p, "note file", NoteError) as fh:
        assert os.get_blocking(fh.fileno()), "the descriptor handed on is an ordinary blocking one"
        assert fh.read() == b"A note."


# -- outputs that are not regular files -------------------------------------------------------------
def test_check_output_refuses_a_device_without_touching_it():
    before = os.stat("/dev/null")
    with pytest.raises(OutputError, match=r"not a regular file \(a device\); refusing to replace it"):
        check_output("/dev/null")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_private_file_leaves_a_fifo_in_place(fifo: Path):
    with pytest.raises(OutputError, match="named pipe"), private_file(fifo) as fh:
        fh.write("patient data")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in fifo.parent.iterdir()] == [fifo.name], "no temporary file left behind"


# -- notes --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u200d\n\u2060\ufeff", " \u202e\u200e \n"])
def test_a_note_of_invisible_characters_is_empty(text: str):
    with pytest.raises(NoteError, match="empty"):
        validate_note(text)


def test_a_note_with_a_zero_width_character_and_text_is_kept():
    assert validate_note("\u200bBP 120/80\u200d") == "\u200bBP 120/80\u200d"


# -- model names --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("\x1b[31mred", "control characters"),
        ("a\x9bb", "control characters"),  # C1 CSI: an escape sequence on its own
        ("bell\x07", "control characters"),
        ("Caf\udce9", "not valid UTF-8"),
        ("", "1 to 120"),
        ("x" * 121, "1 to 120"),
    ],
)
def test_check_name_refuses(name: str, why: str):
    with pytest.raises(UsageError, match=why):
        check_name(name)


def test_check_name_collapses_whitespace_and_keeps_unicode():
    assert check_name("  Asclepius\t7B\n Q4  ") == "Asclepius 7B Q4"
    assert check_name("Ärztin-Modell 医学") == "Ärztin-Modell 医学"


def test_printable_shows_what_a_terminal_would_obey():
    assert printable("a\x1b[2Jb\udcffc\x9b") == "a\\x1b[2Jb\\xffc\\x9b"
    assert printable("plain É") == "plain É"


# -- the registry -------------------------------------------------------------------------------------
def _entry(**changes: Any) -> dict[str, Any]:
    e = {
        "path": "/m/a.gguf",
        "sha256": "ab" * 32,
        "file_name": "a.gguf",
        "name": "A",
        "architecture": "llama",
        "context_length": 4096,
        "file_type": "Q4_K_M",
        "size_bytes": 10,
    }
    return {**e, **changes}


@pytest.mark.parametrize(
    "bad",
    [{"size_bytes": "10"}, {"name": 5}, {"context_length": True}, {"is_demo": "no"}, {"provenance": []}],
)
def test_parse_registry_refuses_wrong_types(bad: dict[str, Any], tmp_path: Path):
    with pytest.raises(TypeError, match=f"an entry's {next(iter(bad))} is"):
        parse_registry({"version": 2, "models": [_entry(**bad)]}, tmp_path)


def test_parse_registry_shows_an_old_name_escaped(tmp_path: Path):
    entries, _ = parse_registry({"version": 2, "models": [_entry(name="\x1b]0;x\x07Evil")]}, tmp_path)
    assert entries["/m/a.gguf"]["name"] == "\\x1b]0;x\\x07Evil"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"version": 2, "models": [_entry(size_bytes="ten")]}),
        '{"version": 2, "models": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
    ids=["wrong-type", "nested-too-deep"],
)
def test_a_damaged_registry_is_kept_aside_with_a_notice(tmp_path: Path, body: str):
    paths = Paths(tmp_path / "data", tmp_path / "config")
    paths.data_dir.mkdir()
    paths.registry_file.write_text(body)
    reg = Registry(paths)
    assert reg.list() == [] and "was damaged" in reg.notice
    kept = [p for p in paths.data_dir.iterdir() if p.name.startswith("models.json.damaged-")]
    assert len(kept) == 1 and kept[0].read_text() == body, "the damaged file is kept, byte for byte"


def _home_with_registry(tmp_path: Path, paths: Any, edit: Any) -> Path:
    """An ASCLEPIUS_HOME sharing the session's demo model, its registry changed by ``edit(entries)``."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "models").symlink_to(paths.models_dir)
    body = json.loads(paths.registry_file.read_text())
    edit(body["models"])
    (home / "data" / "models.json").write_text(json.dumps(body))
    return home


def test_models_list_shows_an_old_escape_name_escaped(tmp_path, demo_model, paths, monkeypatch, capfd):
    from app.cli.main import main

    def rename(models: list[dict[str, Any]]) -> None:
        for e in models:
            e["name"] = "\x1b[2J\x1b]0;pwned\x07Evil\udcff"

    monkeypatch.setenv("ASCLEPIUS_HOME", str(_home_with_registry(tmp_path, paths, rename)))
    assert main(["models", "list"]) == 0
    out, err = capfd.readouterr()
    assert "\\x1b[2J\\x1b]0;pwned\\x07Evil\\xff" in out
    assert "\x1b" not in out + err and "Traceback" not in out + err


def test_models_list_goes_on_after_a_wrong_type_entry(tmp_path, demo_model, paths, monkeypatch, capfd):
    from app.cli.main import main

    def damage(models: list[dict[str, Any]]) -> None:
        models.append({**models[0], "path": "/elsewhere/x.gguf", "size_bytes": "big"})

    home = _home_with_registry(tmp_path, paths, damage)
    monkeypatch.setenv("ASCLEPIUS_HOME", str(home))
    assert main(["models", "list"]) == 0
    out, err = capfd.readouterr()
    assert "size_bytes is str, not int" in err and "kept as models.json.damaged-" in err
    assert "Gemma 3 270M" in out, "the demo is registered again in a fresh registry"
    assert any(p.name.startswith("models.json.damaged-") for p in (home / "data").iterdir())


# -- config numbers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("n_ctx", CONTEXT_MAX, CONTEXT_MAX + 1),
        ("n_ctx", CONTEXT_MIN, CONTEXT_MIN - 1),
        ("max_ctx", CONTEXT_MAX, 4294967808),
        ("n_batch", BATCH_MAX, BATCH_MAX + 1),
        ("kv_cache_mb", KV_CACHE_MB_MAX, KV_CACHE_MB_MAX + 1),
        ("kv_disk_mb", KV_DISK_MB_MAX, KV_DISK_MB_MAX + 1),
    ],
)
def test_engine_config_ranges_at_their_edges(field: str, good: int, bad: int):
    assert getattr(EngineConfig(**{field: good}), field) == good
    with pytest.raises(ValueError, match=f"{field} must be"):
        EngineConfig(**{field: bad})


def test_a_deeply_nested_config_is_a_config_error(tmp_path: Path):
    paths = Paths(tmp_path / "data", tmp_path / "config")
    paths.config_dir.mkdir()
    paths.config_file.write_text('{"engine": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match=r"config file .* is invalid: not valid JSON here \(nested too deeply"):
        load_config(paths)


# -- the --model reference -------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_model_reference_is_refused(value: str):
    import argparse

    from app.cli.validators import model_ref

    with pytest.raises(argparse.ArgumentTypeError, match="the model is empty"):
        model_ref(value)

"""Notes stay warm across restarts: the engine keeps note states on disk and checks them before use."""

from __future__ import annotations

import os
import stat

from app.core.config import EngineConfig
from app.core.engine import LlamaCppEngine
from app.core.kvstate import STATE_DIR_NAME
from app.core.types import AskRequest, SamplingParams
from resources import load_sample
from tests.integration.test_cli import run


def _ask(engine: LlamaCppEngine, note: str):
    return engine.ask(AskRequest(note, "Question Answering", "Why was the patient admitted?", SamplingParams(12)))


def test_a_restarted_engine_restores_the_note_from_disk(demo_model, tmp_path):
    note = load_sample("pneumonia").text
    cfg = EngineConfig(n_threads=2, max_ctx=1024)
    kept = tmp_path / STATE_DIR_NAME
    with LlamaCppEngine(demo_model, cfg, state_dir=kept) as first:
        cold = _ask(first, note)
        assert first.last_prefix_source == "eval"
    files = list(kept.iterdir())
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    with LlamaCppEngine(demo_model, cfg, state_dir=kept) as second:
        warm = _ask(second, note)
        assert second.last_prefix_source == "disk"
        assert warm.answer == cold.answer and warm.reused_tokens == len(
            second.tokenize_prompt(second.style_for(None), note, "x").prefix
        )
    # A damaged file is discarded and the note evaluated again, with the same answer.
    raw = bytearray(files[0].read_bytes())
    raw[-1] ^= 0xFF
    files[0].write_bytes(bytes(raw))
    with LlamaCppEngine(demo_model, cfg, state_dir=kept) as third:
        again = _ask(third, note)
        assert third.last_prefix_source == "eval" and again.answer == cold.answer


def test_cache_clear_command_removes_kept_states(tmp_path):
    home = tmp_path / "home"
    kept = home / "data" / STATE_DIR_NAME
    kept.mkdir(parents=True)
    (kept / "abc.kv").write_bytes(b"x" * 1000)
    env = {"ASCLEPIUS_HOME": str(home)}
    r = run("cache", "clear", env_extra=env)
    assert r.returncode == 0, r.stderr.decode()
    assert "removed 1" in r.stdout.decode() and not os.listdir(kept)


def test_ask_no_log_keeps_no_note_state_on_disk(demo_model, tmp_path):
    # A note state holds the note's tokens (the note can be read back from it): a run the user chose not to
    # record must not leave one. The logged run beside it is the positive control (it does write one).
    note = tmp_path / "note.txt"
    note.write_text(load_sample("pneumonia").text, encoding="utf-8")
    home = tmp_path / "home"
    env = {"ASCLEPIUS_HOME": str(home)}
    argv = ["ask", "--note", str(note), "--task", "qa", "--model", demo_model.path, "--max-tokens", "4"]
    r = run(*argv, "--no-log", "Why was the patient admitted?", env_extra=env)
    assert r.returncode == 0, r.stderr.decode()
    kept = home / "data" / STATE_DIR_NAME
    assert not kept.exists() or not list(kept.glob("*.kv"))
    r = run(*argv, "Why was the patient admitted?", env_extra=env)
    assert r.returncode == 0, r.stderr.decode()
    assert len(list(kept.glob("*.kv"))) == 1

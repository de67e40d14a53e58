"""``asclepius ask`` through the service with a fake engine: settings, flags, exit codes, logging."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from app.cli.ask import ask
from app.cli.context import CliContext
from app.cli.main import build_parser, run_cancellable
from app.core.config import AppConfig, GenerationDefaults
from app.core.errors import Cancelled, ContextOverflowError, GenerationError
from app.store import EvalLog
from tests.fakes import FakeContext, FakeEngine, Script, fake_model

NOTE = "Admitted with pneumonia. Creatinine 1.4 mg/dL on admission."


@pytest.fixture
def note(tmp_path: Path) -> Path:
    p = tmp_path / "note.txt"
    p.write_text(NOTE, encoding="utf-8")
    return p


def run_ask(ctx: CliContext, note: Path, *extra: str, runner=run_cancellable) -> int:  # type: ignore[no-untyped-def]
    args = build_parser().parse_args(["ask", "--note", str(note), "--task", "qa", *extra, "What was the creatinine?"])
    return ask(args, ctx, runner)


def runs(ctx: CliContext):  # type: ignore[no-untyped-def]
    with ctx.open_log() as lg:
        return lg.list_runs()


def test_the_settings_screen_values_apply_to_the_cli_and_a_flag_beats_them(tmp_path, note, capsys):
    engine = FakeEngine(model=fake_model())
    cfg = replace(AppConfig(), generation=GenerationDefaults(max_tokens=7, temperature=0.3, seed=11))
    ctx = FakeContext(tmp_path, engine, cfg)
    assert run_ask(ctx, note) == 0
    assert run_ask(ctx, note, "--max-tokens", "3", "--seed", "2") == 0
    first, second = (r.sampling for r in engine.requests)
    assert (first.max_tokens, first.temperature, first.seed) == (7, 0.3, 11)
    assert (second.max_tokens, second.temperature, second.seed) == (3, 0.3, 2)
    assert sorted(v.sampling["max_tokens"] for v in runs(ctx)) == [3, 7]
    assert engine.closed


def test_the_answer_printed_and_logged_has_no_leading_whitespace(tmp_path, note, capsys):
    ctx = FakeContext(tmp_path, FakeEngine(script=Script(answer="\n\n  Creatinine 1.4 mg/dL.")))
    assert run_ask(ctx, note) == 0
    out, err = capsys.readouterr()
    assert out == "Creatinine 1.4 mg/dL.\n"
    assert "-- grounding: the one checked claim supported by the note" in err and "-- check:" not in err
    assert [v.answer for v in runs(ctx)] == ["Creatinine 1.4 mg/dL."]


def test_ask_prints_each_flagged_claim_with_its_status_and_never_all_supported(tmp_path, note, capsys):
    answer = "Creatinine 1.4 mg/dL.\nStarted warfarin 5 mg daily."  # the note names no warfarin, no 5 mg
    ctx = FakeContext(tmp_path, FakeEngine(script=Script(answer=answer)))
    assert run_ask(ctx, note) == 0
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if x.startswith("-- grounding:")]
    assert "not found" in line or "partly" in line
    assert not line.startswith(("-- grounding: all", "-- grounding: the one checked claim supported"))
    checks = [x for x in err.splitlines() if x.startswith("-- check: [")]
    assert checks and not [x for x in checks if x.startswith("-- check: [supported]")]
    assert any("warfarin" in x for x in checks) and not any("Creatinine 1.4" in x for x in checks)


def test_an_error_mid_stream_exits_7_and_is_logged(tmp_path, note, capsys):
    ctx = FakeContext(tmp_path, FakeEngine(script=Script(error_after=2)))
    with pytest.raises(GenerationError) as info:
        run_ask(ctx, note)
    assert info.value.exit_code == 7
    assert [(v.status, v.finish_reason) for v in runs(ctx)] == [("finished", "error")]


def test_overflow_exits_5_names_the_flag_and_is_logged_as_failed(tmp_path, note, capsys):
    ctx = FakeContext(tmp_path, FakeEngine(n_ctx=34))
    with pytest.raises(ContextOverflowError, match="--truncate"):
        run_ask(ctx, note, "--max-tokens", "16")
    assert [(v.finish_reason, "does not fit" in (v.error or "")) for v in runs(ctx)] == [("error", True)]
    assert run_ask(ctx, note, "--max-tokens", "16", "--truncate") == 0
    assert "note truncated" in capsys.readouterr().err


def test_cancel_exits_130_and_the_run_is_logged_cancelled(tmp_path, note, capsys):
    engine = FakeEngine(script=Script(stall_after=1))
    ctx = FakeContext(tmp_path, engine)

    def runner(work):  # type: ignore[no-untyped-def]
        cancel = threading.Event()
        threading.Thread(target=lambda: engine.stalled.wait(5) and cancel.set()).start()
        return work(cancel)

    with pytest.raises(Cancelled):
        run_ask(ctx, note, runner=runner)
    assert [v.finish_reason for v in runs(ctx)] == ["cancelled"]


def test_no_log_records_nothing(tmp_path, note, capsys):
    ctx = FakeContext(tmp_path, FakeEngine())
    assert run_ask(ctx, note, "--no-log") == 0
    assert not (tmp_path / "data" / "asclepius.db").exists()
    assert ctx.engine_logged is False, "a --no-log run must not keep the note's state on disk (kvstate/*.kv)"
    assert run_ask(ctx, note) == 0 and ctx.engine_logged is True
    assert isinstance(ctx.open_log(), EvalLog)

"""Reading a note before the question (``LlamaCppEngine.preread``) on the real demo model.

The answer must not change: with the note read in full, in part (cancelled), or another note read, the
greedy answer is byte for byte the one a fresh engine gives.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest

from app.core.config import EngineConfig
from app.core.engine import LlamaCppEngine
from app.core.kvstate import DiskKey
from app.core.types import AskRequest, SamplingParams, note_sha256
from resources import load_sample

NOTE_A = load_sample("pneumonia").text
NOTE_B = load_sample("heart-failure").text
Q = "Which antibiotic was started?"
CONFIG = EngineConfig(n_threads=2, n_ctx=2048, n_batch=64)
"""Small batches: the sample notes take several chunks, so a preread can stop part way."""


def _ask(engine: LlamaCppEngine, note: str):
    return engine.ask(AskRequest(note, "qa", Q, SamplingParams(max_tokens=16)))


@pytest.fixture(scope="module")
def cold(demo_model) -> dict[str, str]:
    """Each note's answer from an engine that never saw another note (the reference)."""
    out = {}
    for note in (NOTE_A, NOTE_B):
        with LlamaCppEngine(demo_model, CONFIG) as engine:
            out[note] = _ask(engine, note).answer
    return out


def test_a_note_read_in_full_gives_the_cold_answer_and_skips_its_prefix(demo_model, cold):
    seen: list[tuple[int, int]] = []
    with LlamaCppEngine(demo_model, CONFIG) as engine:
        p = engine.preread(NOTE_A, on_progress=lambda done, total: seen.append((done, total)))
        assert p.complete and p.source == "eval" and engine.evaluated_tokens == p.total
        done = [d for d, _ in seen]
        assert done == sorted(done) and done[0] == 0 and done[-1] == p.total and len(done) > 3
        assert {t for _, t in seen} == {p.total}
        assert all(d % CONFIG.n_batch == 0 for d in done[:-1]), "chunks end where a cold ask's batches end"
        r = _ask(engine, NOTE_A)
        assert engine.last_prefix_source == "live" and r.reused_tokens == p.total
        assert r.answer == cold[NOTE_A]
        again = engine.preread(NOTE_A)
        assert again.complete and again.source == "live", "a note already in the context is not read again"


def test_a_preread_cancelled_part_way_leaves_a_context_the_ask_continues_from(demo_model, cold):
    cancel = threading.Event()

    def on_progress(done: int, total: int) -> None:
        if done >= 0.4 * total:
            cancel.set()

    with LlamaCppEngine(demo_model, CONFIG) as engine:
        p = engine.preread(NOTE_A, on_progress=on_progress, cancel=cancel)
        assert 0.4 * p.total <= p.done < p.total and not p.complete
        assert engine.evaluated_tokens == p.done
        r = _ask(engine, NOTE_A)
        assert r.reused_tokens == p.done and r.answer == cold[NOTE_A]


def test_reading_one_note_then_asking_about_another_changes_nothing(demo_model, cold):
    with LlamaCppEngine(demo_model, CONFIG) as engine:
        assert engine.preread(NOTE_A).complete
        assert _ask(engine, NOTE_B).answer == cold[NOTE_B]
        assert _ask(engine, NOTE_A).answer == cold[NOTE_A]


@contextmanager
def _signalling(waiters, entered: threading.Event):
    """``Waiters.waiting`` that also says when a run started waiting (no clock in the test)."""
    original = waiters.waiting

    @contextmanager
    def waiting():
        with original():
            entered.set()
            yield

    waiters.waiting = waiting
    try:
        yield
    finally:
        waiters.waiting = original


def test_an_ask_arriving_during_a_preread_stops_it_and_continues_from_it(demo_model, cold):
    entered = threading.Event()
    answers = []
    with LlamaCppEngine(demo_model, CONFIG) as engine, _signalling(engine._waiters, entered):
        asker = threading.Thread(target=lambda: answers.append(_ask(engine, NOTE_A)))

        def on_progress(done: int, _total: int) -> None:
            if done and not asker.is_alive() and not answers:
                asker.start()  # the preread holds the lock: the ask waits for it
                assert entered.wait(60)

        p = engine.preread(NOTE_A, on_progress=on_progress)
        asker.join(120)
        assert 0 < p.done < p.total, "the preread gave way to the waiting ask"
        assert answers[0].reused_tokens == p.done and answers[0].answer == cold[NOTE_A]


def test_a_preread_note_is_never_kept_on_disk(demo_model, tmp_path):
    # Only a note someone asked about is kept (as the log keeps it); note B, asked, is the positive control.
    kept = tmp_path / "states"
    with LlamaCppEngine(demo_model, CONFIG, state_dir=kept) as engine:
        assert engine.preread(NOTE_A).complete
        _ask(engine, NOTE_B)
        assert engine.preread(NOTE_A).complete
    style = engine.style_for(None).key
    names = {p.name for p in kept.iterdir()}
    assert names == {DiskKey(demo_model.sha256, style, note_sha256(NOTE_B.strip())).name}


def test_a_cancelled_or_closed_engine_reads_nothing(demo_model):
    cancel = threading.Event()
    cancel.set()
    engine = LlamaCppEngine(demo_model, CONFIG)
    p = engine.preread(NOTE_A, cancel=cancel)
    assert p.done == 0 and engine.evaluated_tokens == 0
    engine.close()
    with pytest.raises(Exception, match="closed"):
        engine.preread(NOTE_A)

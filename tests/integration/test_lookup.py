"""Prompt-lookup decoding on the real demo model: the same greedy answers as plain decoding, the same context.

A small real sample (held ACI-bench notes x copy-heavy and other tasks); ``tests/bench/bench_lookup.py``
checks the big one (30 notes x 8 tasks, 128 tokens) and measures the speed.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

from app.core.types import AskRequest, FinishReason, SamplingParams
from resources import get_task
from tests.conftest import aci_notes


@contextmanager
def lookup(engine, on: bool):
    saved = engine.config
    engine.config = replace(saved, lookup=on)
    try:
        yield engine
    finally:
        engine.config = saved


def ask(engine, note, task, on, max_tokens=40, **sampling):
    with lookup(engine, on):
        t = get_task(task)
        return engine.ask(AskRequest(note, t.name, t.examples[0], SamplingParams(max_tokens=max_tokens, **sampling)))


def test_greedy_answers_with_lookup_are_the_plain_ones_up_to_near_ties(demo_engine, shared_data):
    """Not always byte-identical: llama.cpp's CPU kernels can give a batch row other logits than a single decode,
    which flips a near-tied greedy token (1 of these 8, Temporal extraction, in the runs of this sample; 3 of 16
    in bench_lookup.py's run). What
    must hold: every answer decodes, and the identical ones are the rule (``bench_lookup.py`` counts them)."""
    same = 0
    for task in ("ner", "abbrev", "temporal", "summary"):
        for note in aci_notes(shared_data, 2):
            plain = ask(demo_engine, note, task, on=False)
            fast = ask(demo_engine, note, task, on=True)
            assert plain.lookup is None and fast.lookup is not None and fast.completion_tokens > 0
            same += (fast.answer, fast.completion_tokens) == (plain.answer, plain.completion_tokens)
    assert same >= 7, f"{8 - same} of 8 answers differ from plain decoding"


def test_the_context_after_a_lookup_answer_is_what_plain_decoding_leaves(demo_engine, shared_data):
    note = aci_notes(shared_data, 1)[0]
    held = []
    for on in (False, True):
        r = ask(demo_engine, note, "ner", on=on, max_tokens=32)
        assert r.finish_reason is FinishReason.LENGTH
        # The prompt and every answer token but the last are evaluated (the last is never decoded).
        held.append((demo_engine.evaluated_tokens, list(demo_engine._llm.input_ids[: demo_engine.evaluated_tokens])))
        assert held[-1][0] == r.prompt_tokens + r.completion_tokens - 1
    assert held[0] == held[1]
    # A follow-up on the note reuses its prefix live, as after plain decoding.
    again = ask(demo_engine, note, "relation", on=True, max_tokens=8)
    assert demo_engine.last_prefix_source == "live" and again.reused_tokens > 0


def test_sampled_answers_decode_plainly(demo_engine, shared_data):
    note = aci_notes(shared_data, 1)[0]
    r = ask(demo_engine, note, "ner", on=True, max_tokens=16, temperature=0.8, seed=3)
    assert r.lookup is None and r.completion_tokens > 0

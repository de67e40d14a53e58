"""Prompt-lookup drafting and acceptance (app/core/lookup.py) against a scripted greedy "model"."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from app.core.lookup import (
    DRAFT_MAX,
    DRAFT_START,
    SINGLE_SMOOTHING,
    WINDOW,
    DraftSizer,
    LookupLimits,
    NgramIndex,
    cut_draft,
    lookup_applies,
    lookup_tokens,
    stop_rule,
)
from app.core.types import SamplingParams


def test_the_longest_suffix_finds_its_most_recent_continuation():
    idx = NgramIndex([5, 6, 7, 1, 5, 6, 8, 2, 9, 5, 6])
    # [5, 6] occurred twice before the end: the most recent continuation (8, 2, ...) wins
    assert idx.draft(3) == [8, 2, 9]
    idx.append(7)
    # [5, 6, 7] (three tokens) matches the first occurrence, ahead of the two-token [6, 7]
    assert idx.draft(2) == [1, 5]


def test_a_draft_stops_at_the_end_of_history_and_needs_two_tokens():
    idx = NgramIndex([3, 4, 3, 4])
    assert idx.draft(8) == [3, 4]  # the continuation runs into the suffix itself and ends there
    assert NgramIndex([1, 2, 3, 9]).draft(4) == []  # only a one-token match (none of 2+): no draft
    assert NgramIndex([1, 2, 1, 2]).draft(0) == []


def test_cut_draft_keeps_the_token_that_ends_the_answer():
    assert cut_draft([1, 2, 3, 4], lambda i: i == 1) == [1, 2]
    assert cut_draft([1, 2, 3], lambda i: False) == [1, 2, 3]


def test_stop_rule_sees_eog_and_stop_strings_across_the_answer_tail():
    pieces = {1: b"Question", 2: b":", 3: b" x", 4: b"\n", 99: b""}
    rule = stop_rule(lambda t: t == 99, pieces.__getitem__, ("\n\n", "Question:"), lambda: "answer\n")
    assert rule([3, 99], 1) and not rule([3, 99], 0)
    assert rule([1, 2], 1) and not rule([1, 2], 0)  # "Question" + ":" completes a stop string
    assert rule([4], 0)  # the answer ends with "\n": one more makes "\n\n"
    assert not stop_rule(lambda t: False, pieces.__getitem__, (), lambda: "")([1, 2], 1)


def test_lookup_is_greedy_only():
    assert lookup_applies(SamplingParams(), True)
    assert not lookup_applies(SamplingParams(), False)
    assert not lookup_applies(SamplingParams(temperature=0.7), True)
    assert not lookup_applies(SamplingParams(repeat_penalty=1.1), True)


def test_sizer_grows_on_full_hits_shrinks_on_misses_and_stops_when_drafts_do_not_pay():
    s = DraftSizer()
    assert s.limit() == DRAFT_START
    s.record_plain(1.0)
    s.record(DRAFT_START, DRAFT_START, 1.5)
    grown = min(DRAFT_MAX, 2 * DRAFT_START)
    assert s.limit() == grown
    s.record(grown, 0, 2.0)
    assert s.limit() == 1
    for _ in range(WINDOW):
        s.record(1, 0, 1.3)  # a rejected draft: one token for the price of 1.3
    assert s.limit() == 0 and s.stats().stopped
    st = s.stats()
    assert (st.drafted, st.accepted, st.verifications) == (DRAFT_START + grown + WINDOW, DRAFT_START, 2 + WINDOW)
    assert st.acceptance == pytest.approx(st.accepted / st.drafted)


def test_sizer_keeps_drafting_while_drafts_pay():
    s = DraftSizer()
    s.record_plain(1.0)
    for _ in range(3 * WINDOW):
        s.record(2, 2, 1.4)
        s.record(3, 2, 1.6)
    assert s.limit() > 0 and not s.stats().stopped


@pytest.mark.parametrize(
    ("row_cost", "keeps_drafting"),
    [(0.1, True), (1.0, False)],  # a memory-bound 7B (extra rows nearly free) / a compute-bound small model
)
def test_the_same_acceptance_pays_or_not_by_the_measured_cost_of_a_row(row_cost, keeps_drafting):
    s = DraftSizer()
    s.record_plain(1.0)
    for _ in range(2 * WINDOW):
        s.record(2, 1, 1.0 + 2 * row_cost)  # half of every draft accepted: 2 tokens per verification
        s.record_plain(1.0)
    assert s.stats().stopped is not keeps_drafting


def test_single_decode_time_is_a_smoothed_average():
    s = DraftSizer()
    s.record_plain(1.0)
    s.record_plain(5.0)  # one decode slowed by another process moves it only part of the way
    assert s.single_s == pytest.approx(1.0 + SINGLE_SMOOTHING * 4.0)


class ScriptedModel:
    """A greedy "model" whose next token after position ``p`` is ``script[p + 1]`` (past it: ``filler``); it
    keeps a KV list the way llama.cpp would, and counts decodes and rows."""

    def __init__(self, prompt: list[int], script: list[int], filler: int = 0, row_cost: float = 0.2) -> None:
        self.script, self.filler = prompt + script, filler
        self.row_cost = row_cost
        """What each row after the first adds to a decode's time, in single decodes (the fake clock)."""
        self.now = 0.0
        self.kv: list[int] = list(prompt)
        self.n_tokens = len(prompt)
        self.decodes = 0
        self.rows = 0

    def next_after(self, pos: int) -> int:
        return self.script[pos + 1] if pos + 1 < len(self.script) else self.filler

    # the Verifier protocol
    def evaluated(self) -> int:
        return self.n_tokens

    def verify(self, tokens: Sequence[int], pos: int) -> list[int]:
        assert len(self.kv) >= pos, "decoding past a hole in the context"
        del self.kv[pos:]
        self.kv.extend(tokens)
        self.decodes += 1
        self.rows += len(tokens)
        self.now += 1.0 + self.row_cost * (len(tokens) - 1)
        # The greedy choice depends only on the position, as long as the history up to it is the script's.
        out = []
        for i in range(len(tokens)):
            good = self.kv[: pos + i + 1] == self.script[: pos + i + 1]
            out.append(self.next_after(pos + i) if good else -1)
        return out

    def keep(self, tokens: Sequence[int], pos: int, n: int) -> None:
        del self.kv[pos + n :]
        self.n_tokens = pos + n

    def view(self, n: int) -> None:
        self.n_tokens = n


def run(prompt, script, max_tokens, stop_token=None, limit=None, row_cost=0.2):
    model = ScriptedModel(prompt, script, row_cost=row_cost)
    first = (t for t in [script[0]])
    sizer = DraftSizer()
    stops = lambda d, i: d[i] == stop_token  # noqa: E731
    gen = lookup_tokens(first, prompt, model, LookupLimits(max_tokens, 4096), sizer, stops, lambda: model.now)
    out = []
    for tok in gen:
        if tok == stop_token:
            break
        out.append(tok)
        if len(out) >= (limit or max_tokens):
            break
    gen.close()
    return out, model, sizer


NOTE = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]


def test_a_copied_span_comes_out_exactly_with_fewer_decodes():
    script = [1, 12, 13, 14, 15, 16, 17, 18, 19, 20, 2, 3]  # the answer copies the note from token 12
    out, model, sizer = run([*NOTE, 5], script, max_tokens=len(script))
    assert out == script
    assert model.decodes < len(script) - 1  # plain decoding needs one decode per token after the first
    assert sizer.stats().accepted >= 5
    assert model.kv == [*NOTE, 5, *script[:-1]]  # exactly what plain decoding leaves: the last token unevaluated


def test_no_decode_evaluates_a_token_past_max_tokens():
    script = [12, 13, 14, 15, 16, 17, 18, 19, 20]
    for cap in (1, 2, 3, 5):
        out, model, _ = run(NOTE, script, max_tokens=cap)
        assert out == script[:cap]
        assert model.rows <= cap - 1  # plain decoding evaluates tokens 1..cap-1 only
        assert model.kv == NOTE + script[: cap - 1]


def test_closing_at_a_stop_token_rolls_back_what_was_accepted_after_it():
    script = [12, 13, 14, 99, 16, 17]  # the model stops at 99 ("EOS") in the middle of a copied span
    out, model, _ = run([*NOTE, 12, 13, 14, 99, 16], script, max_tokens=50, stop_token=99)
    assert out == [12, 13, 14]
    assert model.kv == [*NOTE, 12, 13, 14, 99, 16, 12, 13, 14]  # the 99 itself is not evaluated
    assert model.n_tokens == len(model.kv)


def test_a_consumer_stopping_early_leaves_the_context_at_its_token():
    script = [12, 13, 14, 15, 16, 17, 18, 19]
    out, model, _ = run(NOTE, script, max_tokens=50, limit=4)
    assert out == script[:4]
    assert model.kv == NOTE + script[:3] and model.n_tokens == len(NOTE) + 3


def test_wrong_drafts_still_give_the_models_own_tokens():
    script = [12, 13, 7, 7, 7, 14, 15, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]  # diverges from the note again and again
    out, model, sizer = run(NOTE, script, max_tokens=len(script))
    assert out == script and model.kv == NOTE + script[:-1]
    assert sizer.stats().drafted > sizer.stats().accepted


def test_drafting_stops_on_a_model_whose_extra_rows_cost_full_decodes():
    # The answer copies short pieces of the note and then leaves them: drafts half right. Where an extra row
    # costs a whole decode (a small model on few cores) drafting is switched off; where rows are nearly free
    # (a large, memory-bound model) it goes on. The tokens are the model's own either way.
    piece = [12, 13, 7, 16, 17, 8]
    script = [9, *(piece * 8)]
    for row_cost, stops in ((1.0, True), (0.05, False)):
        out, model, sizer = run(NOTE, script, max_tokens=len(script), row_cost=row_cost)
        assert out == script and model.kv == NOTE + script[:-1]
        assert sizer.stats().stopped is stops, row_cost

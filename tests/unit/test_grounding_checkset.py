"""The labelled grounding check set (tests/bench/bench_grounding.py) on a slice of the shared notes."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.bench import bench_grounding as bench


@pytest.fixture(scope="module")
def slice_(shared_data):
    notes = bench.load_notes(shared_data / "notes")[::12]  # ~115 notes from all four files
    return notes, bench.make_items(notes)


def test_the_check_set_is_labelled_correctly(slice_):
    notes, items = slice_
    kinds = Counter(i.kind for i in items)
    assert all(kinds[k] >= 5 for k in ("quote", "quote-list", "number", "dose", "drug", "drug-unlisted")), kinds
    for it in items:
        note = notes[it.note]
        if it.changed is None:
            lines = [line.split(" ", 1)[1] if it.kind == "quote-list" else line for line in it.answer.splitlines()]
            assert all(line in note for line in lines)  # quotes are verbatim
        else:
            a, b = it.changed
            assert it.replacement in it.answer[a:b] and it.answer != it.original
            if it.kind.startswith("drug"):
                assert it.replacement not in note.lower()


def test_flags_meet_the_precision_and_recall_targets_on_the_slice(slice_):
    notes, items = slice_
    tallies, errors = bench.evaluate(items, notes)
    head = bench.overall(tallies, bench.HEADLINE)
    assert head.precision >= 0.95 and head.recall >= 0.9, errors[:5]
    assert tallies["quote-list"].fp == 0  # list numbers are never flagged
    for kind in ("number", "dose", "drug"):
        assert tallies[kind].recall >= 0.9, (kind, tallies[kind])

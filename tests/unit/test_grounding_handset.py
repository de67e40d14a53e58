"""The hand-labelled claim set (tests/data/claims_handset.jsonl): claims written by reading 21 shared notes,
labelled before any checker ran on them. The claim checker's flags (partly or not found) must meet the
issue's precision and recall on it, and beat the word-level checker by a wide margin."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.bench import bench_claims as bench


@pytest.fixture(scope="module")
def handset(shared_data):
    claims = bench.load_handset()
    return claims, bench.handset_notes(claims, shared_data / "notes")


def test_the_hand_set_is_well_formed(handset):
    claims, notes = handset
    labels = Counter(c.label for c in claims)
    assert set(labels) <= set(bench.STATUSES)
    assert len(claims) >= 100 and labels["partly"] + labels["not_found"] >= 35 and labels["unchecked"] >= 10
    assert len({(c.source, c.row_id) for c in claims}) >= 20
    assert all((c.source, c.row_id) in notes for c in claims)  # every row id names a shared note


def test_flags_meet_the_targets_on_the_hand_set(handset):
    claims, notes = handset
    res = bench.evaluate_handset(claims, notes)
    errors = [(c.claim, c.label, got) for c, got in res["errors"]]
    assert res["precision"] >= 0.95 and res["recall"] >= 0.95, errors
    tokens = bench.evaluate_handset(claims, notes, bench.status_by_tokens)
    assert res["recall"] > tokens["recall"] + 0.3 and res["precision"] > tokens["precision"] + 0.3
    assert res["matrix"]["unchecked"]["unchecked"] == res["labelled_unchecked"]  # every negation/reasoning


def test_claim_status_aggregates_a_split_claim():
    assert bench.claim_status(["supported", "supported"]) == "supported"
    assert bench.claim_status(["supported", "not_found"]) == "partly"
    assert bench.claim_status(["not_found", "unchecked"]) == "not_found"
    assert bench.claim_status(["unchecked"]) == "unchecked"
    assert bench.claim_status([]) == "unchecked"

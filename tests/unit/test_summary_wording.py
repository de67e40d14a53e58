"""The one-line grounding summary counts in English: "the one checked claim", "1 item", never "all 1 ... claims"."""

from __future__ import annotations

from app.core.grounding import describe_summary
from app.core.grounding.report import SCHEMA


def summary(**counts: int) -> dict:
    base = dict.fromkeys(("claims", "unchecked", "supported", "partly", "not_found", "items", "items_found"), 0)
    base |= dict.fromkeys(("unusual_senses", "omissions"), 0)
    return {"schema": SCHEMA, **base, **counts}


def test_one_supported_claim_is_singular() -> None:
    text = describe_summary(summary(claims=1, supported=1))
    assert text == "the one checked claim supported by the note"
    assert "all 1" not in text


def test_one_of_one_not_supported_is_singular() -> None:
    assert describe_summary(summary(claims=1, not_found=1)) == "0 of 1 checked claim supported, 1 not found"


def test_plural_counts_stay_plural() -> None:
    text = describe_summary(summary(claims=3, supported=3, items=2, items_found=2, omissions=2, unusual_senses=2))
    assert text == (
        "all 3 checked claims supported by the note; all 2 items found in the note; "
        "2 unusual abbreviation senses; 2 possible omissions"
    )


def test_single_item_sense_and_omission() -> None:
    text = describe_summary(summary(items=1, items_found=1, omissions=1, unusual_senses=1))
    assert text == "nothing to check; the one item found in the note; 1 unusual abbreviation sense; 1 possible omission"
    assert "(s)" not in text
    assert "1 of 2 items found in the note, 1 not" in describe_summary(summary(items=2, items_found=1))

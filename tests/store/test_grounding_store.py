"""The grounding report as the log stores it: whole when the log keeps note text, without the note's words
when it keeps hashes only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from app.core.grounding import ClaimStatus, GroundingReport, describe_summary
from app.store import EvalLog
from tests.grounding_examples import NOTE, example_report
from tests.store.helpers import model, request, result

NOTE_ONLY_WORDS = ("metformin", "Robitussin", "lisinopril")
"""In the report's reasons, belongs_to and omissions, taken from the note (the answer capitalises its own
"Metformin" and "Lisinopril", which may stay: they are the answer's words)."""


def _log_report(log: EvalLog, report: GroundingReport) -> dict:
    req = request(note=NOTE)
    rid = log.log_run(req, model(), replace(result(req, model()), grounding=report.summary()))
    view = log.get_run(rid)
    assert view is not None and view.grounding is not None
    return view.grounding


def test_a_log_keeping_note_text_stores_the_whole_report(db_path: Path) -> None:
    with EvalLog.open(db_path) as log:
        stored = _log_report(log, example_report())
    assert GroundingReport.from_dict(stored) == example_report()
    assert describe_summary(stored) == example_report().headline()


def test_a_hash_only_log_stores_the_report_without_the_notes_words(db_path: Path) -> None:
    with EvalLog.open(db_path, store_note_text=False) as log:
        stored = _log_report(log, example_report())
    raw = db_path.read_bytes()
    for word in NOTE_ONLY_WORDS:
        assert word.encode() not in raw, word
    back = GroundingReport.from_dict(stored)
    # What the answer said, the statuses, counts and offsets are kept: History still shows the same result.
    assert describe_summary(stored) == example_report().headline()
    assert [c.status for c in back.claims] == [c.status for c in example_report().claims]
    assert [c.text for c in back.claims] == [c.text for c in example_report().claims]
    partly = back.by_status(ClaimStatus.PARTLY)[0]
    assert "1000 mg" in partly.reason and "something else" in partly.reason
    assert [p.note_spans for p in partly.parts] == [p.note_spans for p in example_report().claims[1].parts]
    assert len(back.omissions) == 1 and "not kept" in back.omissions[0].text


def test_an_older_word_level_summary_is_stored_as_it_was(db_path: Path) -> None:
    with EvalLog.open(db_path, store_note_text=False) as log:
        req = request(note=NOTE)
        rid = log.log_run(req, model(), result(req, model()))
        view = log.get_run(rid)
    assert view is not None and view.grounding == {"checked": 2, "supported": 2, "unsupported": []}
    assert describe_summary(view.grounding).startswith("2 of 2 facts found")

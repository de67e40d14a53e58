"""History by note (revision 0008): a note's name, its first line, the notes list, and hiding failed attempts."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.errors import UsageError
from app.core.types import FinishReason, note_sha256
from app.store import EvalLog, RunFilter, RunQuery
from tests.store.helpers import NOTE, model, request, result

OTHER = "\n\n  Follow-up visit note.\nBlood pressure 150/90.\n"


def run(log: EvalLog, note: str, reason: FinishReason = FinishReason.STOP, answer: str = "amoxicillin") -> int:
    req, m = request(note=note), model()
    rid = log.start_run(req, m)
    log.finish_run(rid, result(req, m, answer=answer, reason=reason))
    return rid


def test_history_rows_name_their_note_by_first_line_then_by_name(log: EvalLog) -> None:
    run(log, NOTE)
    run(log, OTHER)
    rows = log.history_page(RunQuery(), 0, 10)
    titles = {v.note_sha256: v.note_title for v, _m, _n in rows}
    assert titles[note_sha256(OTHER)] == "Follow-up visit note."
    assert titles[note_sha256(NOTE)] == NOTE[:80]  # one long line: cut to 80 characters
    log.name_note(note_sha256(NOTE), "  Mrs. B,   visit 1 ")
    [v] = [v for v, _m, _n in log.history_page(RunQuery(), 0, 10) if v.note_sha256 == note_sha256(NOTE)]
    assert v.note_title == v.note_label == "Mrs. B, visit 1"
    log.name_note(note_sha256(NOTE), "")
    assert log.get_run(v.id).note_label is None


def test_the_notes_list_is_most_recent_first_and_filters_history(log: EvalLog) -> None:
    run(log, NOTE)
    run(log, OTHER)
    run(log, OTHER)
    notes = log.notes()
    assert [(n.title, n.runs) for n in notes] == [("Follow-up visit note.", 2), (NOTE[:80], 1)]
    q = RunQuery(RunFilter(note_sha256=notes[0].sha256))
    assert log.count_history(q) == 2


def test_a_hash_only_log_names_notes_by_name_or_short_hash(db_path: Path) -> None:
    log = EvalLog.open(db_path, timeout_s=2.0, store_note_text=False)
    try:
        run(log, NOTE)
        [n] = log.notes()
        assert n.first_line is None and n.title == f"note {note_sha256(NOTE)[:10]}"
        log.name_note(n.sha256, "ward 3, bed 2")
        [(v, _m, _c)] = log.history_page(RunQuery(), 0, 10)
        assert v.note_title == "ward 3, bed 2"
    finally:
        log.close()


def test_failed_attempts_can_be_hidden(log: EvalLog) -> None:
    ok = run(log, NOTE)
    run(log, NOTE, FinishReason.CANCELLED, answer="")
    run(log, NOTE, FinishReason.ERROR, answer="")
    going = log.start_run(request(note=NOTE), model())
    assert log.count_history(RunQuery()) == 4
    shown = [v.id for v, _m, _n in log.history_page(RunQuery(hide_failed=True), 0, 10)]
    assert sorted(shown) == sorted([ok, going])


def test_naming_an_unknown_note_or_too_long_a_name_is_refused(log: EvalLog) -> None:
    with pytest.raises(UsageError):
        log.name_note("0" * 64, "x")
    run(log, NOTE)
    with pytest.raises(UsageError):
        log.name_note(note_sha256(NOTE), "x" * 201)

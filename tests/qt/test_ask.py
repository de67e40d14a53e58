"""The Ask screen end to end on the real demo model: stream, ground, log, stop, refuse an oversized note."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.core.config import GenerationDefaults
from app.core.grounding import Claim, ClaimPart, ClaimStatus, GroundingReport
from app.qt.answer_view import FLAGS_SHOWN, GREEN, PINK, esc, note_highlights
from tests.qt.conftest import WAIT_MS, ask_and_stop, qt_config

pytestmark = pytest.mark.qt


def test_ask_streams_an_answer_grounds_it_and_logs_the_run(open_window, qtbot, sample_note):
    ctx, win = open_window()
    tab = win.ask_tab
    tab.editor.setPlainText(sample_note)
    tab.set_task("qa")
    tab.instruction.setPlainText("What was the patient's creatinine on admission?")
    tokens: list[str] = []
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        qtbot.keyClick(tab.instruction, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        assert tab.task is not None, "Ctrl+Enter must start the ask"
        tab.task.signals.token.connect(tokens.append)
    [outcome] = done.args[0]
    answer = outcome.result.answer
    assert answer.strip()
    assert tab.answer.toPlainText() == answer
    assert "".join(tokens).strip() == answer.strip()
    # Metrics line: model (with the demo warning), speed, token count, finish reason.
    m = tab.metrics.text()
    assert "demo model" in m and "tokens/s" in m and f"finish: {outcome.result.finish_reason}" in m
    # Grounding: supported claims' parts highlighted in the note; the panel lists the flagged claims.
    report = outcome.report
    assert len(tab.editor.extraSelections()) == len(note_highlights(report))
    assert esc(report.headline()) in tab.flags.text()
    flagged = [c for c in report.claims if c.status in (ClaimStatus.PARTLY, ClaimStatus.NOT_FOUND)]
    for c in flagged[:FLAGS_SHOWN]:
        assert esc(c.text) in tab.flags.text()
    # The run is in the log with full provenance, and the rate panel points at it.
    run = ctx.log.get_run(outcome.run_id)
    assert run.status == "finished" and run.answer == answer and run.note_text == sample_note.strip()
    assert tab.rate.run_id == outcome.run_id and tab.rate.isEnabled()
    # The context meter counted this note against the model's context.
    qtbot.waitUntil(lambda: tab.meter.budget is not None, timeout=WAIT_MS)
    assert tab.meter.budget.fits and tab.meter.budget.note_tokens > 100
    # Copy: the answer with a provenance footer naming the model's sha256 and the run.
    text = tab.copy_answer()
    assert QApplication.clipboard().text() == text
    assert text.startswith(answer.rstrip()) and outcome.result.model_sha256[:12] in text
    assert outcome.result.run_uuid in text


def test_grounding_highlights_land_on_the_note_text_despite_leading_whitespace(qtbot, paths, tmp_path):
    from app.qt.app_context import AppContext
    from app.qt.ask_tab import AskTab

    ctx = AppContext(paths, qt_config(tmp_path))  # no model needed: grounding is pure text
    tab = AskTab(ctx)
    qtbot.addWidget(tab)
    note = "  Admission labs: creatinine 2.4 mg/dL, potassium 5.1.\nDischarged on amoxicillin 500 mg."
    answer = "Creatinine was 2.4 mg/dL; started on 40 mg furosemide."
    tab.editor.setPlainText(note)
    tab.answer.setPlainText(answer)
    clean = note.strip()

    def at(text: str, s: str) -> tuple[int, int]:
        return text.index(s), text.index(s) + len(s)

    part = ClaimPart("value", "2.4 mg/dL", *at(answer, "2.4 mg/dL"), True, (at(clean, "2.4 mg/dL"),))
    first = Claim("lab", "Creatinine was 2.4 mg/dL", 0, 24, ClaimStatus.SUPPORTED, (part,), at(clean, "Admission"))
    drug = ClaimPart("drug", "furosemide", *at(answer, "furosemide"), False)
    second = Claim("medication", "started on 40 mg furosemide", 26, 53, ClaimStatus.NOT_FOUND, (drug,), None,
                   "furosemide is not in the note")  # fmt: skip
    tab.show_grounding(GroundingReport((first, second)), 2)
    [sel] = tab.editor.extraSelections()
    assert sel.cursor.selectedText() == "2.4 mg/dL"
    assert "started on 40 mg furosemide" in tab.flags.text() and "Not found" in tab.flags.text()
    marked = {s.cursor.selectedText(): s.format.background().color().name() for s in tab.answer.extraSelections()}
    assert marked["Creatinine was 2.4 mg/dL"] == GREEN and marked["started on 40 mg furosemide"] == PINK
    ctx.close()


def test_stop_ends_the_run_and_keeps_it_as_cancelled(open_window, qtbot, sample_note, tmp_path):
    ctx, win = open_window(qt_config(tmp_path, generation=GenerationDefaults(max_tokens=400)))
    tab = win.ask_tab

    def escape() -> None:
        assert tab.stop_btn.isEnabled()
        qtbot.keyClick(tab.instruction, Qt.Key.Key_Escape)

    outcome = ask_and_stop(qtbot, tab, sample_note, "summary", escape)
    assert str(outcome.result.finish_reason) == "cancelled"
    assert outcome.result.completion_tokens < 400
    assert ctx.log.get_run(outcome.run_id).finish_reason == "cancelled"
    qtbot.waitUntil(lambda: tab.ask_btn.isEnabled(), timeout=WAIT_MS)
    assert not tab.stop_btn.isEnabled()


def test_a_note_too_long_for_the_context_turns_the_meter_red_and_is_refused_clearly(open_window, qtbot, sample_note):
    ctx, win = open_window()
    tab = win.ask_tab
    long_note = (sample_note + "\n") * 6  # ~10,000 characters: well over the 1,024-token test context
    tab.editor.setPlainText(long_note)
    n_ctx = ctx.engine.n_ctx
    qtbot.waitUntil(lambda: tab.meter.budget is not None and tab.meter.budget.note_tokens > n_ctx, timeout=WAIT_MS)
    assert not tab.meter.fits
    assert "Does not fit" in tab.meter.label.text()
    runs_before = ctx.log.count_runs()
    with qtbot.waitSignal(tab.run_failed, timeout=WAIT_MS) as failed:
        tab.ask()
    msg = failed.args[0]
    assert "does not fit" in msg and f"context is {n_ctx}" in msg
    assert tab.banner.isVisible() and tab.banner.kind == "error" and "does not fit" in tab.banner.text()
    assert tab.editor.toPlainText() == long_note, "the note must not be lost"
    # The refused attempt is kept in the log as a failed run, with the reason.
    assert ctx.log.count_runs() == runs_before + 1
    # Truncating explicitly answers, and says where the note was cut.
    tab.truncate.setChecked(True)
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        tab.ask()
    [o] = done.args[0]
    assert o.result.truncation is not None
    assert "note truncated" in tab.banner.text()

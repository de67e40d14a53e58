"""Ratings are saved at once and survive a restart; History filters, reopens and re-runs a run."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt

from app.qt.history_model import SCORE_COL
from tests.qt.conftest import WAIT_MS, ask_and_wait, choose_rater

pytestmark = pytest.mark.qt

QUESTION = "What was the patient's creatinine on admission?"


def test_rating_is_saved_at_once_and_is_still_there_after_reopening_the_window(open_window, qtbot, sample_note):
    ctx, win = open_window()
    tab = win.ask_tab
    o = ask_and_wait(qtbot, tab, sample_note, "qa", QUESTION)
    rate = tab.rate
    choose_rater(qtbot, ctx, rate.rater, "dr-test")
    three = rate.scores.button(3)
    with qtbot.waitSignal(rate.saved, timeout=WAIT_MS):
        # Click on the radio indicator (a click right of the label text is not a hit).
        qtbot.mouseClick(three, Qt.MouseButton.LeftButton, pos=QPoint(8, three.height() // 2))
    [r] = ctx.log.current_ratings(o.run_id)
    assert (r.rater, r.score, r.hallucination) == ("dr-test", 3, False)
    with qtbot.waitSignal(rate.saved, timeout=WAIT_MS):
        rate.hallucination.setChecked(True)
        qtbot.keyClicks(rate.comment, "creatinine value not in note")
    [r] = ctx.log.current_ratings(o.run_id)
    assert r.hallucination and r.comment == "creatinine value not in note" and r.score == 3
    assert len(ctx.log.rating_history(o.run_id)) >= 2, "earlier versions are kept as history"
    win.close()
    ctx.close()

    ctx2, win2 = open_window()  # same database, new application object and window
    hist = win2.history_tab
    win2.tabs.setCurrentWidget(hist)
    qtbot.waitUntil(lambda: hist.model.rowCount() == 1, timeout=WAIT_MS)
    hist.select_row(0)
    with qtbot.waitSignal(hist.open_run, timeout=WAIT_MS):
        qtbot.keyClick(hist.table, Qt.Key.Key_Return)
    tab2 = win2.ask_tab
    assert win2.tabs.currentWidget() is tab2
    assert tab2.editor.toPlainText() == sample_note.strip()  # the log keeps the validated note
    assert tab2.instruction.toPlainText() == QUESTION
    assert tab2.answer.toPlainText() == o.result.answer
    assert tab2.rate.run_id == o.run_id
    choose_rater(qtbot, ctx2, tab2.rate.rater, "dr-test")
    with qtbot.waitSignal(tab2.rate.loaded, timeout=WAIT_MS):
        tab2.rate._load_current()  # read in a worker
    assert tab2.rate.score == 3 and tab2.rate.hallucination.isChecked()
    assert tab2.rate.comment.text() == "creatinine value not in note"


def test_history_filters_searches_and_reruns_with_the_same_settings(open_window, qtbot, sample_note):
    ctx, win = open_window()
    tab = win.ask_tab
    first = ask_and_wait(qtbot, tab, sample_note, "qa", QUESTION)
    ask_and_wait(qtbot, tab, sample_note, "summary", "Summarize this discharge summary in one sentence.")
    ctx.log.add_rating(first.run_id, "dr-a", 4)
    choose_rater(qtbot, ctx, win.ask_tab.rate.rater, "dr-a")  # History shows the chosen rater's own ratings
    hist = win.history_tab
    win.tabs.setCurrentWidget(hist)
    qtbot.waitUntil(lambda: hist.model.rowCount() == 2, timeout=WAIT_MS)
    assert hist.count.text() == "2 runs"
    hist.search.setText("creatinine")
    qtbot.waitUntil(lambda: hist.model.rowCount() == 1, timeout=WAIT_MS)
    assert hist.model.run_at(0).id == first.run_id
    hist.search.setText("no such words anywhere")
    qtbot.waitUntil(lambda: hist.model.rowCount() == 0, timeout=WAIT_MS)
    hist.search.clear()
    hist.rated.setCurrentIndex(hist.rated.findData(False))
    qtbot.waitUntil(lambda: hist.model.rowCount() == 1, timeout=WAIT_MS)
    assert hist.model.run_at(0).task == "Summarization"
    hist.rated.setCurrentIndex(hist.rated.findData(True))
    qtbot.waitUntil(lambda: hist.model.rowCount() == 1 and hist.model.run_at(0).id == first.run_id, timeout=WAIT_MS)
    assert hist.model.data(hist.model.index(0, SCORE_COL)) == "4"
    hist.task.setCurrentIndex(hist.task.findData("Summarization"))
    qtbot.waitUntil(lambda: hist.model.rowCount() == 0, timeout=WAIT_MS)
    hist.task.setCurrentIndex(0)
    hist.rated.setCurrentIndex(0)
    qtbot.waitUntil(lambda: hist.model.rowCount() == 2, timeout=WAIT_MS)

    # Re-run the QA run: same note, task, instruction and sampling; a new run in the log.
    row = next(i for i in range(2) if hist.model.run_at(i).id == first.run_id)
    hist.select_row(row)
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        hist.rerun_selected()
    [again] = done.args[0]
    assert again.run_id != first.run_id
    a, b = ctx.log.get_run(first.run_id), ctx.log.get_run(again.run_id)
    assert (a.note_sha256, a.task, a.instruction, a.params_hash) == (
        b.note_sha256,
        b.task,
        b.instruction,
        b.params_hash,
    )
    assert b.answer == a.answer, "greedy decoding with the same settings reproduces the answer"
    qtbot.waitUntil(lambda: hist.model.rowCount() == 3, timeout=WAIT_MS)

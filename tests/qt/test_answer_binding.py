"""An answer is only shown with the note, task and instruction it belongs to; only finished runs are rated;
a note the user typed is never replaced without asking; progress is shown while the note is processed."""

from __future__ import annotations

import re
import threading

import pytest
from PySide6.QtWidgets import QMessageBox

from app.core.config import GenerationDefaults
from tests.qt.conftest import WAIT_MS, answer_next_dialog, ask_and_stop, ask_and_wait, choose_rater, qt_config

pytestmark = pytest.mark.qt

QUESTION = "What was the patient's creatinine on admission?"


def answer_shown(tab) -> bool:
    return bool(tab.answer.toPlainText()) or tab.rate.isEnabled() or tab.copy_btn.isEnabled()


def test_changing_the_note_task_or_instruction_takes_the_answer_and_rate_panel_away(open_window, qtbot, sample_note):
    _ctx, win = open_window()
    tab = win.ask_tab
    o = ask_and_wait(qtbot, tab, sample_note, "qa", QUESTION)
    assert tab.rate.run_id == o.run_id and answer_shown(tab)
    assert "Question Answering" in tab.answer_view.header.text() and "creatinine" in tab.answer_view.header.text()
    # Another note (typing one character is enough).
    tab.editor.appendPlainText(" ")
    assert not answer_shown(tab) and tab.rate.run_id is None and not tab.editor.extraSelections()
    assert "note changed" in tab.metrics.text()
    # Another task.
    ask_and_wait(qtbot, tab, sample_note, "qa", QUESTION)
    assert answer_shown(tab)
    tab.set_task("summary")
    assert not answer_shown(tab) and tab.rate.run_id is None
    # Another instruction.
    ask_and_wait(qtbot, tab, sample_note, "qa", QUESTION)
    tab.instruction.setPlainText("What was the potassium?")
    assert not answer_shown(tab)
    # Clear (the note was loaded by the test like a sample would be: no question needed for it).
    ask_and_wait(qtbot, tab, sample_note, "qa", QUESTION)
    tab._loaded_text = tab.editor.toPlainText()
    assert tab.clear_note() and tab.editor.toPlainText() == "" and not answer_shown(tab)


def test_note_task_and_instruction_are_locked_while_the_answer_is_written(open_window, qtbot, sample_note, tmp_path):
    _ctx, win = open_window(qt_config(tmp_path, generation=GenerationDefaults(max_tokens=64)))
    tab = win.ask_tab
    tab.editor.setPlainText(sample_note)
    tab.instruction.setPlainText(QUESTION)
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS):
        assert tab.ask() is not None
        assert tab.editor.isReadOnly() and tab.instruction.isReadOnly() and not tab.task_box.isEnabled()
    assert not tab.editor.isReadOnly() and tab.task_box.isEnabled()


def test_only_finished_runs_with_an_answer_can_be_rated_and_incomplete_ones_say_so(
    open_window, qtbot, sample_note, tmp_path
):
    _ctx, win = open_window(qt_config(tmp_path, generation=GenerationDefaults(max_tokens=400)))
    tab = win.ask_tab
    o = ask_and_stop(qtbot, tab, sample_note, "summary", tab.stop)
    assert str(o.result.finish_reason) == "cancelled"
    assert tab.rate.run_id is None and not tab.rate.isEnabled()
    assert "stopped" in tab.rate.status.text()
    assert tab.answer_view.incomplete.isVisible() and "stopped" in tab.answer_view.incomplete.text()
    # A run cut at the length limit is rated, and marked incomplete.
    _ctx2, win2 = open_window(qt_config(tmp_path, generation=GenerationDefaults(max_tokens=3)))
    tab2 = win2.ask_tab
    o2 = ask_and_wait(qtbot, tab2, sample_note, "summary", "Summarize the hospital course.")
    assert str(o2.result.finish_reason) == "length"
    assert tab2.rate.run_id == o2.run_id and tab2.rate.isEnabled()
    assert tab2.answer_view.incomplete.isVisible() and "length limit (3 tokens)" in tab2.answer_view.incomplete.text()


def test_a_pasted_note_is_not_replaced_without_asking_and_the_empty_note_message_goes(open_window, qtbot):
    _ctx, win = open_window()
    tab = win.ask_tab
    # The "empty note" error goes away as soon as there is a note.
    tab.editor.setPlainText("")
    assert tab.ask() is None and tab.banner.kind == "error" and "empty" in tab.banner.text()
    pasted = "Pasted: Patient admitted 2021-03-02 with pneumonia. Creatinine 2.4 mg/dL."
    tab.editor.insertPlainText(pasted)  # as a paste does
    assert not tab.banner.isVisible()
    # A sample would replace it: the user is asked; No keeps the pasted note.
    seen = answer_next_dialog(QMessageBox.StandardButton.No)
    tab.open_sample(1)
    assert seen and "typed or pasted" in seen[0]
    assert tab.editor.toPlainText() == pasted
    # Clear asks too; Yes replaces, and Ctrl+Z in the note brings the text back.
    seen = answer_next_dialog(QMessageBox.StandardButton.Yes)
    assert tab.clear_note()
    assert seen and tab.editor.toPlainText() == ""
    tab.editor.undo()
    assert tab.editor.toPlainText() == pasted
    # A sample as loaded is replaced by another sample without a question.
    seen = answer_next_dialog(QMessageBox.StandardButton.Yes)
    tab.open_sample(1)
    first = tab.editor.toPlainText()
    tab.open_sample(2)
    assert tab.editor.toPlainText() != first and len(seen) == 1


def test_prompt_processing_shows_tokens_percent_and_elapsed_time(open_window, qtbot, sample_note):
    ctx, win = open_window()
    tab = win.ask_tab
    tab.editor.setPlainText(sample_note + "\n" + sample_note[: len(sample_note) // 2])  # ~1.5 batches
    tab.instruction.setPlainText(QUESTION)
    qtbot.waitUntil(lambda: tab.meter.budget is not None and tab.budget_is_current(), timeout=WAIT_MS)
    b = tab.meter.budget
    prompt = b.total - b.reserved_answer_tokens
    assert prompt > ctx.config.engine.n_batch, "the note must take more than one llama.cpp batch"
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS):
        tab.ask()
        qtbot.waitUntil(lambda: "tokens (" in tab.metrics.text(), timeout=WAIT_MS)
        m = re.search(r"Processing the note: ([\d,]+) of ([\d,]+) tokens \((\d+)%\) · (\d+) s", tab.metrics.text())
        assert m, tab.metrics.text()
        assert int(m.group(2).replace(",", "")) == prompt
        assert tab.answer_view.progress.isVisible()
    assert not tab.answer_view.progress.isVisible()


def test_progress_counts_per_batch_from_the_engine(qtbot):
    from app.qt.answer_view import AnswerView

    view = AnswerView()
    qtbot.addWidget(view)
    counts = iter([7000, 0, 512, 1024, 1300])  # the previous run's count, then llama.cpp's batches
    state = {"n": next(counts)}
    view.start_progress("Processing the note", lambda: state["n"], 1300)
    assert "%" not in view.metrics.text(), "the previous run's count must not show as progress"
    seen = []
    for n in counts:
        state["n"] = n
        view.update_progress()
        seen.append(view.progress.value())
    assert seen == [0, 39, 78, 100]
    assert "1,300 of 1,300 tokens (100%)" in view.metrics.text()
    view.stop_progress()


def test_history_and_rating_reads_run_off_the_gui_thread(open_window, qtbot, sample_note, monkeypatch):
    from app.store import EvalLog

    ctx, win = open_window()
    o = ask_and_wait(qtbot, win.ask_tab, sample_note, "qa", QUESTION)
    choose_rater(qtbot, ctx, win.ask_tab.rate.rater, "dr-test")  # with nobody chosen there is no rating to read
    names = ("count_history", "history_page", "rating_history", "get_run")
    threads: dict[str, set[str]] = {n: set() for n in names}
    main = threading.current_thread().name
    for name in names:
        orig = getattr(EvalLog, name)

        def spy(*a, _orig=orig, _name=name, **k):
            threads[_name].add(threading.current_thread().name)
            return _orig(*a, **k)

        monkeypatch.setattr(EvalLog, name, spy)
    hist = win.history_tab
    with qtbot.waitSignal(hist.refreshed, timeout=WAIT_MS):
        win.tabs.setCurrentWidget(hist)
    hist.select_row(0)
    with qtbot.waitSignal(hist.open_run, timeout=WAIT_MS):
        hist.open_selected()
    with qtbot.waitSignal(win.ask_tab.rate.loaded, timeout=WAIT_MS):
        win.ask_tab.rate.set_run(o.run_id)
    assert all(threads.values()), threads
    assert main not in set().union(*threads.values()), threads

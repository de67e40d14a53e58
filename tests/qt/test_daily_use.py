"""Daily use of the window on a fake engine: Esc while the note is processed, Ctrl+Q, the focus after
opening a run, banners that float (nothing moves under the pointer), a new note read from its top, and
texts that follow the font size."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QLabel, QRadioButton

from tests.fakes import FakeEngine, Script
from tests.qt.conftest import WAIT_MS

pytestmark = pytest.mark.qt

LONG_NOTE = "\n".join(f"Line {i}: admitted with pneumonia, creatinine 1.4 mg/dL." for i in range(300))


def ask(qtbot, tab, engine: FakeEngine | None = None, stop_when_stalled: bool = False):
    tab.editor.setPlainText("Admitted with pneumonia. Creatinine 1.4 mg/dL on admission.")
    tab.set_task("qa")
    tab.instruction.setPlainText("What was the creatinine?")
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        assert tab.ask() is not None
        if stop_when_stalled:
            qtbot.waitUntil(engine.stalled.is_set, timeout=WAIT_MS)
            tab.stop()
    return done.args[0][0]


def test_esc_while_the_note_is_processed_says_it_was_stopped(fake_window, qtbot):
    engine = FakeEngine(script=Script(stall_after=0))  # stopped before the first token
    _ctx, win = fake_window(engine)
    o = ask(qtbot, win.ask_tab, engine, stop_when_stalled=True)
    assert str(o.result.finish_reason) == "cancelled"
    view = win.ask_tab.answer_view
    assert "Stopped while the note was processed" in view.incomplete.text()
    assert "empty answer" not in view.incomplete.text()
    assert "tokens/s" not in win.ask_tab.metrics.text() and "first token" not in win.ask_tab.metrics.text()


def test_ctrl_q_closes_the_window_through_the_close_handling(fake_window, qtbot):
    _ctx, win = fake_window()
    flushed: list[bool] = []
    win.ask_tab.rate.flush = lambda: flushed.append(True)  # what closing does first: save a pending rating
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=WAIT_MS)
    qtbot.keyClick(win, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=WAIT_MS)
    assert flushed


def test_opening_a_run_leaves_the_focus_off_the_rating_buttons(fake_window, qtbot):
    ctx, win = fake_window()
    o = ask(qtbot, win.ask_tab)
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=WAIT_MS)
    win.tabs.setCurrentWidget(win.history_tab)
    qtbot.waitUntil(lambda: win.history_tab.model.rowCount() == 1, timeout=WAIT_MS)
    win.history_tab.select_row(0)
    win.history_tab.table.setFocus()
    with qtbot.waitSignal(win.history_tab.open_run, timeout=WAIT_MS):
        win.history_tab.open_selected()
    qtbot.waitUntil(lambda: win.ask_tab.rate.run_id == o.run_id, timeout=WAIT_MS)
    focus = QApplication.focusWidget()
    assert not isinstance(focus, QRadioButton), focus
    assert focus is win.ask_tab.answer
    qtbot.keyClick(focus, Qt.Key.Key_Space)  # Space must not rate the run
    assert win.ask_tab.rate.score is None and ctx.log.rating_history(o.run_id) == []


def test_a_banner_does_not_move_the_ask_screen(fake_window, qtbot):
    _ctx, win = fake_window()
    tab = win.ask_tab
    QApplication.processEvents()
    before = [w.mapTo(win, QPoint(0, 0)) for w in (tab.all_btn, tab.instruction, tab.editor)]
    tab.banner.show_info("Opened note2.txt")
    QApplication.processEvents()
    assert tab.banner.isVisible() and tab.banner.text() == "Opened note2.txt"
    assert [w.mapTo(win, QPoint(0, 0)) for w in (tab.all_btn, tab.instruction, tab.editor)] == before
    tab.banner.show_error("A long error message that wraps. " * 12)
    QApplication.processEvents()
    assert [w.mapTo(win, QPoint(0, 0)) for w in (tab.all_btn, tab.instruction, tab.editor)] == before
    assert tab.banner.width() <= tab.width() and tab.banner.y() >= 0


def test_an_export_message_does_not_move_the_statistics(fake_window, qtbot, tmp_path):
    _ctx, win = fake_window()
    win.tabs.setCurrentWidget(win.stats_tab)
    stats = win.stats_tab
    QApplication.processEvents()
    before = stats.pages.mapTo(win, QPoint(0, 0))
    assert stats.export_to(tmp_path / "runs.csv", "runs", False) is not None
    qtbot.waitUntil(lambda: "Exported" in stats.banner.text(), timeout=WAIT_MS)
    QApplication.processEvents()
    assert "Exported" in stats.banner.text()
    assert stats.pages.mapTo(win, QPoint(0, 0)) == before


def test_a_new_note_opens_at_its_top(fake_window, qtbot):
    _ctx, win = fake_window()
    tab = win.ask_tab
    assert tab.replace_note(LONG_NOTE, "Opening note1.txt")
    bar = tab.editor.verticalScrollBar()
    bar.setValue(bar.maximum())
    assert bar.value() > 0
    assert tab.replace_note(LONG_NOTE.replace("Line", "Row"), "Opening note2.txt")
    QApplication.processEvents()
    assert bar.value() == 0 and tab.editor.textCursor().position() == 0


def test_hints_banners_and_rubric_text_follow_the_font_size(fake_window, qtbot):
    from dataclasses import replace

    ctx, win = fake_window()
    ctx.config = replace(ctx.config, font_size=14)
    ctx.config_changed.emit()
    tab = win.ask_tab
    tab.banner.show_info("Opened note2.txt")
    QApplication.processEvents()
    styled = [tab.banner.label, tab.task_desc, tab.answer_view.metrics]
    styled += [w for w in tab.rate.findChildren(QLabel) if w.styleSheet()]  # the rubric's definitions
    assert len(styled) > 6
    assert {w.font().pointSize() for w in styled} == {14}
    # The demo warning is its own label: at 14 pt in a 1024 px window it is shown whole, never cut.
    badge = win.demo_badge
    badge.setVisible(True)
    QApplication.processEvents()
    assert badge.width() >= badge.sizeHint().width()


def test_the_rate_column_is_as_wide_as_its_panel_after_a_font_change(fake_window, qtbot):
    from dataclasses import replace

    ctx, win = fake_window()
    tab = win.ask_tab
    ctx.config = replace(ctx.config, font_size=14)
    ctx.config_changed.emit()
    qtbot.waitUntil(lambda: tab.rate_area.minimumWidth() >= tab.rate.minimumSizeHint().width(), timeout=WAIT_MS)
    QApplication.processEvents()
    # The panel never scrolls sideways: nothing of it is cut at the right edge.
    assert tab.rate.width() <= tab.rate_area.viewport().width()
    assert tab.rate.width() >= tab.rate.minimumSizeHint().width()


def test_the_ask_buttons_stay_on_one_row_at_1024x700(fake_window, qtbot):
    _ctx, win = fake_window()
    tab = win.ask_tab
    QApplication.processEvents()
    rows = {b.mapTo(win, QPoint(0, 0)).y() for b in (tab.ask_btn, tab.stop_btn, tab.all_btn, tab.copy_btn)}
    assert len(rows) == 1, rows
    lines = tab.answer.viewport().height() // tab.answer.fontMetrics().lineSpacing()
    assert lines >= 12, lines


def test_scrolling_repaints_the_viewport_so_no_stale_focus_ring_stays(qtbot):
    """Scrolling blits the viewport's pixels, the focus ring's included; the ring has the viewport repainted
    whole, or a copy of it stays painted where the content moved (stale rectangles over the controls)."""
    from PySide6.QtWidgets import QLineEdit, QScrollArea, QVBoxLayout, QWidget

    from app.qt.screen_fit import FocusRing

    win = QWidget()
    qtbot.addWidget(win)
    area = QScrollArea(win)
    area.setWidgetResizable(True)
    content = QWidget()
    col = QVBoxLayout(content)
    edits = [QLineEdit(f"field {i}") for i in range(40)]
    for e in edits:
        col.addWidget(e)
    area.setWidget(content)
    QVBoxLayout(win).addWidget(area)
    win.resize(300, 200)
    FocusRing(win)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=WAIT_MS)
    edits[3].setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is edits[3], timeout=WAIT_MS)
    QApplication.processEvents()

    repaints: list[tuple] = []
    viewport = area.viewport()
    viewport.update = lambda *args: repaints.append(args)  # the wrapper FocusRing gets from viewport()
    area.verticalScrollBar().setValue(40)
    QApplication.processEvents()
    assert repaints, "the scrolled viewport is repainted whole"

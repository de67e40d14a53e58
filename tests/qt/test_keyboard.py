"""Keyboard: Ctrl+Enter asks from the note too, Ctrl+1..6 switch screens, the Ask screen's tab order runs
note -> truncate -> task -> instruction -> Ask, and no two visible controls share an Alt mnemonic."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QApplication, QWidget

from tests.qt.conftest import WAIT_MS

pytestmark = pytest.mark.qt


def _chain(start: QWidget) -> list[QWidget]:
    """The focus chain from ``start`` round to it again: what Tab walks through."""
    out, w = [start], start.nextInFocusChain()
    while w is not start and len(out) < 1000:
        out.append(w)
        w = w.nextInFocusChain()
    return out


def test_ask_screen_tab_order_is_note_task_instruction_ask(open_window, qtbot):
    _ctx, win = open_window()  # with the model loaded, so Ask is enabled (Tab skips disabled buttons)
    t = win.ask_tab
    chain = _chain(t.editor)
    order = [chain.index(w) for w in (t.editor, t.task_box, t.instruction, t.ask_btn)]
    assert order == sorted(order), order
    # Between note and Ask, Tab stops only on the note's Truncate option (under the note), the task picker,
    # its examples and the instruction.
    tab_stop = Qt.FocusPolicy.TabFocus
    stops = [w for w in chain[: order[-1] + 1] if w.focusPolicy() & tab_stop and w.isVisible() and w.isEnabled()]
    assert stops == [t.editor, t.truncate, t.task_box, t.examples, t.instruction, t.ask_btn]
    # And real Tab presses follow it (the note and instruction fields pass Tab on rather than typing it).
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=WAIT_MS)
    t.editor.setFocus()
    seen = []
    for _ in range(5):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        seen.append(QApplication.focusWidget())
    assert seen == [t.truncate, t.task_box, t.examples, t.instruction, t.ask_btn]
    assert "\t" not in t.editor.toPlainText() + t.instruction.toPlainText()


def test_ctrl_enter_asks_from_the_note_field(open_window, qtbot, sample_note):
    _ctx, win = open_window()
    t = win.ask_tab
    t.editor.setPlainText(sample_note)
    t.set_task("qa")
    win.activateWindow()
    t.editor.setFocus()
    with qtbot.waitSignal(t.run_finished, timeout=WAIT_MS):
        qtbot.keyClick(t.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        assert t.task is not None, "Ctrl+Enter in the note must ask, not insert a line"
    assert t.editor.toPlainText() == sample_note


def test_ctrl_number_switches_screens(open_window, qtbot):
    _ctx, win = open_window(wait=False)
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=WAIT_MS)
    for i in reversed(range(win.tabs.count())):
        qtbot.keyClick(win, Qt.Key(Qt.Key.Key_1.value + i), Qt.KeyboardModifier.ControlModifier)
        assert win.tabs.currentIndex() == i


def _mnemonic(text: str) -> str | None:
    m = re.search(r"&([^&\s])", text.replace("&&", ""))
    return m.group(1).lower() if m else None


def test_no_two_visible_controls_share_an_alt_mnemonic(open_window):
    """An Alt+letter shared by two visible controls is ambiguous: Qt cycles between them instead of acting."""
    _ctx, win = open_window(wait=False)
    tab_keys = [_mnemonic(win.tabs.tabText(i)) for i in range(win.tabs.count())]
    assert None not in tab_keys, "every screen has an Alt+letter"
    for i in range(win.tabs.count()):
        win.tabs.setCurrentIndex(i)
        page = win.tabs.widget(i)
        buttons = [b for b in page.findChildren(QAbstractButton) if b.isVisible() and _mnemonic(b.text())]
        keys = tab_keys + [_mnemonic(b.text()) for b in buttons]
        dupes = {k: n for k, n in Counter(keys).items() if n > 1}
        assert not dupes, f"{win.tabs.tabText(i)}: {dupes} among tabs {tab_keys} and {[b.text() for b in buttons]}"

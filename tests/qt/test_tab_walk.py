"""Tab walks through every control of every screen at 1024x700: each focusable control gets focus once, in
reading order, is on screen when it has it (scroll areas follow focus), and the walk comes back to the start."""

from __future__ import annotations

from itertools import pairwise

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import QAbstractButton, QApplication, QComboBox, QWidget

from tests.qt.conftest import WAIT_MS, ask_and_wait

pytestmark = pytest.mark.qt

MAX_STEPS = 200


def label(w: QWidget) -> str:
    text = w.text() if isinstance(w, QAbstractButton) else w.currentText() if isinstance(w, QComboBox) else ""
    return f"{type(w).__name__}({w.accessibleName() or text or w.objectName()})"


def rect_in(win: QWidget, w: QWidget) -> QRect:
    return QRect(w.mapTo(win, QPoint(0, 0)), w.size())


def eligible(screen: QWidget) -> list[QWidget]:
    """What Tab must reach on ``screen``: visible, enabled controls that accept Tab focus."""
    out = []
    for w in screen.findChildren(QWidget):
        if not (w.isVisibleTo(screen) and w.isEnabled() and w.focusPolicy() & Qt.FocusPolicy.TabFocus):
            continue
        if w.focusProxy() is not None:
            continue
        out.append(w)
    return out


def walk(qtbot, win, start: QWidget) -> list[QWidget]:
    """Press Tab from ``start`` until focus comes back to it; check each stop is on screen when focused."""
    start.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is start, timeout=WAIT_MS)
    seen: list[QWidget] = []
    central = QRect(QPoint(0, 0), win.size())
    for _ in range(MAX_STEPS):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        w = QApplication.focusWidget()
        if w is start:
            return seen
        assert w not in seen, f"{label(w)} got focus twice before the walk came back: {[label(s) for s in seen]}"
        seen.append(w)
        QApplication.processEvents()  # the scroll area follows focus on the event loop
        shown = w.visibleRegion().boundingRect()
        # Visible: enough of it to see what has focus (scroll areas clip their content to the viewport).
        need_w, need_h = min(w.width(), 16), min(w.height(), 16)
        assert shown.width() >= need_w and shown.height() >= need_h, f"{label(w)} has focus but is scrolled away"
        r = QRect(w.mapTo(win, shown.topLeft()), shown.size())
        assert central.contains(r.center()), f"{label(w)} has focus at {r} outside the 1024x700 window"
        page = win.tabs.currentWidget()
        if page.isAncestorOf(w):
            assert rect_in(win, page).contains(r.center()), f"{label(w)} at {r} is outside its screen"
    raise AssertionError(f"Tab never came back to {label(start)}: {[label(s) for s in seen[:40]]}")


def check_reading_order(win, seen: list[QWidget]) -> None:
    """No jump back up and to the left: the next stop is below, or to the right of, the one before."""
    for a, b in pairwise(seen):
        ra, rb = rect_in(win, a), rect_in(win, b)
        assert not (rb.bottom() < ra.top() and rb.right() < ra.left()), f"{label(a)} {ra} -> {label(b)} {rb}"


def walk_screen(qtbot, win, index: int) -> list[QWidget]:
    win.tabs.setCurrentIndex(index)
    bar = win.tabs.tabBar()
    QApplication.processEvents()
    seen = walk(qtbot, win, bar)
    screen = win.tabs.widget(index)
    missing = [label(w) for w in eligible(screen) if w not in seen]
    assert not missing, f"{win.tabs.tabText(index)}: Tab never reaches {missing}"
    inside = [w for w in seen if screen.isAncestorOf(w)]
    check_reading_order(win, inside)
    return seen


@pytest.fixture
def laptop(open_window, qtbot):
    ctx, win = open_window()
    win.resize(1024, 700)
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=WAIT_MS)
    return ctx, win


def test_tab_reaches_every_control_of_every_screen_once_and_on_screen(laptop, qtbot):
    _ctx, win = laptop
    for i in range(win.tabs.count()):
        walk_screen(qtbot, win, i)


def test_the_ask_screen_walks_left_column_then_question_then_answer_then_rating(laptop, qtbot, sample_note):
    _ctx, win = laptop
    t = win.ask_tab
    ask_and_wait(qtbot, t, sample_note, "qa", "What was the creatinine on admission?")
    seen = walk_screen(qtbot, win, 0)
    order = [t.samples, t.editor, t.truncate, t.task_box, t.instruction, t.ask_btn, t.all_btn, t.answer]
    idx = [seen.index(w) for w in order]
    assert idx == sorted(idx), [label(w) for w in seen]
    rate = [w for w in seen if t.rate.isAncestorOf(w)]
    assert rate, "the Rate panel's controls are reachable once there is a run to rate"
    assert seen.index(rate[0]) > seen.index(t.answer), "rating comes after the answer"
    assert not any(t.rate.isAncestorOf(w) for w in seen[: seen.index(t.answer)])


def test_run_all_panes_walk_pane_by_pane(laptop, qtbot, sample_note):
    _ctx, win = laptop
    t = win.ask_tab
    t.editor.setPlainText(sample_note)
    with qtbot.waitSignal(t.run_finished, timeout=WAIT_MS):
        t.run_all()
    seen = walk_screen(qtbot, win, 0)
    panes = t.run_all_panel.panes
    texts = [seen.index(p.text) for p in panes]
    assert texts == sorted(texts), "panes are walked in their order"
    for p in panes:
        assert seen.index(p.text) < seen.index(p.open_btn)

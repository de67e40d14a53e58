"""The window fits a 1024x700 laptop screen, keeps its layout across restarts and shows where focus is."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import QScrollArea

from tests.qt.conftest import qt_config

pytestmark = pytest.mark.qt

LAPTOP = QSize(1024, 700)


@pytest.fixture
def window(qtbot, tmp_path, paths):
    """A window without a model (layout only): its AppContext is never started."""
    from app.qt.app_context import AppContext
    from app.qt.main_window import MainWindow
    from app.qt.uistate import UiState

    made = []

    def make():
        ctx = AppContext(paths, qt_config(tmp_path))
        win = MainWindow(ctx, UiState(tmp_path / "ui"))
        qtbot.addWidget(win)
        made.append(ctx)
        return ctx, win

    yield make
    for ctx in made:
        ctx.close()


def widest_content(win) -> QSize:
    """The window's minimum size, and each scrolling screen's content minimum (it must not scroll sideways)."""
    size = win.minimumSizeHint()
    for i in range(win.tabs.count()):
        for area in win.tabs.widget(i).findChildren(QScrollArea):
            if area.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff and area.widget():
                size = size.expandedTo(QSize(area.widget().minimumSizeHint().width(), 0))
    return size


def set_font(ctx, win, pt: int) -> None:
    ctx.config = replace(ctx.config, font_size=pt)
    ctx.config_changed.emit()  # as saving the setting does: the window and the Settings form follow


def test_minimum_size_fits_1024x700_at_the_default_font_and_at_14_pt(window):
    ctx, win = window()
    default_pt = ctx.config.font_size
    first = widest_content(win)
    assert first.width() <= LAPTOP.width() and win.minimumSizeHint().height() <= LAPTOP.height(), first
    # The Ask screen keeps its three columns (note, answer, rating) side by side at that width.
    assert win.ask_tab.split.minimumSizeHint().width() <= LAPTOP.width() - 24
    set_font(ctx, win, 14)
    big = widest_content(win)
    assert big.width() <= LAPTOP.width() and win.minimumSizeHint().height() <= LAPTOP.height(), big
    set_font(ctx, win, default_pt)
    # Going back does not leave the window wider than before (it grew by 180 px in the report).
    assert widest_content(win).width() <= first.width() + 2


def test_every_screen_is_usable_at_1024x700_with_a_14_pt_font(window, qtbot):
    ctx, win = window()
    set_font(ctx, win, 14)
    win.resize(LAPTOP)
    win.show()
    qtbot.waitExposed(win)
    assert win.width() <= LAPTOP.width() and win.height() <= LAPTOP.height()
    win.tabs.setCurrentWidget(win.settings_tab)
    save = next(b for b in win.settings_tab.findChildren(type(win.ask_tab.ask_btn)) if "Save" in b.text())
    save.setFocus(Qt.FocusReason.TabFocusReason)  # keyboard focus scrolls it into view
    qtbot.waitUntil(lambda: _on_screen(win, save))
    win.tabs.setCurrentWidget(win.compare_tab)
    for b in win.compare_tab.vote_btns.values():
        qtbot.waitUntil(lambda b=b: _on_screen(win, b))
    assert _on_screen(win, win.offline), "the offline badge is off-screen"


def _on_screen(win, w) -> bool:
    if not w.isVisible():
        return False
    r = QRect(w.mapTo(win, w.rect().topLeft()), w.size())
    return win.rect().contains(r) and not w.visibleRegion().isEmpty()


def test_first_window_is_sized_to_the_screen_and_the_layout_is_restored(window, qtbot):
    from app.qt.screen_fit import initial_size

    assert initial_size(QSize(1024, 700)).width() <= 1024 and initial_size(QSize(1024, 700)).height() <= 700
    assert initial_size(QSize(2880, 1800)) == QSize(1440, 900)
    _ctx, win = window()
    screen = win.screen().availableGeometry().size()
    assert win.width() <= screen.width() and win.height() <= screen.height()
    win.show()
    qtbot.waitExposed(win)
    win.ask_tab.split.setSizes([200, 300, 250])
    sizes = win.ask_tab.split.sizes()
    win.tabs.setCurrentIndex(4)
    win.close()
    _ctx2, win2 = window()
    win2.show()
    qtbot.waitExposed(win2)
    assert win2.tabs.currentIndex() == 4
    assert win2.size() == win.size()
    win2.tabs.setCurrentIndex(0)
    qtbot.waitUntil(lambda: win2.ask_tab.split.sizes() == sizes)


def test_keyboard_focus_has_a_visible_ring(window, qtbot):
    _ctx, win = window()
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    tab = win.ask_tab
    tab.instruction.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.keyClick(tab.instruction, Qt.Key.Key_Tab)  # to the Ask button (tab order)
    qtbot.waitUntil(lambda: win.focus_ring.target is not None and win.focus_ring.isVisible())
    target = win.focus_ring.target
    ring = win.focus_ring.geometry()
    assert ring.contains(QRect(target.mapTo(win, target.rect().topLeft()), target.size()))
    assert ring.width() <= target.width() + 8, "the ring hugs the focused widget"
    img = win.grab(ring).toImage()
    assert img.pixelColor(1, ring.height() // 2).name() == "#1a62c6", "the ring is drawn"

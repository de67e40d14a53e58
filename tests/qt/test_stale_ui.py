"""Nothing on screen is stale or quietly destructive: unsaved settings, the real context size, the meter
with Truncate ticked, and a grounding warning that cannot squeeze the answer away."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox

from app.core.grounding import Claim, ClaimStatus, GroundingReport
from tests.qt.conftest import WAIT_MS, answer_next_dialog, qt_config

pytestmark = pytest.mark.qt


def test_unsaved_settings_are_not_lost_silently_on_a_tab_switch(open_window, qtbot, tmp_path):
    from app.core.config import Paths

    ctx, win = open_window(app_paths=Paths(tmp_path / "data", tmp_path / "cfg"))
    st = win.settings_tab
    win.tabs.setCurrentWidget(st)
    old = ctx.config.generation.max_tokens
    st.max_tokens.setValue(old + 16)
    assert st.dirty_label.text() == "Unsaved changes"
    # Cancel: stay on Settings with the edit.
    seen = answer_next_dialog(QMessageBox.StandardButton.Cancel)
    win.tabs.setCurrentWidget(win.ask_tab)
    assert seen and "not saved" in seen[0]
    assert win.tabs.currentWidget() is st and st.max_tokens.value() == old + 16
    # Discard: the form shows the saved settings again.
    seen = answer_next_dialog(QMessageBox.StandardButton.Discard)
    win.tabs.setCurrentWidget(win.ask_tab)
    assert win.tabs.currentWidget() is win.ask_tab and st.max_tokens.value() == old and not st.dirty_label.text()
    assert ctx.config.generation.max_tokens == old
    # No question when nothing changed.
    win.tabs.setCurrentWidget(st)
    win.tabs.setCurrentWidget(win.history_tab)
    assert win.tabs.currentWidget() is win.history_tab


def test_context_window_says_the_real_number_and_truncate_changes_the_meter(open_window, qtbot, sample_note):
    ctx, win = open_window()
    st = win.settings_tab
    used = min(ctx.model.context_length, ctx.config.engine.max_ctx)
    assert used == ctx.engine.n_ctx
    assert f"{used:,} tokens" in st.n_ctx_info.text() and f"{ctx.model.context_length:,}" in st.n_ctx_info.text()
    assert f"({used:,})" in st.n_ctx.specialValueText()
    tab = win.ask_tab
    tab.editor.setPlainText((sample_note + "\n") * 6)
    qtbot.waitUntil(lambda: tab.meter.budget is not None and tab.budget_is_current(), timeout=WAIT_MS)
    assert "Does not fit" in tab.meter.label.text()
    tab.truncate.setChecked(True)
    qtbot.waitUntil(lambda: "Will be truncated" in tab.meter.label.text(), timeout=WAIT_MS)
    assert "Does not fit" not in tab.meter.label.text()


def test_a_long_grounding_warning_is_capped_and_expandable(qtbot, paths, tmp_path):
    from app.qt.answer_view import FLAGS_EXPANDED_MAX_PX, FLAGS_SHOWN
    from app.qt.app_context import AppContext
    from app.qt.ask_tab import AskTab

    ctx = AppContext(paths, qt_config(tmp_path))
    tab = AskTab(ctx)
    qtbot.addWidget(tab)
    tab.resize(1000, 650)
    tab.show()
    qtbot.waitExposed(tab)
    answer = " ".join(f"{i * 7} mg" for i in range(1, 31))
    tab.answer.setPlainText(answer)
    spans = []
    pos = 0
    for i in range(1, 31):
        text = f"{i * 7} mg"
        start = answer.index(text, pos)
        spans.append(Claim("fact", text, start, start + len(text), ClaimStatus.NOT_FOUND, reason="not in the note"))
        pos = start + len(text)
    view = tab.answer_view
    view.show_grounding(GroundingReport(tuple(spans)))
    text = tab.flags.text()
    assert "show all 30" in text and text.count(": not in the note") == FLAGS_SHOWN
    assert view.flags_area.maximumHeight() <= FLAGS_EXPANDED_MAX_PX
    view.flags.linkActivated.emit("#all")
    assert tab.flags.text().count(": not in the note") == 30 and "show fewer" in tab.flags.text()
    qtbot.waitUntil(lambda: view.flags_area.height() <= FLAGS_EXPANDED_MAX_PX)
    assert tab.answer.height() >= 80, "the answer keeps its room"
    ctx.close()

"""First start: preparing the demo model shows a real percent (bytes joined) and can be cancelled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.core.config import Paths
from tests.qt.conftest import WAIT_MS, qt_config

pytestmark = pytest.mark.qt

PERCENT = re.compile(r"preparing the demo model: (\d+)% of ([\d.]+) MB")


def fresh(qtbot, tmp_path: Path):
    from app.qt.app_context import AppContext
    from app.qt.main_window import MainWindow
    from app.qt.uistate import UiState

    ctx = AppContext(Paths(tmp_path / "data", tmp_path / "config"), qt_config(tmp_path))
    win = MainWindow(ctx, UiState(tmp_path / "ui"))
    qtbot.addWidget(win)
    win.show()
    return ctx, win


def test_first_start_shows_the_demo_models_preparation_percent(qtbot, tmp_path):
    from app.qt.app_context import State

    ctx, win = fresh(qtbot, tmp_path)
    seen: list[int] = []
    labels: list[str] = []

    def changed() -> None:
        m = PERCENT.search(ctx.engine_message)
        if m:
            seen.append(int(m.group(1)))
            labels.append(win.model_label.text())
            assert win.cancel_load.isVisibleTo(win)

    ctx.engine_changed.connect(changed)
    try:
        ctx.load_engine()
        qtbot.waitUntil(lambda: ctx.engine_state is State.READY, timeout=WAIT_MS)
    finally:
        win.close()
        ctx.close()
    assert seen == sorted(seen) and seen[-1] == 100 and len(set(seen)) > 20, seen
    assert any(re.search(r"\d+% of [\d.]+ MB · \d+ s", t) for t in labels), labels[:3]


def test_cancel_while_preparing_leaves_no_file(qtbot, tmp_path):
    from app.qt.app_context import State

    ctx, win = fresh(qtbot, tmp_path)

    def changed() -> None:
        m = PERCENT.search(ctx.engine_message)
        if m and int(m.group(1)) >= 5:
            win.cancel_load.click()

    ctx.engine_changed.connect(changed)
    try:
        ctx.load_engine()
        qtbot.waitUntil(lambda: ctx.engine_state is State.FAILED, timeout=WAIT_MS)
        assert "cancelled" in ctx.engine_message
        assert not ctx.registry.demo_path().exists()
        assert [p.name for p in ctx.registry.demo_path().parent.iterdir() if "partial" in p.name] == []
    finally:
        win.close()
        ctx.close()

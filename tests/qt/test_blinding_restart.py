"""A comparison never voted on stays blind in History after the app restarts (the log keeps it)."""

from __future__ import annotations

import shutil

import pytest

from app.qt.history_model import MODEL_COL
from app.qt.history_tab import BLINDED
from tests.qt.conftest import WAIT_MS, import_model, qt_config

pytestmark = pytest.mark.qt


def test_unvoted_comparison_stays_hidden_across_a_restart(open_window, qtbot, tmp_path, tiny_llama_gguf, sample_note):
    config = qt_config(tmp_path)
    ctx, win = open_window(config)
    tiny = tmp_path / "tiny-llama.gguf"
    shutil.copy(tiny_llama_gguf, tiny)
    import_model(qtbot, ctx, win.models_tab, tiny)
    win.ask_tab.editor.setPlainText(sample_note[:600])
    win.ask_tab.instruction.setPlainText("Does the patient smoke?")
    cmp_ = win.compare_tab
    win.tabs.setCurrentWidget(cmp_)
    with qtbot.waitSignal(cmp_.answers_ready, timeout=WAIT_MS):
        cmp_.run()
    a, b = cmp_.pair
    assert ctx.log.blinded_runs() == {a.run_id, b.run_id}
    win.close()
    ctx.close()  # quit without voting

    ctx2, win2 = open_window(config)
    assert ctx2.blinded_runs == {a.run_id, b.run_id}
    hist = win2.history_tab
    with qtbot.waitSignal(hist.refreshed, timeout=WAIT_MS):
        win2.tabs.setCurrentWidget(hist)
    cells = {hist.model.run_at(r).id: hist.model.index(r, MODEL_COL).data() for r in range(hist.model.rowCount())}
    assert cells[a.run_id] == BLINDED and cells[b.run_id] == BLINDED
    row = next(r for r in range(hist.model.rowCount()) if hist.model.run_at(r).id == a.run_id)
    hist.select_row(row)
    hist.confirm_reveal = lambda: False
    assert hist.open_selected() is None and "blind comparison" in hist.banner.text()
    # The way out of a comparison that can no longer be voted on: reveal it, on purpose.
    hist.confirm_reveal = lambda: True
    with qtbot.waitSignal(hist.open_run, timeout=WAIT_MS) as opened:
        hist.open_selected()
    assert opened.args[0].id == a.run_id
    assert ctx2.log.blinded_runs() == {b.run_id} and a.run_id not in ctx2.blinded_runs

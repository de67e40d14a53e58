"""The Ask screen reads the note while the user types: started after a pause, cancelled by an edit, shown."""

from __future__ import annotations

from dataclasses import replace

from app.core.config import EngineConfig
from tests.qt.conftest import WAIT_MS, qt_config

ENGINE = EngineConfig(n_threads=2, max_ctx=2048, kv_cache_mb=64, n_batch=32)
"""Small chunks: the note takes dozens of them, so a preread is still running when the test edits the note."""


def _fresh(note: str, tmp_path) -> str:
    """The note made unique to the test: an earlier test of the session that asked about the same note left its
    state in the session's note-state cache on disk, from which the engine restores it at once (nothing to read)."""
    return f"{note}\nSeen by {tmp_path.name}."


def _reading(tab) -> bool:
    text = tab.preread.status.text()
    return text.startswith("Reading the note… ") and not text.endswith(" 0%")


def test_an_edit_cancels_the_running_preread_and_the_note_is_read_again_after_the_pause(
    open_window, qtbot, tmp_path, sample_note
):
    ctx, win = open_window(replace(qt_config(tmp_path, preread_note=True), engine=ENGINE))
    tab = win.ask_tab
    height = tab.preread.status.height()
    # Twice the note: about 40 chunks, so the read is still running when the edit comes (a quiet machine read
    # the single note between the progress check and the edit).
    tab.editor.setPlainText(_fresh(sample_note * 2, tmp_path))
    running: list = []
    qtbot.waitUntil(lambda: _reading(tab) and bool(running.append(tab.preread.task) or running[-1]), timeout=WAIT_MS)
    first = running[-1]
    assert first is not None and tab.preread.status.height() == height, "the line was there already: no jump"
    percents: list[int] = []
    tab.editor.appendPlainText("Seen again in clinic: afebrile.")
    assert first.cancel.is_set() and tab.preread.task is None, "an edit cancels the preread at once"
    assert tab.preread.status.text() == "" and tab.preread.timer.isActive(), "and reads again after the pause"
    qtbot.waitUntil(lambda: tab.preread.task is not None, timeout=WAIT_MS)
    tab.preread.task.signals.progress.connect(lambda done, total: percents.append(100 * done // total))
    qtbot.waitUntil(lambda: tab.preread.status.text() == "Note read", timeout=WAIT_MS)
    last = tab.preread.last
    assert last is not None and last.complete and ctx.engine.evaluated_tokens == last.total
    assert percents == sorted(percents) and percents[-1] == 100
    prefix = ctx.engine.tokenize_prompt(ctx.engine.style_for(None), tab.editor.toPlainText(), "x").prefix
    assert last.total == len(prefix), "the edited note was read, not the first one"
    # A model (re)load cancels too, and the new engine reads the note after the pause.
    tab.editor.appendPlainText("Follow up in two weeks.")
    qtbot.waitUntil(lambda: _reading(tab), timeout=WAIT_MS)
    running = tab.preread.task
    ctx.engine_changed.emit()
    assert running.cancel.is_set()


def test_ask_during_a_preread_continues_from_what_was_read(open_window, qtbot, tmp_path, sample_note):
    _ctx, win = open_window(replace(qt_config(tmp_path, preread_note=True), engine=ENGINE))
    tab = win.ask_tab
    tab.editor.setPlainText(_fresh(sample_note, tmp_path))
    tab.instruction.setPlainText("Which antibiotic was started?")
    qtbot.waitUntil(lambda: _reading(tab), timeout=WAIT_MS)
    reading = tab.preread.task
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        assert tab.ask() is not None
        assert reading.cancel.is_set() and tab.preread.status.text() == ""
    [outcome] = done.args[0]
    assert outcome.result.reused_tokens >= ENGINE.n_batch, "the answer started from the part already read"
    assert tab.preread.task is None, "no preread starts while or after an answer is written on the same note"


def test_with_the_setting_off_the_note_is_not_read_ahead(open_window, qtbot, tmp_path, sample_note):
    ctx, win = open_window(replace(qt_config(tmp_path, preread_note=False), engine=ENGINE))
    tab = win.ask_tab
    tab.editor.setPlainText(sample_note)
    assert not tab.preread.timer.isActive()
    assert tab.preread.start() is None and tab.preread.task is None
    qtbot.waitUntil(lambda: tab.meter.budget is not None and tab.budget_is_current(), timeout=WAIT_MS)
    assert ctx.engine.evaluated_tokens == 0 and tab.preread.status.text() == ""

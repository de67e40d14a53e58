"""Run all tasks on the real demo model: answers stream side by side, one pane per task, each stoppable."""

from __future__ import annotations

import re

import pytest

from app.core.config import GenerationDefaults
from resources import TASKS
from tests.qt.conftest import WAIT_MS, qt_config

pytestmark = pytest.mark.qt


def test_run_all_streams_side_by_side_with_prompt_percent_and_stop_per_pane(open_window, qtbot, tmp_path, sample_note):
    ctx, win = open_window(qt_config(tmp_path, generation=GenerationDefaults(max_tokens=40, temperature=0.0, seed=0)))
    tab = win.ask_tab
    note = sample_note + "\n" + sample_note[: len(sample_note) // 2]
    tab.editor.setPlainText(note)
    engine = ctx.engine
    style = engine.style_for(None)
    prefix = len(engine.tokenize_prompt(style, note, TASKS[0].standard_instruction).prefix)
    assert prefix > ctx.config.engine.n_batch, "the note must take more than one llama.cpp batch"
    view = tab.run_all_panel
    writing_together: list[int] = []
    statuses: set[str] = set()
    stopped: list[int] = []

    def on_piece(i: int, _text: str) -> None:
        writing_together.append(sum(p.state == "writing" for p in view.panes))
        if i == 3 and not stopped:
            stopped.append(i)
            view.panes[3].stop_btn.click()

    def watch() -> bool:
        statuses.update(p.status.text() for p in view.panes)
        return False

    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        task = tab.run_all()
        task.signals.piece.connect(on_piece)
        qtbot.waitUntil(lambda: watch() or any("tokens (" in s for s in statuses) or not view.running, timeout=WAIT_MS)
    outs = done.args[0]
    assert [o.request.task for o in outs] == [t.name for t in TASKS]
    assert ctx.engine.last_parallel > 1, "the answers were decoded together"
    assert max(writing_together) >= 2, "two or more panes were being written at the same time"
    shown = [s for s in statuses if "tokens (" in s]
    m = re.search(r"Processing the note: ([\d,]+) of ([\d,]+) tokens \((\d+)%\) · \d+ s", shown[0] if shown else "")
    assert m and int(m.group(2).replace(",", "")) == prefix, statuses
    finishes = [str(o.result.finish_reason) for o in outs]
    assert finishes[3] == "cancelled" and "cancelled" not in finishes[:3] + finishes[4:], finishes
    for pane, o in zip(view.panes, outs, strict=True):
        assert pane.text.toPlainText() == o.result.answer
        assert f"finish: {o.result.finish_reason}" in pane.status.text()
        assert o.result.note_sha256[:12] in pane.provenance.text() and pane.run_id == o.run_id
    assert "Incomplete" in view.panes[3].status.text()


def test_an_answer_on_another_model_shows_that_engines_prompt_percent(
    open_window, qtbot, tmp_path, tiny_llama_gguf, sample_note
):
    import shutil

    ctx, win = open_window()
    tab = win.ask_tab
    tiny = tmp_path / "tiny-llama.gguf"
    shutil.copy(tiny_llama_gguf, tiny)
    info = ctx.registry.import_model(str(tiny))
    note = sample_note[:600]
    tab.editor.setPlainText(note)
    tab.set_task("qa")
    tab.instruction.setPlainText("What was the creatinine?")
    shown: list[str] = []
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS):
        task = tab.ask(model=info)
        assert "loading, then processing the note" in tab.metrics.text()
        task.signals.info.connect(lambda _p: shown.append(tab.metrics.text()))  # after the tab's own slot
    other = ctx.engine_for(info)
    assert other is not ctx.engine
    expected = len(other.tokenize_prompt(other.style_for(None), note, "What was the creatinine?").all)
    m = re.search(r": ([\d,]+) of ([\d,]+) tokens \((\d+)%\) · \d+ s", shown[0] if shown else "")
    assert m and int(m.group(2).replace(",", "")) == expected, shown

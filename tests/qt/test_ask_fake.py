"""The Ask and Compare screens' control flow through the ask service, on a fake engine (no model file)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.core.config import GenerationDefaults
from app.qt.app_context import AppContext, State
from app.qt.ask_tab import AskTab
from resources import TASKS
from tests.fakes import FakeEngine, Script
from tests.qt.conftest import WAIT_MS, qt_config

pytestmark = pytest.mark.qt

NOTE = "\n  Admitted with pneumonia. Creatinine 1.4 mg/dL on admission.\n"


@pytest.fixture
def fake_app(qtbot, paths, tmp_path):
    made = []

    def make(engine: FakeEngine, *, with_log: bool = True, **gen):
        ctx = AppContext(paths, qt_config(tmp_path, generation=GenerationDefaults(**gen)), engine=engine)
        assert ctx.engine_state is State.READY and ctx.model == engine.model
        if with_log:
            ctx.start()  # opens the log; the given engine is the model, none is loaded
            qtbot.waitUntil(lambda: ctx.log is not None, timeout=WAIT_MS)
        tab = AskTab(ctx)
        qtbot.addWidget(tab)
        tab.editor.setPlainText(NOTE)
        tab.set_task("qa")
        tab.instruction.setPlainText("What was the creatinine?")
        made.append(ctx)
        return ctx, tab

    yield make
    for ctx in made:
        ctx.close()


def test_the_answer_is_streamed_stripped_grounded_and_logged_with_the_settings(fake_app, qtbot):
    engine = FakeEngine(script=Script(answer="\n  Creatinine 1.4 mg/dL; potassium 6.2."))
    ctx, tab = fake_app(engine, max_tokens=9, temperature=0.4, seed=8)
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        tab.ask()
    [o] = done.args[0]
    assert tab.answer.toPlainText() == o.result.answer == "Creatinine 1.4 mg/dL; potassium 6.2."
    sp = engine.requests[0].sampling
    assert (sp.max_tokens, sp.temperature, sp.seed) == (9, 0.4, 8)
    # Highlights come from the service's report, mapped through the editor's leading whitespace.
    # The supported lab claim's parts (test and value) are highlighted where they stand in the note.
    assert sorted(sel.cursor.selectedText() for sel in tab.editor.extraSelections()) == ["1.4 mg/dL", "Creatinine"]
    assert "6.2" in tab.flags.text()
    assert ctx.log.get_run(o.run_id).note_text == NOTE.strip()
    assert tab.rate.run_id == o.run_id


def test_an_error_mid_stream_is_shown_and_logged(fake_app, qtbot):
    ctx, tab = fake_app(FakeEngine(script=Script(error_after=1)))
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        tab.ask()
    [o] = done.args[0]
    assert str(o.result.finish_reason) == "error" and "finish: error" in tab.metrics.text()
    assert ctx.log.get_run(o.run_id).error == "llama.cpp failed: fake decode error"


def test_without_a_log_the_answer_is_shown_and_the_banner_says_it_is_not_saved(fake_app, qtbot):
    _ctx, tab = fake_app(FakeEngine(), with_log=False)
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        tab.ask()
        assert "will not be saved" in tab.banner.text()
    [o] = done.args[0]
    assert o.run_id is None and o.log_error and tab.answer.toPlainText() == o.result.answer


def test_overflow_is_refused_with_the_checkbox_hint_and_logged(fake_app, qtbot):
    ctx, tab = fake_app(FakeEngine(n_ctx=34), max_tokens=16)
    with qtbot.waitSignal(tab.run_failed, timeout=WAIT_MS) as failed:
        tab.ask()
    assert "does not fit" in failed.args[0] and "Truncate the note to fit" in failed.args[0]
    assert [v.finish_reason for v in ctx.log.list_runs()] == ["error"]


def test_stop_cancels_a_stalled_run(fake_app, qtbot):
    engine = FakeEngine(script=Script(stall_after=1))
    ctx, tab = fake_app(engine)
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        tab.ask()
        qtbot.waitUntil(engine.stalled.is_set, timeout=WAIT_MS)
        tab.stop()
    [o] = done.args[0]
    assert str(o.result.finish_reason) == "cancelled"
    assert ctx.log.get_run(o.run_id).finish_reason == "cancelled"


def test_run_all_tasks_asks_each_task_once_about_one_note(fake_app, qtbot):
    engine = FakeEngine()
    ctx, tab = fake_app(engine, max_tokens=300)
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        tab.run_all()
    outs = done.args[0]
    assert [o.request.task for o in outs] == [t.name for t in TASKS]
    assert [r.sampling.max_tokens for r in engine.requests] == [min(t.max_tokens, 300) for t in TASKS]
    assert {r.note for r in engine.requests} == {NOTE.strip()}
    assert ctx.log.count_runs() == len(TASKS)
    # One pane per task, each with its own answer, finish reason and run.
    panes = tab.run_all_panel.panes
    assert [p.request.task for p in panes] == [t.name for t in TASKS]
    assert [p.text.toPlainText() for p in panes] == [o.result.answer for o in outs]
    assert all("finish: stop" in p.status.text() and p.run_id == o.run_id for p, o in zip(panes, outs, strict=True))


def test_run_all_stops_one_pane_then_all(fake_app, qtbot):
    engine = FakeEngine(script=Script(stall_after=1))
    ctx, tab = fake_app(engine, max_tokens=300)
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        tab.run_all()
        qtbot.waitUntil(engine.stalled.is_set, timeout=WAIT_MS)
        engine.stalled.clear()
        tab.run_all_panel.panes[0].stop_btn.click()  # the first answer alone: the next one starts
        qtbot.waitUntil(engine.stalled.is_set, timeout=WAIT_MS)
        # the engine thread stalls before the pane's queued state signal reaches the GUI thread: wait for it
        qtbot.waitUntil(lambda: tab.run_all_panel.panes[1].state in ("processing", "writing"), timeout=WAIT_MS)
        tab.run_all_panel.stop_all_btn.click()
    outs = done.args[0]
    assert [str(o.result.finish_reason) for o in outs] == ["cancelled", "cancelled"]
    panes = tab.run_all_panel.panes
    assert "Incomplete" in panes[0].status.text() and "finish: cancelled" in panes[0].status.text()
    assert all(p.state == "not started" and "Not started" in p.status.text() for p in panes[2:])
    assert [v.finish_reason for v in ctx.log.list_runs()] == ["cancelled", "cancelled"]
    assert tab.all_btn.isEnabled() and not tab.stop_btn.isEnabled()


def test_run_all_panes_go_when_the_note_changes(fake_app, qtbot):
    _ctx, tab = fake_app(FakeEngine())
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS):
        tab.run_all()
    assert tab.answer_stack.currentWidget() is tab.run_all_panel and tab.rate_area.isHidden()
    tab.editor.appendPlainText("More text.")
    assert tab.answer_stack.currentWidget() is tab.answer_view and not tab.rate_area.isHidden()
    assert "note changed" in tab.metrics.text()


def test_rate_binds_the_rate_panel_to_one_pane_and_keeps_the_grid(fake_app, qtbot):
    ctx, tab = fake_app(FakeEngine())
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        tab.run_all()
    outs = done.args[0]
    panes = tab.run_all_panel.panes
    assert panes[2].open_btn.isVisibleTo(tab) and panes[2].open_btn.isEnabled()
    ctx.log.add_rater("dr-grid")
    ctx.raters_changed.emit()
    ctx.set_rater("dr-grid")
    qtbot.waitUntil(lambda: tab.rate.rater.name == "dr-grid", timeout=WAIT_MS)
    for i, score in ((2, 3), (5, 4)):  # two panes rated one after the other, the grid staying
        with qtbot.waitSignal(tab.rate.loaded, timeout=WAIT_MS):
            panes[i].open_btn.click()
        assert tab.answer_stack.currentWidget() is tab.run_all_panel, "the grid stays"
        assert not tab.rate_area.isHidden() and tab.rate.run_id == outs[i].run_id
        assert outs[i].request.task in tab.rate.subject.text() and tab.rate.subject.isVisibleTo(tab)
        others = [p for p in panes if p is not panes[i]]
        assert panes[i].open_btn.text() != "Rate" and all(p.open_btn.text() == "Rate" for p in others)
        with qtbot.waitSignal(tab.rate.saved, timeout=WAIT_MS):
            tab.rate.scores.button(score).click()  # autosaved, as a single answer's rating is
    assert [r.score for r in ctx.log.current_ratings(outs[2].run_id)] == [3]
    assert [r.score for r in ctx.log.current_ratings(outs[5].run_id)] == [4]
    tab.editor.appendPlainText("More text.")  # the panes go: the Rate panel rates none of their runs
    assert tab.rate.run_id is None and tab.rate.subject.isHidden()


def test_rerun_from_history_reuses_the_recorded_settings_over_the_current_ones(fake_app, qtbot):
    engine = FakeEngine()
    ctx, tab = fake_app(engine, max_tokens=5, temperature=0.9)
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        tab.ask()
    [o] = done.args[0]
    ctx.config = replace(ctx.config, generation=GenerationDefaults(max_tokens=50, temperature=0.0))
    ctx.registry.find = lambda sha: engine.model  # the fake model is not in the registry
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS):
        tab.rerun(ctx.log.get_run(o.run_id))
    first, again = engine.requests
    assert again.sampling == first.sampling and again.run_uuid != first.run_uuid

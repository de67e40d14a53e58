"""Issue #23's rating leaks in the desktop app, on a fake engine: the rater is chosen from the log's list
(never typed, never the OS user), a self-contradicting rating waits for its comment, and History shows a
rater their own score only."""

from __future__ import annotations

import json

import pytest

from app.core.config import Paths
from app.qt.app_context import AppContext, State
from app.qt.ask_tab import AskTab
from app.qt.history_model import SCORE_COL
from app.qt.history_tab import HistoryTab
from app.qt.settings_tab import SettingsTab
from tests.fakes import FakeEngine
from tests.qt.conftest import WAIT_MS, choose_rater, qt_config

pytestmark = pytest.mark.qt

NOTE = "Admitted with pneumonia. Creatinine 1.4 mg/dL on admission."


@pytest.fixture
def rated_app(qtbot, tmp_path):
    """An app with its own config directory (choosing a rater saves the config), an answered question."""
    ctx = AppContext(Paths(tmp_path / "data", tmp_path / "cfg"), qt_config(tmp_path), engine=FakeEngine())
    assert ctx.engine_state is State.READY
    ctx.start()
    qtbot.waitUntil(lambda: ctx.log is not None, timeout=WAIT_MS)
    tab = AskTab(ctx)
    qtbot.addWidget(tab)
    tab.editor.setPlainText(NOTE)
    tab.set_task("qa")
    tab.instruction.setPlainText("What was the creatinine?")
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        tab.ask()
    [o] = done.args[0]
    yield ctx, tab, o.run_id
    ctx.close()


def test_nothing_is_rated_until_a_rater_from_the_list_is_chosen(rated_app, qtbot, tmp_path):
    ctx, tab, run_id = rated_app
    rate = tab.rate
    assert rate.run_id == run_id and rate.rater_name == ""
    assert not rate.scores.button(3).isEnabled() and "choose yourself" in rate.status.text().lower()
    rate._dirty = True  # even a save forced past the disabled buttons is refused
    rate.scores.button(3).setChecked(True)
    rate.save()
    assert "Not saved" in rate.status.text() and ctx.log.rating_history(run_id) == []

    settings = SettingsTab(ctx)
    qtbot.addWidget(settings)
    settings.new_rater.setText("  dr  lee ")
    settings.add_rater()
    qtbot.waitUntil(lambda: rate.rater_name == "dr lee" and settings.rater.name == "dr lee", timeout=WAIT_MS)
    assert [r.name for r in ctx.log.raters()] == ["dr lee"]
    assert json.loads(ctx.paths.config_file.read_text())["rater"] == "dr lee", "the choice is kept in the config"
    assert rate.rater.box.currentText() == "dr lee" and not rate.rater.box.isEditable()
    qtbot.waitUntil(lambda: rate.scores.button(3).isEnabled(), timeout=WAIT_MS)
    with qtbot.waitSignal(rate.saved, timeout=WAIT_MS):
        rate.scores.button(3).click()
    assert [(r.rater, r.score) for r in ctx.log.current_ratings(run_id)] == [("dr lee", 3)]


def test_a_score_above_1_with_hallucination_waits_for_the_comment_that_explains_it(rated_app, qtbot):
    ctx, tab, run_id = rated_app
    rate = tab.rate
    choose_rater(qtbot, ctx, rate.rater, "dr-kim")
    qtbot.waitUntil(lambda: rate.scores.button(2).isEnabled(), timeout=WAIT_MS)
    with qtbot.waitSignal(rate.saved, timeout=WAIT_MS):
        rate.scores.button(2).click()
    rate.hallucination.setChecked(True)
    rate.flush()
    assert "explain in a comment" in rate.status.text() and "required" in rate.comment.placeholderText()
    assert [(r.score, r.hallucination) for r in ctx.log.current_ratings(run_id)] == [(2, False)]
    with qtbot.waitSignal(rate.saved, timeout=WAIT_MS):
        rate.comment.setText("one invented dose; otherwise no incorrect content")
        rate.comment.textEdited.emit(rate.comment.text())
        rate.flush()
    [r] = ctx.log.current_ratings(run_id)
    assert (r.score, r.hallucination, r.comment) == (2, True, "one invented dose; otherwise no incorrect content")


def test_history_shows_the_chosen_rater_their_own_score_never_the_others(rated_app, qtbot):
    ctx, tab, run_id = rated_app
    ctx.log.add_rating(run_id, "dr-other", 4)
    ctx.log.add_rating(run_id, "dr-third", 1)
    hist = HistoryTab(ctx)
    qtbot.addWidget(hist)
    with qtbot.waitSignal(hist.refreshed, timeout=WAIT_MS):
        hist.refresh()
    assert hist.model.headerData(SCORE_COL, _horizontal()) == "Your score"
    assert hist.model.data(hist.model.index(0, SCORE_COL)) == "", "nobody chosen: no score, no count"
    choose_rater(qtbot, ctx, tab.rate.rater, "dr-me")
    ctx.log.add_rating(run_id, "dr-me", 2)
    with qtbot.waitSignal(hist.refreshed, timeout=WAIT_MS):
        hist.refresh()
    assert hist.model.data(hist.model.index(0, SCORE_COL)) == "2"
    hist.rated.setCurrentIndex(hist.rated.findData(False))
    qtbot.waitUntil(lambda: hist.model.rowCount() == 0, timeout=WAIT_MS)
    ctx.set_rater("dr-other")  # another rater takes the chair: their own score, not the mean of three
    hist.rated.setCurrentIndex(hist.rated.findData(None))
    qtbot.waitUntil(
        lambda: hist.model.rowCount() == 1 and hist.model.data(hist.model.index(0, SCORE_COL)) == "4", timeout=WAIT_MS
    )


def _horizontal():
    from PySide6.QtCore import Qt

    return Qt.Orientation.Horizontal

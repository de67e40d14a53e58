"""A study on the Statistics screen: the coordinator's numbers (progress, alpha overall / per task /
calibration, pairwise agreement, arm means, flags, disagreements), adjudication through the store, and the
report. The study is made with the real store API; no model is loaded (statistics need none)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget

from app.qt import study_stats_view
from app.qt.app_context import AppContext
from app.qt.stat_tables import num
from app.qt.stats_tab import LOG_PAGE, STUDY_PAGE, StatsTab
from app.store.agreement import study_stats
from app.store.studies import NewStudy, NewStudyArm, NewStudyItem
from app.store.study_data import Adjudicated
from tests.fakes import FakeEngine
from tests.qt.conftest import WAIT_MS, qt_config
from tests.store.helpers import NOTE, QA, model
from tests.store.test_studies import RATERS, make_study

pytestmark = pytest.mark.qt

SCORES = {"ana": 4, "ben": 3, "cy": 1}
"""Each rater's score for every answer: cy is 2+ points from both others, so shared answers disagree."""


def rate(log, rater: str, limit: int | None = None) -> int:
    """Rate ``rater``'s assigned answers in order (the first ``limit`` of them); cy flags hallucinations."""
    rows = log.packet_rows("pilot", rater)[:limit]
    for r in rows:
        log.rate_study_answer("pilot", rater, r["answer_uid"], SCORES[rater], hallucination=rater == "cy")
    return len(rows)


@pytest.fixture
def ctx(qtbot, paths, tmp_path):
    c = AppContext(paths, qt_config(tmp_path), engine=FakeEngine())
    c.start()
    qtbot.waitUntil(lambda: c.log is not None, timeout=WAIT_MS)
    yield c
    c.close()


@pytest.fixture
def pilot(ctx) -> AppContext:
    """Study "pilot" (6 items x 2 arms, k = 2, 2 calibration items, adjudicator dr-adj): ana and ben rated
    everything, cy half of their answers."""
    make_study(ctx.log)
    rate(ctx.log, "ana")
    rate(ctx.log, "ben")
    rate(ctx.log, "cy", limit=len(ctx.log.packet_rows("pilot", "cy")) // 2)
    return ctx


def open_tab(qtbot, ctx: AppContext) -> StatsTab:
    tab = StatsTab(ctx)
    qtbot.addWidget(tab)
    tab.resize(1024, 700)
    tab.show()
    qtbot.waitUntil(lambda: tab.source.count() > 1, timeout=WAIT_MS)
    return tab


def choose(qtbot, tab: StatsTab, study: str) -> None:
    with qtbot.waitSignal(tab.study_view.computed, timeout=WAIT_MS):
        tab.source.setCurrentIndex(tab.source.findData(study))
    qtbot.waitUntil(lambda: tab.study_view.computing == 0, timeout=WAIT_MS)


def cells(table) -> list[list[str]]:
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def test_the_study_page_shows_what_study_status_computes(pilot, qtbot) -> None:
    tab = open_tab(qtbot, pilot)
    assert tab.source.itemText(1) == "Study: pilot" and tab.pages.currentIndex() == LOG_PAGE
    choose(qtbot, tab, "pilot")
    view = tab.study_view
    assert tab.pages.currentIndex() == STUDY_PAGE
    st = study_stats(pilot.log.study_data("pilot"))
    # Progress: rated / assigned per rater, in the study's rater order.
    assert [row[:3] for row in cells(view.progress)] == [[p.rater, str(p.rated), str(p.assigned)] for p in st.progress]
    assert [p.rater for p in st.progress] == list(RATERS) and cells(view.progress)[0][3] == "100%"
    assert cells(view.progress)[2][3] == "50%"
    # Alpha overall, on the calibration subset and per task, each with its interval and n.
    rows = cells(view.agreement)
    assert [r[0] for r in rows] == ["All answers", "Calibration subset", f"Task: {QA}"]
    assert rows[0][1:4] == [num(st.alpha.alpha), f"{st.alpha.low:.2f} – {st.alpha.high:.2f}", str(st.alpha.units)]
    assert rows[1][1] == num(st.calibration.alpha) and rows[1][3] == str(st.calibration.units)
    assert st.alpha.units > st.calibration.units > 0
    # Pairwise: ana and ben always 1 apart, never the same score.
    pairs = {(r[0], r[1]): r[2:] for r in cells(view.pairwise)}
    assert pairs["ana", "ben"][1:] == ["0%", "100%"] and int(pairs["ana", "ben"][0]) > 0
    assert pairs["ana", "cy"][1:] == ["0%", "0%"] and len(pairs) == 3
    # The arms are named here (the coordinator's view, and the caption says so).
    assert "Coordinator's view" in view.caption.text()
    means = cells(view.means)
    assert {r[0] for r in means} == {"m0", "m1"} and means[0][1] == "all tasks"
    expected = {(m.arm, m.task): num(m.mean) for m in st.arm_means}
    assert all(expected[(r[0], r[1])] == r[2] for r in means)
    # Score-1 ratings and hallucination flags per arm: cy's, every one.
    flags = {r[0]: r for r in cells(view.flags)}
    cy_per_arm = {f.arm: f.hallucination for f in st.flags}
    assert sum(cy_per_arm.values()) == len(pilot.log.packet_rows("pilot", "cy")) // 2
    assert all(flags[a][2] == flags[a][3] == str(n) for a, n in cy_per_arm.items())
    # Disagreements: every answer cy shares with another rater, none adjudicated yet.
    dis = cells(view.disagree)
    assert len(dis) == len(st.disagreements) > 0
    assert all(r[5] == "open" and r[4] in ("2", "3") for r in dis)
    assert "cy 1" in dis[0][3] and f"({len(dis)}, {len(dis)} to adjudicate)" in view.disagree_box.title()


def test_adjudication_is_stored_by_the_store_rules_and_marked_in_the_list(pilot, qtbot) -> None:
    tab = open_tab(qtbot, pilot)
    choose(qtbot, tab, "pilot")
    view, panel = tab.study_view, tab.study_view.adjudication
    assert not panel.record_button.isEnabled(), "nothing chosen yet"
    view.disagree.selectRow(1)
    target = view.disagreements[1]
    assert panel.answer == target and panel.record_button.isEnabled()
    assert [panel.adjudicator.itemText(i) for i in range(panel.adjudicator.count())] == ["dr-adj"]
    ratings_before = pilot.log.study_data("pilot").ratings

    # No reason: the store refuses, the panel says why, nothing is stored.
    panel.score.setCurrentIndex(panel.score.findData(3))
    recorded: list[str] = []
    panel.recorded.connect(recorded.append)
    panel.record_button.click()
    qtbot.waitUntil(lambda: panel.task is None and "Not recorded" in panel.message.text(), timeout=WAIT_MS)
    assert recorded == [] and "needs a reason" in panel.message.text()
    assert pilot.log.study_data("pilot").adjudications == ()

    panel.reason.setText("the note supports ana's reading")
    with qtbot.waitSignal(view.computed, timeout=WAIT_MS):
        panel.record_button.click()
    qtbot.waitUntil(lambda: view.computing == 0, timeout=WAIT_MS)
    data = pilot.log.study_data("pilot")
    assert data.adjudications == (Adjudicated(target.answer, "dr-adj", 3, "the note supports ana's reading"),)
    assert data.ratings == ratings_before, "the raters' own ratings are kept"
    # The list marks it, keeps it chosen, and the confirmation stays after the numbers are recomputed.
    row = [d.answer for d in view.disagreements].index(target.answer)
    assert cells(view.disagree)[row][5] == "3 (dr-adj)" and panel.answer.adjudicated == 3
    assert "Final score 3 recorded" in panel.message.text() and panel.reason.text() == ""
    assert f"{len(view.disagreements) - 1} to adjudicate" in view.disagree_box.title()


def test_a_study_without_adjudicators_says_how_to_add_one(ctx, qtbot) -> None:
    spec = NewStudy(
        name="solo",
        items=(NewStudyItem("q0", NOTE, QA, "Q?"), NewStudyItem("q1", NOTE, QA, "R?")),
        arms=(NewStudyArm("m0", model(0).sha256),),
        raters=("ana", "ben"),
        overlap=2,
        calibration=0,
        seed=1,
    )
    ctx.log.create_study(spec)
    tab = open_tab(qtbot, ctx)
    choose(qtbot, tab, "solo")
    panel = tab.study_view.adjudication
    assert "asclepius study add-adjudicator solo" in panel.message.text()
    assert not panel.adjudicator.isEnabled() and not panel.record_button.isEnabled()
    # No ratings yet: every alpha says why it is missing instead of a number.
    assert all(r[1] == "–" and "not enough data" in r[5] for r in cells(tab.study_view.agreement))


def test_write_report_from_the_screen_and_a_clear_error(pilot, qtbot, tmp_path: Path, monkeypatch) -> None:
    tab = open_tab(qtbot, pilot)
    choose(qtbot, tab, "pilot")
    view = tab.study_view
    folder = tmp_path / "report"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))
    with qtbot.waitSignal(view.report_written, timeout=WAIT_MS) as written:
        view.report_button.click()
    path = Path(written.args[0])
    assert path.parent == folder and path.is_file() and "<html" in path.read_text(encoding="utf-8").lower()
    assert str(path) in view.status.text() and str(path) in tab.banner.text()
    qtbot.waitUntil(view.report_button.isEnabled, timeout=WAIT_MS)

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    view.write_report_to(blocked)
    qtbot.waitUntil(lambda: "The report was not written" in tab.banner.text(), timeout=WAIT_MS)
    assert tab.banner.kind == "error"


def _places(view: QWidget) -> list[QRect]:
    widgets = [view.progress, view.agreement, view.pairwise, view.flags, view.means, view.disagree]
    widgets += [view.adjudication.record_button, view.report_button, view.status]
    return [QRect(w.mapTo(view, QPoint(0, 0)), w.size()) for w in widgets]


def test_results_arriving_do_not_move_the_layout(pilot, qtbot) -> None:
    tab = open_tab(qtbot, pilot)
    choose(qtbot, tab, "pilot")
    view = tab.study_view
    shown = view.result
    full = _places(view)
    view._clear()  # as a newly chosen study looks while its numbers are computed
    QApplication.processEvents()
    assert _places(view) == full
    view._show(shown)
    view.disagree.selectRow(0)
    QApplication.processEvents()
    assert _places(view) == full


def test_a_14_pt_font_keeps_the_rows_and_lines_each_part_shows(pilot, qtbot) -> None:
    tab = open_tab(qtbot, pilot)
    choose(qtbot, tab, "pilot")
    view = tab.study_view
    before = (view.caption.height(), view.disagree.height(), view.progress.sizeHint().height())
    font = QFont(tab.font())
    font.setPointSize(14 if font.pointSize() < 12 else font.pointSize() + 4)
    tab.setFont(font)  # as the window does for the Settings' font size
    QApplication.processEvents()
    assert view.caption.height() == 2 * view.caption.fontMetrics().lineSpacing() + 2 > before[0]
    assert view.disagree.height() > before[1] and view.progress.sizeHint().height() > before[2]
    header = view.disagree.horizontalHeader().height()
    assert view.disagree.height() >= header + 5 * view.disagree.verticalHeader().defaultSectionSize()


def test_a_late_result_for_an_earlier_choice_is_not_shown(pilot, qtbot, monkeypatch) -> None:
    pilot.log.create_study(
        NewStudy(
            "solo", (NewStudyItem("q0", NOTE, QA, "Q?"),), (NewStudyArm("m0", model(0).sha256),), ("ana",), 1, 0, 1
        )
    )
    gate = threading.Event()
    real = study_stats_view.compute_study

    def held(log, name):  # pilot's numbers come only after solo's are on screen
        if name == "pilot":
            gate.wait(WAIT_MS / 1000)
        return real(log, name)

    monkeypatch.setattr(study_stats_view, "compute_study", held)
    tab = open_tab(qtbot, pilot)
    tab.source.setCurrentIndex(tab.source.findData("pilot"))
    with qtbot.waitSignal(tab.study_view.computed, timeout=WAIT_MS):
        tab.source.setCurrentIndex(tab.source.findData("solo"))
    gate.set()
    qtbot.waitUntil(lambda: tab.study_view.computing == 0, timeout=WAIT_MS)
    assert tab.study_view.result.info.name == "solo" and tab.study_view.disagree.rowCount() == 0


def test_tab_walks_the_study_page_in_reading_order_at_1024x700(pilot, qtbot, tmp_path: Path) -> None:
    from app.qt.main_window import MainWindow
    from app.qt.uistate import UiState
    from tests.qt.test_tab_walk import walk_screen

    win = MainWindow(pilot, UiState(tmp_path / "ui"))
    qtbot.addWidget(win)
    win.resize(1024, 700)
    win.show()
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=WAIT_MS)
    tab = win.stats_tab
    win.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.source.count() > 1, timeout=WAIT_MS)
    choose(qtbot, tab, "pilot")
    tab.study_view.disagree.selectRow(0)  # the adjudication controls are enabled: Tab must reach them too
    seen = walk_screen(qtbot, win, win.tabs.indexOf(tab))
    view = tab.study_view
    order = [tab.source, view.progress, view.disagree, view.adjudication.reason, view.adjudication.record_button]
    idx = [seen.index(w) for w in [*order, view.report_button]]
    assert idx == sorted(idx)

"""The Study screen on a fake engine: open a sealed packet, rate from the keyboard, resume, export."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.core import packets
from app.qt.app_context import AppContext
from app.qt.study_tab import StudyTab
from app.store.models import PacketResponse
from tests.fakes import FakeEngine
from tests.qt.conftest import WAIT_MS, qt_config
from tests.unit.test_sealed_packets import PASS, STUDY, make_packet

pytestmark = pytest.mark.qt


@pytest.fixture
def study_app(qtbot, paths, tmp_path):
    made: list[AppContext] = []

    def make() -> tuple[AppContext, StudyTab]:
        if not made:
            ctx = AppContext(paths, qt_config(tmp_path), engine=FakeEngine())
            ctx.start()
            qtbot.waitUntil(lambda: ctx.log is not None, timeout=WAIT_MS)
            PacketResponse.__table__.create(ctx.log.engine, checkfirst=True)  # until revision 0005 is merged
            made.append(ctx)
        tab = StudyTab(made[0])
        qtbot.addWidget(tab)
        tab.resize(1024, 700)
        tab.show()
        tab.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is tab, timeout=WAIT_MS)
        return made[0], tab

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture
def packet_file(tmp_path: Path) -> Path:
    path = tmp_path / "dr_a.packet"
    packets.write_packet(path, make_packet(4), PASS)
    return path


def open_packet(qtbot, tab: StudyTab, path: Path, passphrase: str = PASS) -> None:
    with qtbot.waitSignal(tab.item_shown, timeout=WAIT_MS):
        assert tab.open_packet(path, passphrase) is not None


def press(qtbot, tab: StudyTab, key: Qt.Key) -> None:
    with qtbot.waitSignal(tab.item_shown, timeout=WAIT_MS):
        qtbot.keyClick(QApplication.focusWidget(), key)


def test_rate_from_the_keyboard_resume_and_export(study_app, qtbot, packet_file: Path, tmp_path: Path) -> None:
    ctx, tab = study_app()
    open_packet(qtbot, tab, packet_file)
    assert tab.index == 0 and tab.progress.text() == "0 / 4 rated"
    assert "Patient 0 admitted" in tab.note.toPlainText() and tab.answer.toPlainText() == "amoxicillin 0"
    assert "<b>4&nbsp;&nbsp;Excellent</b>" in tab.rubric.text() and "pilot" in tab.title.text()
    tab.answer.setFocus()
    qtbot.keyClick(tab.answer, Qt.Key.Key_H)
    assert tab.hallucination.isChecked()
    # A score above 1 with Hallucination ticked contradicts the rubric: refused until a comment says why.
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_2)  # refused at once: no item change to wait for
    assert tab.index == 0 and "comment" in tab.status.text() and tab.comment.hasFocus()
    qtbot.keyClicks(tab.comment, "one wrong dose")
    qtbot.keyClick(tab.comment, Qt.Key.Key_Escape)
    with qtbot.waitSignal(tab.saved, timeout=WAIT_MS) as saved:
        press(qtbot, tab, Qt.Key.Key_2)
    assert saved.args == ["a000"] and tab.index == 1 and tab.progress.text() == "1 / 4 rated"
    # A failed answer says so and is rated like any other.
    assert tab.failure.isVisibleTo(tab) and "empty answer" in tab.failure.text()
    assert tab.answer.toPlainText() == "(empty answer)" and not tab.hallucination.isChecked()
    # Digits typed into the comment box are text, not scores.
    tab.comment.setFocus()
    qtbot.keyClicks(tab.comment, "dose 1 of 4")
    assert tab.index == 1 and tab.comment.text() == "dose 1 of 4"
    qtbot.keyClick(tab.comment, Qt.Key.Key_Escape)
    press(qtbot, tab, Qt.Key.Key_1)
    rows = {r.answer_uid: r for r in ctx.log.packet_responses(STUDY, "dr_a")}
    assert (rows["a000"].score, rows["a000"].hallucination) == (2, True)
    assert (rows["a001"].score, rows["a001"].comment) == (1, "dose 1 of 4")

    # Closing and opening the packet again resumes at the first unrated item.
    tab.close()
    _ctx, again = study_app()
    open_packet(qtbot, again, packet_file)
    assert again.index == 2 and again.progress.text() == "2 / 4 rated"
    # Going back shows the rater's own rating, and editing its comment saves it on leaving.
    again.answer.setFocus()
    with qtbot.waitSignal(again.item_shown, timeout=WAIT_MS):
        again.move(-1)
    assert again.comment.text() == "dose 1 of 4"
    again.comment.setText("dose 1 of 4, checked")
    with qtbot.waitSignal(again.saved, timeout=WAIT_MS):
        again.move(1)
    out = tmp_path / "dr_a.responses"
    with qtbot.waitSignal(again.exported, timeout=WAIT_MS):
        again.export(out)
    back = packets.read_responses(out, PASS, study_uuid=STUDY)
    assert [(r.answer_uid, r.score, r.comment) for r in back.rows] == [
        ("a000", 2, "one wrong dose"),
        ("a001", 1, "dose 1 of 4, checked"),
    ]
    assert back.rater == "dr_a"


def test_the_last_rating_stays_on_the_last_item_and_asks_for_export(study_app, qtbot, packet_file: Path) -> None:
    _ctx, tab = study_app()
    open_packet(qtbot, tab, packet_file)
    tab.answer.setFocus()
    for key in (Qt.Key.Key_4, Qt.Key.Key_3, Qt.Key.Key_2, Qt.Key.Key_1):
        press(qtbot, tab, key)
    assert tab.index == 3 and tab.progress.text() == "4 / 4 rated"
    assert "last item" in tab.status.text()


def test_a_wrong_passphrase_or_another_file_opens_nothing(study_app, qtbot, packet_file: Path, tmp_path: Path):
    _ctx, tab = study_app()
    with qtbot.waitSignal(tab.failed, timeout=WAIT_MS) as failed:
        tab.open_packet(packet_file, "not the passphrase")
    assert "wrong passphrase, or the file was altered" in failed.args[0]
    assert tab.session is None and "not the passphrase" not in tab.status.text()
    other = tmp_path / "x.responses"
    packets.write_responses(other, packets.Responses(STUDY, "dr_a", packets.utc_now(), ()), PASS)
    with qtbot.waitSignal(tab.failed, timeout=WAIT_MS) as failed:
        tab.open_packet(other, PASS)
    assert "this is a responses file, not a rater packet" in failed.args[0]


def test_shared_workstation_path_is_offered_from_the_log(study_app, qtbot) -> None:
    _ctx, tab = study_app()
    assert tab.picker.study.count() == 0 and not tab.picker.start_button.isEnabled()

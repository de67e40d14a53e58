"""History by note: a Note column (name or first line, and short hash), a note filter, naming a note, and
failed attempts hidden by default with a toggle; also on a hash-only log."""

from __future__ import annotations

import pytest

from app.core.types import note_sha256
from app.qt.history_model import COLUMNS, NOTE_COL, SCORE_COL, score_text
from tests.fakes import FakeEngine, Script
from tests.qt.conftest import WAIT_MS

pytestmark = pytest.mark.qt

NOTE_A = "Mrs. A, 71, pneumonia.\nCreatinine 1.4 mg/dL on admission."
NOTE_B = "\n\nMr. B, 64, heart failure.\nFurosemide 40 mg daily."


def ask_on(qtbot, tab, note: str, stop: bool = False, engine: FakeEngine | None = None) -> None:
    tab.replace_note(note, "test")
    tab.set_task("qa")
    tab.instruction.setPlainText("What was the creatinine?")
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS):
        assert tab.ask() is not None
        if stop:
            qtbot.waitUntil(engine.stalled.is_set, timeout=WAIT_MS)
            tab.stop()


def rows(hist) -> list[str]:
    return [hist.model.index(r, NOTE_COL).data() for r in range(hist.model.rowCount())]


def open_history(qtbot, win):
    hist = win.history_tab
    win.tabs.setCurrentWidget(hist)
    qtbot.waitUntil(lambda: hist.note_box.count() > 1 and not hist.count.text().startswith("Reading"), timeout=WAIT_MS)
    return hist


def test_runs_are_listed_filtered_and_named_by_note(fake_window, qtbot):
    engine = FakeEngine(script=Script(stall_after=None))
    ctx, win = fake_window(engine)
    ask_on(qtbot, win.ask_tab, NOTE_A)
    ask_on(qtbot, win.ask_tab, NOTE_B)
    ask_on(qtbot, win.ask_tab, NOTE_B)
    hist = open_history(qtbot, win)
    assert COLUMNS[NOTE_COL] == "Note"
    sha_b = note_sha256(NOTE_B.strip())
    assert rows(hist)[0] == f"Mr. B, 64, heart failure. · {sha_b[:6]}"
    assert sorted(set(rows(hist))) == sorted({rows(hist)[0], f"Mrs. A, 71, pneumonia. · {note_sha256(NOTE_A)[:6]}"})
    # The filter lists each note once (with its run count) and shows only that note's runs.
    labels = [hist.note_box.itemText(i) for i in range(hist.note_box.count())]
    assert labels[0] == "All notes" and labels[1].startswith("Mr. B, 64, heart failure.") and labels[1].endswith("(2)")
    with qtbot.waitSignal(hist.refreshed, timeout=WAIT_MS):
        hist.note_box.setCurrentIndex(hist.note_box.findData(note_sha256(NOTE_A)))
    assert hist.model.rowCount() == 1 and rows(hist)[0].startswith("Mrs. A")
    # Naming the note: every run of it shows the name, and the filter too.
    hist.select_row(0)
    with qtbot.waitSignal(hist.refreshed, timeout=WAIT_MS):
        hist.name_selected_note("Mrs. A, visit 1")
    qtbot.waitUntil(lambda: hist.note_box.currentText().startswith("Mrs. A, visit 1"), timeout=WAIT_MS)
    assert rows(hist) == [f"Mrs. A, visit 1 · {note_sha256(NOTE_A)[:6]}"]
    assert ctx.log.notes()[-1].label == "Mrs. A, visit 1"


def test_failed_attempts_are_hidden_by_default_and_shown_on_request(fake_window, qtbot):
    engine = FakeEngine(script=Script(stall_after=1))
    _ctx, win = fake_window(engine)
    ask_on(qtbot, win.ask_tab, NOTE_A, stop=True, engine=engine)  # stopped: a failed attempt
    engine.script = Script()
    ask_on(qtbot, win.ask_tab, NOTE_A)
    hist = open_history(qtbot, win)
    assert hist.hide_failed.isChecked()
    assert hist.model.rowCount() == 1 and hist.model.run_at(0).finish_reason == "stop"
    assert hist.count.text() == "1 run"
    with qtbot.waitSignal(hist.refreshed, timeout=WAIT_MS):
        hist.hide_failed.setChecked(False)
    assert sorted(hist.model.run_at(r).finish_reason for r in range(2)) == ["cancelled", "stop"]


def test_a_hash_only_log_shows_the_note_by_name_or_hash(fake_window, qtbot):
    _ctx, win = fake_window(store_note_text=False)
    ask_on(qtbot, win.ask_tab, NOTE_A)
    hist = open_history(qtbot, win)
    sha = note_sha256(NOTE_A)
    assert rows(hist) == [f"note {sha[:10]}"]
    hist.select_row(0)
    with qtbot.waitSignal(hist.refreshed, timeout=WAIT_MS):
        hist.name_selected_note("bed 4")
    assert rows(hist) == [f"bed 4 · {sha[:6]}"]


def test_a_whole_score_shows_without_decimals():
    assert (score_text(2.0), score_text(None), score_text(2.5, 2)) == ("2", "", "2.50 (2)")
    assert COLUMNS[SCORE_COL] == "Your score"


def test_the_instruction_column_keeps_its_room_at_a_large_font(fake_window, qtbot):
    """At 14 pt on a 1024 px screen fixed pixel widths left the instruction about 4 characters: the columns
    follow the font and the instruction keeps at least INSTRUCTION_MIN_CHARS (the table scrolls sideways)."""
    from dataclasses import replace

    from app.qt.history_model import INSTRUCTION_COL
    from app.qt.history_tab import INSTRUCTION_MIN_CHARS

    _ctx, win = fake_window()
    win.resize(1024, 700)
    hist = win.history_tab
    win.tabs.setCurrentWidget(hist)
    small = hist.table.columnWidth(NOTE_COL)
    win.ctx.update_config(replace(win.ctx.config, font_size=20))
    win.apply_font()  # what Settings' font size does
    ch = hist.table.fontMetrics().averageCharWidth()
    assert hist.table.columnWidth(NOTE_COL) > small, "the note column follows the font"
    assert hist.table.columnWidth(INSTRUCTION_COL) >= INSTRUCTION_MIN_CHARS * ch

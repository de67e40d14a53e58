"""Patient text stays in the database: not in QSettings, the config, the registry or any other file the
app writes; and `asclepius gui` starts as a real process, offline, and exits cleanly."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.qt.conftest import ask_and_wait, qt_config

MARKER = "Zorblax-Quintrell 4471"  # a made-up name that can only come from this note


@pytest.mark.qt
def test_note_text_is_written_only_to_the_database(open_window, qtbot, tmp_path, paths, sample_note):
    note = sample_note.replace("68-year-old man", f"68-year-old man named {MARKER}")
    ctx, win = open_window(qt_config(tmp_path))
    outcome = ask_and_wait(qtbot, win.ask_tab, note, "Question Answering", "What is the patient's name?")
    assert outcome is not None
    win.close()  # saves the window state to QSettings
    ctx.close()
    written = [p for root in (tmp_path, paths.data_dir, paths.config_dir) for p in Path(root).rglob("*") if p.is_file()]
    assert any(p.suffix == ".ini" for p in written), "the window state was saved (the check below is live)"
    db = Path(ctx.config.database)
    holders = [p for p in written if MARKER.encode() in p.read_bytes() and not p.name.startswith(db.name)]
    assert holders == [], holders
    assert any(MARKER.encode() in p.read_bytes() for p in written if p.name.startswith(db.name))
    for p in written:
        if p.name.startswith(db.name) or p.suffix == ".ini":
            assert stat.S_IMODE(os.stat(p).st_mode) & 0o077 == 0, p


LAUNCH = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

    original_exec = QApplication.exec

    def exec_then_quit(*args):
        tries = [0]

        def poll():  # first run: the demo model is assembled in the background, then loaded
            wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMainWindow) and w.isVisible()]
            text = " ".join(lb.text() for w in wins for lb in w.statusBar().findChildren(QLabel)).replace("\\n", " ")
            tries[0] += 1
            if "clinical" in text or tries[0] > 240:
                # Not stdout: llama-cpp-python points fds 1 and 2 at /dev/null while a model loads (in a worker).
                with open(sys.argv[1], "w", encoding="utf-8") as out:
                    out.write(f"WINDOW {len(wins)} | {text}")
                QApplication.quit()
            else:
                QTimer.singleShot(250, poll)
        QTimer.singleShot(250, poll)
        return original_exec()

    QApplication.exec = exec_then_quit
    from app.qt.main import run_gui
    sys.exit(run_gui(["asclepius"]))
    """
)


@pytest.mark.qt
def test_gui_process_starts_shows_the_demo_warning_and_exits_cleanly(tmp_path, demo_model):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "ASCLEPIUS_HOME": str(tmp_path / "home")}
    report = tmp_path / "window.txt"
    r = subprocess.run(
        [sys.executable, "-c", LAUNCH, str(report)], capture_output=True, timeout=180, env=env, text=True
    )
    assert r.returncode == 0, r.stderr[-2000:]
    line = report.read_text(encoding="utf-8")
    assert line.startswith("WINDOW 1 |"), line
    assert "not trained for clinical tasks" in line and "offline" in line, line

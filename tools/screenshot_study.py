"""The README's Study screen picture (rater view): ``python -m tools.screenshot_study [OUT.png]``.

A sealed packet of the three synthetic sample notes (two arms' answers per question, one of them a failed
answer) is written and opened in the Study screen of the main window at 1024x700, two items are rated from
the keyboard and a third is shown mid-rating. No model is loaded (rating needs none).
Runs in a temporary ASCLEPIUS_HOME under the offscreen platform unless DISPLAY is set (``xvfb-run -a``); the
window alone is grabbed. ``demo_packet`` is shared with ``tests/bench/bench_study_screen.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

SIZE = (1024, 700)
PASSPHRASE = "screenshot passphrase"
QUESTIONS = (
    ("Question Answering", "Which antibiotics was the patient treated with, and for how long?"),
    ("Named Entity Recognition", "List every medication with its dose and frequency."),
    ("Summarization", "Summarize the hospital course in two sentences."),
)
ANSWERS = (
    "Ceftriaxone 1 g IV daily and azithromycin 500 mg daily, then oral amoxicillin-clavulanate to complete 7 days.",
    "Azithromycin and levofloxacin for 10 days.",
)


def demo_packet(n: int):  # type: ignore[no-untyped-def]
    """A packet of ``n`` answers over the sample notes (every fifth a failed, empty answer), for rater dr_lee."""
    from app.core.packets import Packet, PacketItem, utc_now
    from resources import RUBRIC, load_sample
    from resources.samples import list_samples

    notes = [load_sample(name).text for name in list_samples()]
    items = []
    for i in range(n):
        task, instruction = QUESTIONS[(i // 2) % len(QUESTIONS)]
        failed = i % 5 == 4
        items.append(
            PacketItem(
                answer_uid=f"{i:08d}-5e1d-4c2a-9b7e-{i:012d}",
                item_key=f"item-{i // 2}",
                task=task,
                instruction=instruction,
                note=notes[(i // 2) % len(notes)],
                answer="" if failed else ANSWERS[i % 2],
                position=i,
                failure="the model stopped at its length limit with no answer" if failed else None,
            )
        )
    rubric = [{"score": lv.score, "label": lv.label, "definition": lv.definition} for lv in RUBRIC]
    study = "7f0c2d1e-3a4b-4c5d-8e9f-a0b1c2d3e4f5"
    return Packet(study, "pneumonia-pilot", "dr_lee", "blind", "1", rubric, tuple(items), utc_now())


def settle(app, seconds: float = 0.5) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def start(argv: list[str] | None, default: str) -> tuple[Path, Path]:
    """The picture's path and a temporary ASCLEPIUS_HOME (offscreen unless DISPLAY is set; network blocked)."""
    out = Path((argv or sys.argv[1:] or [default])[0])
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="asclepius-shots-"))
    os.environ["ASCLEPIUS_HOME"] = str(home)
    from app.core import netguard

    netguard.install(block=True)  # as the app runs (the status bar says so)
    return out, home


def window_with_log(home: Path):  # type: ignore[no-untyped-def]
    """(app, ctx, main window at SIZE, shown) with the log open and no model (rating and statistics need none)."""
    from PySide6.QtWidgets import QApplication

    from app.core.config import AppConfig, Paths
    from app.qt.app_context import AppContext
    from app.qt.main_window import MainWindow
    from app.qt.uistate import UiState

    app = QApplication(sys.argv[:1])
    ctx = AppContext(Paths.default(), AppConfig())
    ctx.open_log()
    win = MainWindow(ctx, UiState(home / "ui"))
    win.resize(*SIZE)
    win.show()
    while ctx.log is None:
        if ctx.log_error:
            raise SystemExit(f"the log did not open: {ctx.log_error}")
        app.processEvents()
    return app, ctx, win


def main(argv: list[str] | None = None) -> int:
    out, home = start(argv, "docs/screenshots/study-rater.png")
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.core.packets import write_packet

    app, ctx, win = window_with_log(home)
    win.tabs.setCurrentWidget(win.study_tab)
    tab = win.study_tab
    _ensure_table(ctx.log)
    packet = home / "dr_lee.packet"
    write_packet(packet, demo_packet(12), PASSPHRASE)
    shown: list[int] = []
    tab.item_shown.connect(shown.append)
    tab.open_packet(packet, PASSPHRASE)
    for key in (None, Qt.Key.Key_3, Qt.Key.Key_4):
        if key is not None:
            QTest.keyClick(tab.answer, key)
        while not shown:
            app.processEvents()
        shown.clear()
    tab.answer.setFocus()
    QTest.keyClick(tab.answer, Qt.Key.Key_H)
    tab.comment.setText("Levofloxacin is not in the note; azithromycin was 5 days, not 10.")
    settle(app)
    out.parent.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(out))
    print(out, f"window {win.width()}x{win.height()}")
    ctx.close()
    return 0


def _ensure_table(log) -> None:  # type: ignore[no-untyped-def]
    # A log made before revision 0005 is merged lacks the table; with it, this does nothing.
    from app.store.models import PacketResponse

    PacketResponse.__table__.create(log.engine, checkfirst=True)


if __name__ == "__main__":
    sys.exit(main())

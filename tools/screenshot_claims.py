"""The README's claim-level grounding picture: ``python -m tools.screenshot_claims [OUT.png]``.

The Ask screen at 1024x700 with the issue's example (metformin, a dose moved to lisinopril, ibuprofen and
Tylenol the note never names, an unchecked negation, Robitussin left out): the answer is set directly (no
model: ``tests.grounding_examples``) and checked by the real checker (``app.service.ground``), so the
picture shows every claim status at once, worded as a user sees it. Runs in a temporary ASCLEPIUS_HOME
under the offscreen platform unless DISPLAY is set (then the window alone is grabbed, not the whole screen).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

SIZE = (1024, 700)


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or ["docs/screenshots/ask-claims.png"])[0])
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="asclepius-shots-"))
    os.environ["ASCLEPIUS_HOME"] = str(home)
    from app.core import netguard

    netguard.install(block=True)  # as the app runs (the status bar says so)
    from PySide6.QtWidgets import QApplication

    from app.core.config import AppConfig, Paths
    from app.qt.app_context import AppContext
    from app.qt.main_window import MainWindow
    from app.qt.uistate import UiState
    from app.service import ground
    from tests.grounding_examples import ANSWER, NOTE

    app = QApplication(sys.argv[:1])
    ctx = AppContext(Paths.default(), AppConfig())  # not started: no model is loaded, none is needed
    win = MainWindow(ctx, UiState(home / "ui"))
    win.resize(*SIZE)
    win.show()
    tab = win.ask_tab
    tab.editor.setPlainText(NOTE)
    instruction = "List every medication with its dose and frequency."
    tab.set_task("ner")
    tab.instruction.setPlainText(instruction)
    tab.answer_view.set_header("Named Entity Recognition", instruction)
    tab.answer.setPlainText(ANSWER)
    tab.show_grounding(ground(ANSWER, NOTE, None, "Named Entity Recognition", instruction), 0)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # let the layout settle (the panel's height follows its text)
        app.processEvents()
        time.sleep(0.02)
    out.parent.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(out))
    print(out, f"window {win.width()}x{win.height()}")
    ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``asclepius gui``: start the desktop app (offline: network access is blocked for the whole process).

On Linux the process first moves into a network namespace holding only loopback (app.core.netns), before
Qt or any thread starts, unless the display is only reachable through the host's network; the audit hook
is the second layer. The desktop app is never exempt.
"""

from __future__ import annotations

import logging
import sys


def run_gui(argv: list[str] | None = None) -> int:
    from app.core import netguard, netns

    netns.enter(needs_display=True)  # a no-op when `asclepius gui` already entered it
    guard = netguard.install(block=True)
    guard.allow_only(None)
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from app.qt.main_window import build_window

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("Asclepius Desk")
    app.setOrganizationName("asclepius-desk")
    ctx, win = build_window()
    win.show()
    try:
        return app.exec()
    finally:
        ctx.close()


if __name__ == "__main__":
    raise SystemExit(run_gui(sys.argv))

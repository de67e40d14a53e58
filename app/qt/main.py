"""``asclepius gui``: start the desktop app (offline: network access is blocked for the whole process)."""

from __future__ import annotations

import logging
import sys


def run_gui(argv: list[str] | None = None) -> int:
    from app.core import netguard

    netguard.install(block=True)
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

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


def show_startup_error(message: str, environ: dict[str, str] | None = None) -> bool:
    """Show why the desktop app cannot start (a broken policy file, a locked database) in a dialog, for a user
    who started it from the desktop menu and sees no terminal. Only where a real display is there to show it
    (an offscreen or absent display would block on an invisible dialog or abort in Qt): True if shown."""
    import os

    env = os.environ if environ is None else environ
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform not in ("", "xcb", "wayland") or not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")):
        return False
    from PySide6.QtWidgets import QApplication, QMessageBox

    app = QApplication.instance() or QApplication(sys.argv[:1])
    box = QMessageBox(QMessageBox.Icon.Critical, "Asclepius Desk cannot start", message)
    box.exec()
    del app
    return True


if __name__ == "__main__":
    raise SystemExit(run_gui(sys.argv))

"""Window state in QSettings: geometry, splitter sizes, last tab. Nothing else, never note text.

The settings file lives in the app's own config directory (not the platform-wide Qt location), so tests
and portable installs keep it with the rest of their data, readable by the user alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from app.core.privatefile import private_dir


class UiState:
    def __init__(self, config_dir: Path) -> None:
        private_dir(config_dir)
        self.path = config_dir / "window.ini"
        self._s = QSettings(str(self.path), QSettings.Format.IniFormat)

    def geometry(self) -> QByteArray | None:
        v = self._s.value("geometry")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def splitter(self) -> QByteArray | None:
        """The Ask screen's column widths."""
        v = self._s.value("ask_splitter")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def last_tab(self) -> int:
        try:
            return int(self._s.value("last_tab", 0))
        except (TypeError, ValueError):
            return 0

    def save(self, geometry: QByteArray, last_tab: int, splitter: QByteArray | None = None) -> None:
        self._s.setValue("geometry", geometry)
        if splitter is not None:
            self._s.setValue("ask_splitter", splitter)
        self._s.setValue("last_tab", int(last_tab))
        self._s.sync()
        if self.path.exists():
            os.chmod(self.path, 0o600)

"""The abbreviation sense inventories a grounding check uses (``AppConfig.abbreviation_senses``), read once.

Reading an inventory folder takes a while (tens of thousands of senses), so a ``SenseSource`` reads its
folder on first use and keeps the result; the desktop app keeps one for as long as the setting is unchanged.
A folder that cannot be read never costs an answer: the check goes on without senses and the report's
``notes`` says why (the folder is re-read on the next check, should the user have fixed it).
"""

from __future__ import annotations

import threading
from pathlib import Path

from app.core.errors import AsclepiusError
from app.core.grounding import SenseInventory


class SenseSource:
    """The sense inventories of one folder (empty: none configured)."""

    def __init__(self, folder: str | Path = "") -> None:
        self.folder = str(folder)
        self._inventory: SenseInventory | None = None
        self._lock = threading.Lock()  # a worker and the GUI thread may both ground at once

    def get(self) -> tuple[SenseInventory | None, str]:
        """(the inventory, "") once read; (None, why) when the folder cannot be read; (None, "") when no
        folder is configured."""
        if not self.folder:
            return None, ""
        with self._lock:
            if self._inventory is None:
                try:
                    self._inventory = SenseInventory.load(Path(self.folder))
                except AsclepiusError as exc:
                    return None, f"abbreviation senses not checked: {exc}"
            return self._inventory, ""

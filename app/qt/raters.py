"""Who is rating: one chooser over the log's rater list, shared by the Rate panel, Compare and Settings.

A rater is never free text: the list is the log's ``raters`` table (people are added in Settings), the
choice is kept in the app config (``AppConfig.rater``), and every chooser shows the same choice. With
nobody chosen the screens refuse to rate, so no rating is stored under the operating-system user's name or
under a name typed slightly differently from last time.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QWidget

from app.qt.app_context import AppContext
from app.qt.widgets import combo
from app.qt.workers import Task, describe_error

NOBODY = "Choose yourself…"
"""The first entry: nobody chosen (nothing can be rated)."""


class RaterChooser(QWidget):
    """A combo box of the log's human raters; choosing one makes it the rater everywhere (the config)."""

    changed = Signal(str)
    """The chosen rater ("" for nobody), after the user or another chooser changed it."""
    listed = Signal()
    """The rater list was read from the log and shown."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.box: QComboBox = combo()
        self.box.setToolTip("Your name in the log's rater list: ratings are stored under it (add people in Settings)")
        self.box.setAccessibleName("Rater")
        self.setFocusProxy(self.box)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.box)
        self._names: list[str] = []
        self._shown = ""
        self.box.activated.connect(lambda _i: ctx.set_rater(self.box.currentData() or ""))
        ctx.config_changed.connect(self._show_choice)
        ctx.log_changed.connect(self.refresh)
        ctx.raters_changed.connect(self.refresh)
        self._fill([])
        self.refresh()

    @property
    def name(self) -> str:
        """The chosen rater if the log lists them; "" otherwise (a name kept from another log counts as none)."""
        return self.ctx.config.rater if self.ctx.config.rater in self._names else ""

    def refresh(self) -> Task | None:
        """Read the rater list from the log in a worker (a slow disk must not freeze the window)."""
        log = self.ctx.log
        if log is None:
            self._fill([])
            return None
        task = Task(lambda _job: [r.name for r in log.raters() if r.kind == "human"], "read raters")
        task.signals.finished.connect(self._fill)
        task.signals.errored.connect(lambda e: self.box.setToolTip(f"Could not read the raters: {describe_error(e)}"))
        return self.ctx.tasks.start(task)

    def _fill(self, names: list[str]) -> None:
        self._names = list(names)
        self.box.blockSignals(True)
        self.box.clear()
        self.box.addItem(NOBODY if names else "Nobody yet: add raters in Settings", None)
        for n in names:
            self.box.addItem(n, n)
        self.box.blockSignals(False)
        self._show_choice()
        self.listed.emit()

    def _show_choice(self) -> None:
        self.box.blockSignals(True)
        self.box.setCurrentIndex(max(0, self.box.findData(self.name or None)))
        self.box.blockSignals(False)
        if self.name != self._shown:
            self._shown = self.name
            self.changed.emit(self.name)


def add_rater(
    ctx: AppContext, name: str, on_added: Callable[[str], None], on_error: Callable[[str], None]
) -> Task | None:
    """Add ``name`` to the log's rater list in a worker and choose it (people add themselves first);
    ``on_added(name)`` follows, or ``on_error(text)`` with the store's refusal."""
    log, name = ctx.log, " ".join(name.split())
    if log is None:
        on_error(ctx.log_error or "the evaluation log is not open yet")
        return None

    def added(_rid: int) -> None:
        ctx.raters_changed.emit()
        ctx.set_rater(name)
        on_added(name)

    task = Task(lambda _job: log.add_rater(name), "add rater")
    task.signals.finished.connect(added)
    task.signals.errored.connect(lambda e: on_error(describe_error(e)))
    return ctx.tasks.start(task)

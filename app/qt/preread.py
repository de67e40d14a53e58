"""Reading the note while the user types: when the Ask screen starts a preread, and the line that shows it.

Once the note has been still for :data:`PREREAD_PAUSE_MS` and the model is loaded and idle, the note's
prompt prefix is evaluated in a worker (``AskService.preread``); Ask then continues from whatever part is
done. An edit, a model load or an Ask cancels it at once (and the engine itself stops a preread as soon as
any run waits for it, so Compare or a re-run on another note is never held up). The answer does not change:
the engine's test pins that a pre-read note gives the cold answer byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from app.core.preread import Preread
from app.qt.app_context import AppContext, State
from app.qt.workers import Task

PREREAD_PAUSE_MS = 800
"""Start reading this long after the last edit. Longer than the gaps inside typing (a few hundred ms between
keys and words), so a preread is rarely started only to be cancelled by the next key; far shorter than the
seconds a user takes to pick a task and write an instruction after pasting. A wrong start costs little: a
cancel stops llama.cpp within one graph node (bench_preread.py measures what an edit mid-read costs)."""


class PrereadStatus(QLabel):
    """One line under the context meter: "Reading the note… 45%", "Note read", or blank.

    The line keeps one text line's height (of the current font) when blank, so nothing moves when it fills.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Reading the note")
        self.setStyleSheet("color:#555;")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._fit()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit()

    def _fit(self) -> None:
        self.setFixedHeight(self.fontMetrics().lineSpacing() + 2)

    def show_progress(self, done: int, total: int) -> None:
        if total > 0 and done >= total:
            self.setText("Note read")
        else:
            self.setText(f"Reading the note… {100 * done // max(total, 1)}%")

    def clear(self) -> None:
        self.setText("")


class NotePreread(QObject):
    """Starts, cancels and shows the preread of the Ask screen's note.

    ``note()`` gives the editor's text; ``busy()`` is true while the screen runs an answer (no preread then).
    """

    def __init__(
        self, ctx: AppContext, note: Callable[[], str], busy: Callable[[], bool], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._note = note
        self._busy = busy
        self.status = PrereadStatus()
        self.task: Task | None = None
        self.last: Preread | None = None
        """How far the latest preread got (None until one finished)."""
        self._gen = 0
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.start)
        ctx.engine_changed.connect(self.restart)
        ctx.config_changed.connect(self.restart)

    @property
    def enabled(self) -> bool:
        return self.ctx.config.preread_note

    def restart(self) -> None:
        """The note, the model or the settings changed: stop any preread, and read again after the pause."""
        self.cancel()
        if self.enabled and self._note().strip():
            self.timer.start(PREREAD_PAUSE_MS)

    def cancel(self) -> None:
        """Stop the preread now (what it read stays in the context for an Ask on this note)."""
        self.timer.stop()
        self._gen += 1
        if self.task is not None:
            self.task.cancel.set()
            self.task = None
        self.status.clear()

    def start(self) -> Task | None:
        """Read the note now if the setting is on, the model is loaded and idle, and there is a note."""
        engine, note = self.ctx.engine, self._note()
        if not self.enabled or self._busy() or self.ctx.engine_state is not State.READY or engine is None:
            return None
        if not engine.capabilities.preread or not note.strip():
            return None
        self.cancel()
        gen, service = self._gen, self.ctx.service()
        task = Task(lambda job: service.preread(note, on_progress=job.progress, cancel=job.cancel), "read the note")
        task.signals.progress.connect(lambda done, total: gen == self._gen and self.status.show_progress(done, total))
        task.signals.finished.connect(lambda p: gen == self._gen and self._finished(p))
        task.signals.errored.connect(lambda _e: gen == self._gen and self.status.clear())  # Ask reports problems
        self.task = self.ctx.tasks.start(task)
        return self.task

    def _finished(self, p: Preread | None) -> None:
        self.task, self.last = None, p
        if p is None or not p.complete:  # gave way to a run, or the backend reads no notes ahead
            self.status.clear()
        else:
            self.status.show_progress(p.done, p.total)

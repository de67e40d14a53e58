"""Background work that only emits signals: started / progress / token / finished / errored.

A :class:`Task` wraps a plain function ``fn(job) -> result``; ``job`` gives it the cancel event and
thread-safe ``progress``/``token`` callbacks. The function never touches a widget: the controller that
started it connects the signals (queued across threads, so slots run in the GUI thread).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class TaskSignals(QObject):
    started = Signal()
    progress = Signal(int, int)
    """done, total (bytes, items...)."""
    token = Signal(str)
    piece = Signal(int, str)
    """Request index, text: one of several answers streamed side by side."""
    item = Signal(int, str)
    """Request index, "start" or "done"."""
    info = Signal(object)
    """A value the work reports on the way (the prompt's size in tokens and the engine evaluating it)."""
    message = Signal(str)
    finished = Signal(object)
    """The function's return value."""
    errored = Signal(object)
    """The exception (an AsclepiusError carries a message meant for the user)."""
    done = Signal()
    """Emitted last, after finished or errored."""


class Job:
    """What the work function sees: its cancel event and callbacks that emit signals."""

    def __init__(self, signals: TaskSignals, cancel: threading.Event) -> None:
        self._signals = signals
        self.cancel = cancel

    def progress(self, done: int, total: int) -> None:
        # Qt's int is 32-bit: report large byte counts in KiB so a 70 GB model still fits.
        if total > 2**31 - 1:
            done, total = done >> 10, total >> 10
        self._signals.progress.emit(int(done), int(total))

    def token(self, text: str) -> None:
        self._signals.token.emit(text)

    def piece(self, index: int, text: str) -> None:
        self._signals.piece.emit(index, text)

    def item(self, index: int, event: str) -> None:
        self._signals.item.emit(index, event)

    def info(self, value: object) -> None:
        self._signals.info.emit(value)

    def message(self, text: str) -> None:
        self._signals.message.emit(text)


class Task(QRunnable):
    def __init__(self, fn: Callable[[Job], Any], name: str = "task") -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.fn = fn
        self.name = name
        self.signals = TaskSignals()
        self.cancel = threading.Event()
        self.finished_flag = threading.Event()

    def run(self) -> None:
        s = self.signals
        s.started.emit()
        try:
            result = self.fn(Job(s, self.cancel))
        except Exception as exc:  # every failure reaches the window as a message
            if not isinstance(exc, _EXPECTED):
                log.error("%s failed: %s", self.name, "".join(traceback.format_exception_only(exc)).strip())
            s.errored.emit(exc)
        else:
            s.finished.emit(result)
        finally:
            self.finished_flag.set()
            s.done.emit()


def _expected() -> tuple[type[BaseException], ...]:
    from app.core.errors import AsclepiusError

    return (AsclepiusError,)


_EXPECTED = _expected()


class TaskRunner(QObject):
    """Starts tasks on its own thread pool and keeps them alive until they are done."""

    def __init__(self, max_threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._active: set[Task] = set()
        self._closed = False

    def start(self, task: Task) -> Task:
        """Run ``task`` (its signals connected first); after shutdown it is dropped, never started."""
        if self._closed:
            return task
        self._active.add(task)
        task.signals.done.connect(lambda t=task: self._active.discard(t))
        self.pool.start(task)
        return task

    @property
    def active(self) -> int:
        return len(self._active)

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        self._closed = True
        for t in list(self._active):
            t.cancel.set()
        log.debug("waiting for %s", ", ".join(sorted(t.name for t in self._active)) or "no tasks")
        self.pool.waitForDone(timeout_ms)


def describe_error(exc: BaseException) -> str:
    """One clear line for the window (never note text: core errors never include it)."""
    if isinstance(exc, _EXPECTED):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
    return f"unexpected error ({type(exc).__name__}): {exc}"

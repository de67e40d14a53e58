"""Run all tasks: one pane per task, the answers streaming side by side, each with its own Stop.

``RunAllPanel`` is one component, view and controller: ``begin(service, requests, note)`` shows the panes
and returns the task that fills them (the caller connects what it needs, then starts it), Stop all and each
pane's Stop cancel through the panel, and it says how the run ended with ``finished`` / ``failed``. It
knows nothing of the Ask screen: the screen builds and checks the requests and decides what a result means.

The panes sit in a grid inside a vertical scroll area; the number of columns follows the width
(``PANE_MIN_WIDTH`` each), so at 1024x700 they stack and scroll, on a wide screen they sit side by side.
Every pane says which note and task it answers, its state (waiting, processing the note with the
shared prompt's percent, writing, finished with the finish reason and metrics) and its elapsed time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.types import AskRequest
from app.qt.answer_view import INCOMPLETE, TICK_MS, esc
from app.qt.ask_jobs import ScreenOutcome, ask_each, leading_offset, metrics_line
from app.qt.screen_fit import scrolled
from app.qt.workers import Task
from app.service import AskService
from app.store.rules import why_not_rateable

PANE_MIN_WIDTH = 260
"""Two columns from ~540 px of answer column (1366x768 with the Rate panel beside): about 34 characters a line."""
PANE_TEXT_LINES = 6
"""Each pane's answer box shows this many lines (it scrolls): a whole pane fits the 1024x700 answer column."""


def note_label(note: str) -> str:
    """A short description of the note (first words, size): the panes say which note they answer."""
    text = " ".join(note.split())
    head = text if len(text) <= 48 else text[:47] + "…"
    return f"“{head}” ({len(note.strip()):,} characters)"


class TaskPane(QFrame):
    """One task's answer: header (task, instruction, note), streamed text, state line, Stop."""

    stop_requested = Signal(int)
    rate_requested = Signal(int)
    """The pane's index: rate its run beside the grid (the grid stays)."""

    def __init__(self, index: int, request: AskRequest, note: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index, self.request = index, request
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumWidth(PANE_MIN_WIDTH)
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        short = request.instruction if len(request.instruction) <= 80 else request.instruction[:79] + "…"
        self.header.setText(f"<b>{esc(request.task)}</b> <span style='color:#555'>· {esc(short)}</span>")
        self.header.setToolTip(request.instruction)
        # One line: the note is named once, in the summary above the grid; the pane says its run and hash.
        self.provenance = QLabel("")
        self.provenance.setStyleSheet("color:#555;")
        self.provenance.setWordWrap(True)  # a narrow pane at 14 pt wraps the hash instead of cutting it
        self.provenance.setToolTip(f"Note: {note_label(note)}")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setTabChangesFocus(True)
        lines = self.text.fontMetrics().lineSpacing() * PANE_TEXT_LINES
        self.text.setFixedHeight(lines + 2 * self.text.frameWidth() + 8)
        self.text.setAccessibleName(f"Answer: {request.task}")
        self.status = QLabel("Waiting")
        self.status.setWordWrap(True)
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setAccessibleName(f"Stop {request.task}")
        self.stop_btn.setToolTip(f"Stop the {request.task} answer; the others go on")
        self.stop_btn.clicked.connect(lambda: self.stop_requested.emit(self.index))
        self.open_btn = QPushButton("Rate")
        self.open_btn.setAccessibleName(f"Rate {request.task}")
        self.open_btn.setToolTip("Rate this answer in the Rate panel beside the grid; the other answers stay")
        self.open_btn.clicked.connect(lambda: self.run_id is not None and self.rate_requested.emit(self.index))
        self.open_btn.hide()
        row = QHBoxLayout()  # under the state line, which gets the pane's whole width (metrics wrap less)
        row.addStretch(1)
        row.addWidget(self.stop_btn)
        row.addWidget(self.open_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.header)
        lay.addWidget(self.provenance)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.status)
        lay.addLayout(row)
        self.state = "waiting"
        self.stopping = False
        self.t_start: float | None = None
        self.t_end: float | None = None
        self.outcome: ScreenOutcome | None = None
        self.run_id: int | None = None

    def started(self) -> None:
        self.state, self.t_start = "processing", time.monotonic()

    def append(self, piece: str) -> None:
        self.state = "writing"
        cur = self.text.textCursor()
        cur.movePosition(QTextCursor.MoveOperation.End)
        cur.insertText(piece)
        self.text.setTextCursor(cur)

    def done(self) -> None:
        self.state, self.t_end = "done", time.monotonic()
        self.stop_btn.setEnabled(False)

    def elapsed(self) -> float:
        if self.t_start is None:
            return 0.0
        return (self.t_end or time.monotonic()) - self.t_start

    def finish(self, outcome: ScreenOutcome | None) -> None:
        """The final word: the outcome (finish reason, metrics), or None when it never started."""
        self.done()
        self.outcome = outcome
        if outcome is None:
            self.state = "not started"
            self.status.setText("Not started: stopped before its turn.")
            return
        r = outcome.result
        self.run_id = outcome.run_id
        self.text.setPlainText(r.answer)
        run = f"run {outcome.run_id}" if outcome.run_id is not None else "not saved"
        self.provenance.setText(f"{run} · note sha256 {r.note_sha256[:12]}")
        finish = str(r.finish_reason)
        warn = INCOMPLETE.get(finish, "").format(n=r.sampling.max_tokens).split(":")[0]
        # Short (the model is the same in every pane); the whole metrics line is the tooltip.
        line = f"{r.completion_tokens} tokens · finish: {finish}"
        if warn:
            line = f"<b style='color:#8a4b00'>⚠ {esc(warn)}</b> · {line}"
        self.status.setText(line)
        self.status.setToolTip(metrics_line(outcome.model, r))
        why = why_not_rateable("finished", finish, r.answer)  # the store's rule, as the Rate panel asks it
        self.open_btn.setVisible(outcome.run_id is not None)
        self.open_btn.setEnabled(why is None)
        if why is not None:
            self.open_btn.setToolTip(f"Not rateable: {why}")

    def set_rating(self, on: bool) -> None:
        """Mark the pane whose run the Rate panel shows (a thicker frame and a word in its header)."""
        self.setFrameShape(QFrame.Shape.Box if on else QFrame.Shape.StyledPanel)
        self.setLineWidth(2 if on else 1)
        self.open_btn.setText("Rating ▸" if on else "Rate")


class RunAllPanel(QWidget):
    """The panes of one Run all tasks, a summary line with shared progress, and Stop all; it runs them."""

    finished = Signal(object)
    """The list of ScreenOutcome, after the panes show them (a prefix of the requests: the rest never started)."""
    failed = Signal(object)
    """The exception that ended the whole run; the owner words it and calls ``finish(None, message)``."""
    rate_run = Signal(int, str)
    """A pane's "Rate": its run id and task, to rate beside the grid (the panes stay)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)  # the note's first words are shown as typed
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(10)
        self.stop_all_btn = QPushButton("Stop all")
        self.stop_all_btn.setToolTip("Stop every answer (Esc)")
        self.stop_all_btn.clicked.connect(self.stop_all)
        self.grid_host = QWidget()
        self.grid = QGridLayout(self.grid_host)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setAlignment(Qt.AlignmentFlag.AlignTop)  # panes keep their height; the rest stays empty
        self.area = scrolled(self.grid_host)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.stop_all_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.bar)
        lay.addWidget(self.area, 1)
        self.panes: list[TaskPane] = []
        self._columns = 0
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self.tick)
        self._t0 = 0.0
        self._evaluated: Callable[[], int] | None = None
        self._prompt_tokens: int | None = None
        self._start_tokens: int | None = None
        self._task: Task | None = None
        self._note = ""
        self._cancels: list[threading.Event] = []
        self.running = False

    # -- running ----------------------------------------------------------------------------------
    def begin(self, service: AskService, requests: list[AskRequest], note: str) -> Task:
        """Show a pane per request and return the task that answers them; the caller starts it."""
        self._cancels = cancels = [threading.Event() for _ in requests]
        offset = leading_offset(note)
        self._show(requests, note)
        task = Task(lambda job: ask_each(job, service, requests, cancels, note_offset=offset), "run all tasks")
        task.signals.piece.connect(lambda i, text: self.panes[i].append(text))
        task.signals.item.connect(self._item)
        task.signals.info.connect(lambda p: self.set_prompt_progress(lambda: p.engine.evaluated_tokens, p.tokens))
        task.signals.finished.connect(self._finished)
        task.signals.errored.connect(self.failed)
        self._task = task
        return task

    def _item(self, i: int, event: str) -> None:
        pane = self.panes[i]
        if event == "start":
            pane.started()
        else:
            pane.done()
        self.tick()

    def _finished(self, outcomes: list[ScreenOutcome]) -> None:
        self.finish(outcomes)
        self.finished.emit(outcomes)

    def stop_one(self, i: int) -> None:
        """Stop one task's answer; the others go on."""
        if self.running and i < len(self._cancels):
            self._cancels[i].set()
            self.panes[i].stopping = True
            self.tick()

    def stop_all(self) -> None:
        """Stop every answer: the ones still going say "Stopping" until they end."""
        if self._task is None or not self.running:
            return
        self._task.cancel.set()
        for p in self.panes:
            p.stopping = p.stopping or p.state != "done"

    # -- panes ------------------------------------------------------------------------------------
    def _show(self, requests: list[AskRequest], note: str) -> None:
        for p in self.panes:
            p.setParent(None)
            p.deleteLater()
        self.panes = []
        self._note = note_label(note)
        for i, req in enumerate(requests):
            pane = TaskPane(i, req, note)
            pane.stop_requested.connect(self.stop_one)
            pane.rate_requested.connect(self.rate_pane)
            self.panes.append(pane)
        self._columns = 0
        self._relayout()
        self._t0 = time.monotonic()
        self._evaluated = self._prompt_tokens = self._start_tokens = None
        self.bar.setRange(0, 0)
        self.bar.show()
        self.stop_all_btn.setEnabled(True)
        self.running = True
        self._timer.start()
        self.tick()

    def rate_pane(self, index: int) -> None:
        """Bind the Rate panel to pane ``index``'s run: the pane is marked, the grid stays as it is."""
        pane = self.panes[index]
        if pane.run_id is None:
            return
        for p in self.panes:
            p.set_rating(p is pane)
        self.rate_run.emit(pane.run_id, pane.request.task)

    def columns_for(self, width: int) -> int:
        return max(1, min(len(self.panes) or 1, width // PANE_MIN_WIDTH))

    def _relayout(self) -> None:
        cols = self.columns_for(self.area.viewport().width())
        if cols == self._columns:
            return
        self._columns = cols
        for p in self.panes:
            self.grid.removeWidget(p)
        for i, p in enumerate(self.panes):
            self.grid.addWidget(p, i // cols, i % cols)
        # Keyboard order follows reading order: each pane's text, Stop, Rate, then the next pane.
        prev: QWidget = self.stop_all_btn
        for p in self.panes:
            for w in (p.text, p.stop_btn, p.open_btn):
                QWidget.setTabOrder(prev, w)
                prev = w

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._relayout()

    # -- progress ---------------------------------------------------------------------------------
    def set_prompt_progress(self, evaluated: Callable[[], int], prompt_tokens: int) -> None:
        """The shared note prefix: percent from the engine's evaluated-token count (per llama.cpp batch)."""
        self._evaluated, self._prompt_tokens, self._start_tokens = evaluated, prompt_tokens, None
        self.tick()

    def prompt_percent(self) -> int | None:
        if self._evaluated is None or not self._prompt_tokens:
            return None
        n = self._evaluated()
        if self._start_tokens is None:
            self._start_tokens = n
        if n == self._start_tokens and n > self._prompt_tokens:
            return None  # still the previous prompt's count: no number rather than a wrong one
        return int(100 * min(n, self._prompt_tokens) / self._prompt_tokens)

    def tick(self) -> None:
        now = time.monotonic()
        done = sum(p.state in ("done", "not started") for p in self.panes)
        pct = self.prompt_percent()
        writing = any(p.state == "writing" for p in self.panes) or done
        for p in self.panes:
            if p.state == "waiting":
                p.status.setText("Waiting for a free slot" if writing else "Waiting for the note")
            elif p.state == "processing":
                if pct is not None and not writing:
                    n = min(self._evaluated(), self._prompt_tokens)  # type: ignore[misc,type-var]
                    p.status.setText(
                        f"Processing the note: {n:,} of {self._prompt_tokens:,} tokens ({pct}%) · {p.elapsed():.0f} s"
                    )
                else:
                    p.status.setText(f"Processing · {p.elapsed():.0f} s")
            elif p.state == "writing":
                p.status.setText(("Stopping" if p.stopping else "Writing") + f" · {p.elapsed():.0f} s")
            elif p.state == "done" and p.outcome is None:
                p.status.setText(("Stopped" if p.stopping else "Finished") + f" · {p.elapsed():.0f} s")
        n = len(self.panes)
        head = f"Running all {n} tasks: {done} of {n} done · {now - self._t0:.0f} s"
        if pct is not None and not writing:
            head += f" · note {pct}% processed"
            self.bar.setRange(0, 100)
            self.bar.setValue(pct)
        elif writing:
            self.bar.setRange(0, n)
            self.bar.setValue(done)
        self.summary.setText(head + " · Esc stops all")

    def finish(self, outcomes: list[ScreenOutcome] | None, message: str = "") -> None:
        """All done: each pane gets its outcome (a missing one never started)."""
        self._timer.stop()
        self.running, self._task = False, None
        self.stop_all_btn.setEnabled(False)
        self.bar.hide()
        outs = outcomes or []
        for i, p in enumerate(self.panes):
            p.finish(outs[i] if i < len(outs) else None)
        if message:
            self.summary.setText(message)
            return
        total_s = time.monotonic() - self._t0
        stopped = sum(str(o.result.finish_reason) == "cancelled" for o in outs)
        ran = f"Ran {len(outs)} of {len(self.panes)} tasks in {total_s:.1f} s"
        self.summary.setText(ran + (f" ({stopped} stopped)" if stopped else ""))
        # One short line (the grid keeps the room); what they answered, and with which model, on hovering.
        model = f" with {outs[0].model.name} ({outs[0].model.file_type})" if outs else ""
        self.summary.setToolTip(f"On {self._note}{model}. “Rate” rates a pane's answer beside the grid.")

"""The Rate panel beside the answer: the 4-point rubric, hallucination flag, comment, corrected answer.

A rating is saved as soon as a score is picked, and again (as a new version; the log keeps the history)
when the flag, comment or corrected answer changes, after a short pause in typing. The rater is chosen from
the log's rater list (``app/qt/raters.py``); with nobody chosen the panel refuses to rate. A rating the store
would refuse as contradicting the rubric (a score above 1 with Hallucination ticked) waits for the comment
that explains it (``app.store.ratings.rating_problem``, the store's own rule).
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.qt.app_context import AppContext
from app.qt.raters import RaterChooser
from app.qt.workers import Task, describe_error
from app.store.ratings import rating_problem
from resources import RUBRIC

OPTIONAL = "optional"
NO_RATER = "choose yourself in the Rater list to rate (add your name in Settings)"
TYPING_PAUSE_MS = 800
"""Save after this long without typing: often enough that nothing is lost, rarely enough to keep history short."""


class RatePanel(QGroupBox):
    saved = Signal(int)
    """The new rating's id."""
    failed = Signal(str)
    loaded = Signal()
    """The current run's rating (or rater list) was read from the log and shown."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__("Rate this answer", parent)
        self.ctx = ctx
        self.run_id: int | None = None
        self._loading = False
        self._dirty = False
        self._why_not = ""
        self._read_gen = 0
        """Reads of the log run in workers; only the latest one's answer is shown."""
        self._editing_as = ""
        """The rater the unsaved edits belong to (the choice may change before they are saved)."""
        self.rater = RaterChooser(ctx)
        self.scores = QButtonGroup(self)
        self.scores.setExclusive(True)
        box = QVBoxLayout()
        box.setSpacing(2)
        for lv in RUBRIC:
            rb = QRadioButton(f"&{lv.score}  {lv.label}")
            rb.setToolTip(lv.definition)
            self.scores.addButton(rb, lv.score)
            d = QLabel(lv.definition)
            d.setWordWrap(True)
            d.setStyleSheet("color:#555; margin-left:22px; margin-bottom:4px;")
            box.addWidget(rb)
            box.addWidget(d)
        self.hallucination = QCheckBox("Ha&llucination")
        self.hallucination.setToolTip("The answer states something the note does not support")
        self.comment = QLineEdit()
        self.comment.setPlaceholderText(OPTIONAL)
        self.corrected = QPlainTextEdit()
        self.corrected.setPlaceholderText("optional: the answer as it should have been")
        self.corrected.setTabChangesFocus(True)
        self.corrected.setMaximumHeight(110)
        self.status = QLabel("Ask a question or open a run to rate it.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)

        self.subject = QLabel()
        self.subject.setWordWrap(True)
        self.subject.hide()
        form = QFormLayout()
        form.addRow("Rater", self.rater)
        lay = QVBoxLayout(self)
        lay.addWidget(self.subject)
        lay.addLayout(form)
        lay.addLayout(box)
        lay.addWidget(self.hallucination)
        lay.addWidget(QLabel("Comment"))
        lay.addWidget(self.comment)
        lay.addWidget(QLabel("Corrected answer"))
        lay.addWidget(self.corrected)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.save)
        self.scores.idClicked.connect(lambda _id: self._changed(0))
        self.hallucination.toggled.connect(lambda _on: self._changed(0))
        self.comment.textEdited.connect(lambda _t: self._changed(TYPING_PAUSE_MS))
        self.comment.editingFinished.connect(self.flush)
        self.corrected.textChanged.connect(lambda: self._changed(TYPING_PAUSE_MS))
        self.rater.changed.connect(lambda _name: self._rater_changed())
        self.set_run(None)

    # -- run and rater ----------------------------------------------------------------------------
    def _rater_changed(self) -> None:
        """Another rater was chosen: what the previous one typed is saved as theirs, then the new one's shows."""
        self.flush()
        self._load_current()

    def set_run(self, run_id: int | None, why_not: str = "", subject: str = "") -> None:
        """Rate ``run_id``; None disables the panel (``why_not`` says why, e.g. the run was stopped).
        ``subject`` names the answer in the title (one pane of Run all tasks: its task and run)."""
        self.flush()
        # In a label that wraps, not the title: a long title would widen the panel past its column.
        self.subject.setText(f"<b>{subject}</b>")
        self.subject.setVisible(bool(subject))
        self.run_id = run_id
        self._why_not = why_not
        self.setEnabled(run_id is not None)
        self._load_current()

    def _clear_form(self) -> None:
        self.scores.setExclusive(False)
        for b in self.scores.buttons():
            b.setChecked(False)
        self.scores.setExclusive(True)
        self.hallucination.setChecked(False)
        self.comment.clear()
        self.corrected.clear()
        self.comment.setPlaceholderText(OPTIONAL)
        for w in (*self.scores.buttons(), self.hallucination, self.comment, self.corrected):
            w.setEnabled(bool(self.rater_name))  # nobody chosen: nothing can be rated

    def _load_current(self) -> Task | None:
        """Clear the form now; fill it from the log in a worker (the latest request wins)."""
        self._read_gen += 1
        gen, run_id, rater, log = self._read_gen, self.run_id, self.rater_name, self.ctx.log
        self._loading = True
        try:
            self._clear_form()
        finally:
            self._loading = False
            self._dirty = False
        if run_id is None or log is None:
            self.status.setText(
                f"Not rateable: {self._why_not}." if self._why_not else "Ask a question or open a run to rate it."
            )
            self.loaded.emit()
            return None
        if not rater:
            self.status.setText(NO_RATER[0].upper() + NO_RATER[1:] + ".")
            self.loaded.emit()
            return None
        self.status.setText(f"Run {run_id}: reading its rating…")
        task = Task(lambda _job: [r for r in log.rating_history(run_id, rater) if r.is_current], "read rating")
        task.signals.finished.connect(lambda mine: gen == self._read_gen and self._show_rating(run_id, mine))
        task.signals.errored.connect(
            lambda e: gen == self._read_gen and self.status.setText(f"Could not read the rating: {describe_error(e)}")
        )
        return self.ctx.tasks.start(task)

    def _show_rating(self, run_id: int, mine: list) -> None:
        if self._dirty:  # the rater started rating while the old one was read: keep what they did
            self.loaded.emit()
            return
        self._loading = True
        try:
            if mine:
                r = mine[-1]
                self.scores.button(r.score).setChecked(True)
                self.hallucination.setChecked(r.hallucination)
                self.comment.setText(r.comment or "")
                self.corrected.setPlainText(r.corrected_answer or "")
                self.status.setText(f"Rated {r.score} by {r.rater} at {_local(r.created_at)}")
            else:
                self.status.setText(f"Run {run_id}: not rated by {self.rater_name} yet")
        finally:
            self._loading = False
            self._dirty = False
        self.loaded.emit()

    @property
    def rater_name(self) -> str:
        """The chosen rater, or "" when nobody is."""
        return self.rater.name

    @property
    def score(self) -> int | None:
        s = self.scores.checkedId()
        return s if s > 0 else None

    # -- saving -----------------------------------------------------------------------------------
    def _changed(self, delay_ms: int) -> None:
        if self._loading or self.run_id is None:
            return
        if not self._dirty:
            self._editing_as = self.rater_name
        self._dirty = True
        if self.score is None:
            self.status.setText("Pick a score to save the rating.")
            return
        self._timer.start(delay_ms)

    def flush(self) -> None:
        """Save now if anything is pending (before switching runs or closing)."""
        if self._timer.isActive() or (self._dirty and self.score is not None):
            self._timer.stop()
            self.save()

    def save(self) -> Task | None:
        log, run_id, score, rater = self.ctx.log, self.run_id, self.score, self._editing_as or self.rater_name
        if run_id is None or score is None or not self._dirty:
            return None
        if log is None:
            self._fail(self.ctx.log_error or "the evaluation log is not open yet")
            return None
        if not rater:
            self._fail(NO_RATER)
            return None
        flag, comment, corrected = self.hallucination.isChecked(), self.comment.text(), self.corrected.toPlainText()
        if problem := rating_problem(score, flag, comment):  # the store would refuse it: ask for the why
            self.comment.setPlaceholderText("required: why this score although Hallucination is ticked")
            self.status.setText(f"<span style='color:#8a4b00'>Not saved yet: {problem}.</span>")
            return None
        self._dirty = False

        def work(_job) -> int:
            return log.add_rating(
                run_id, rater, score, hallucination=flag, comment=comment or None, corrected_answer=corrected or None
            )

        task = Task(work, "save rating")
        task.signals.finished.connect(lambda rid: self._saved(rid, score, rater))
        task.signals.errored.connect(lambda exc: self._fail(describe_error(exc)))
        self.status.setText("Saving…")
        return self.ctx.tasks.start(task)

    def _saved(self, rating_id: int, score: int, rater: str) -> None:
        self.status.setText(f"Saved: {score} by {rater} at {datetime.now().strftime('%H:%M:%S')}")
        self.saved.emit(rating_id)
        self.ctx.runs_changed.emit()

    def _fail(self, text: str) -> None:
        self._dirty = True
        self.status.setText(f"<span style='color:#b3261e'>Not saved: {text}</span>")
        self.failed.emit(text)


def _local(t: datetime) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M")

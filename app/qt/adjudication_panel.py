"""Adjudication on the Statistics screen: a registered adjudicator records a final score, with a reason, for
an answer its raters disagree on.

The store decides what is accepted (``EvalLog.adjudicate``: a registered adjudicator of the study, a score
1-4, a reason), exactly as for ``asclepius study adjudicate``; this panel only collects the choice and shows
the store's answer. The raters' ratings are never changed: the final score is recorded beside them.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from app.qt.app_context import AppContext
from app.qt.stat_tables import LinesLabel, tint
from app.qt.widgets import combo
from app.qt.workers import Task, describe_error
from app.store.agreement import Disagreement
from app.store.studies import StudyInfo
from resources import RUBRIC

ERROR_COLOR = "#b3261e"
TEXT_COLOR = "#202020"
NONE_REGISTERED = (
    "No adjudicator is registered for study {name!r}. Add one on the command line: "
    "asclepius study add-adjudicator {name} NAME (or name them at creation: --adjudicators NAME[,NAME…])"
)


def scores_text(d: Disagreement) -> str:
    """ "ana 1 · ben 4": each rater's own score of the answer."""
    return " · ".join(f"{rater} {score}" for rater, score in d.scores.items())


class AdjudicationPanel(QWidget):
    recorded = Signal(str)
    """The answer uid whose final score was just stored."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.info: StudyInfo | None = None
        self.answer: Disagreement | None = None
        self.task: Task | None = None
        """The adjudication being stored now (the button waits for it: no double record)."""
        self.target = QLabel()
        self.target.setTextFormat(Qt.TextFormat.PlainText)
        self.adjudicator = combo(10)
        self.adjudicator.setAccessibleName("Adjudicator")
        self.adjudicator.setToolTip("Who records the final score (the study's registered adjudicators)")
        self.score = combo(14)
        self.score.setAccessibleName("Final score")
        self.score.setPlaceholderText("final score…")
        for lv in RUBRIC:
            self.score.addItem(f"{lv.score} – {lv.label}", lv.score)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("reason (required): why this score")
        self.reason.setAccessibleName("Reason for the final score")
        self.reason.returnPressed.connect(self.record)
        self.record_button = QPushButton("Record &final score")
        self.record_button.setToolTip("The raters' own ratings are kept; the final score is recorded beside them")
        self.record_button.clicked.connect(self.record)
        self.message = LinesLabel(2)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.adjudicator, 1)
        row.addWidget(self.score, 1)
        row.addWidget(self.reason, 3)
        row.addWidget(self.record_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.target)
        lay.addLayout(row)
        lay.addWidget(self.message)
        self.set_study(None)

    def set_study(self, info: StudyInfo | None) -> None:
        """The study whose answers are adjudicated here (None: nothing chosen); clears the chosen answer. The
        same study again (its numbers recomputed) keeps the adjudicator and the last message."""
        same = info is not None and self.info is not None and info.uuid == self.info.uuid
        who = self.adjudicator.currentText()
        self.info = info
        self.adjudicator.clear()
        if info is not None:
            self.adjudicator.addItems(list(info.adjudicators))
            if same and who in info.adjudicators:
                self.adjudicator.setCurrentText(who)
        self.adjudicator.setEnabled(bool(info and info.adjudicators))
        if not same or not (info and info.adjudicators):
            self._say(NONE_REGISTERED.format(name=info.name) if info and not info.adjudicators else "")
        self.set_answer(None)

    def set_answer(self, d: Disagreement | None) -> None:
        """The answer chosen in the disagreements list (None: none)."""
        self.answer = d
        if d is None:
            self.target.setText("Choose an answer in the list above to record its final score.")
        else:
            done = f"; final score {d.adjudicated} by {d.adjudicator}" if d.adjudicated is not None else ""
            self.target.setText(f"Item {d.item} · {d.task} · arm {d.arm}: {scores_text(d)}{done}")
        self._enable()

    def _enable(self) -> None:
        ready = self.info is not None and bool(self.info.adjudicators) and self.answer is not None
        self.record_button.setEnabled(ready and self.task is None)
        for w in (self.score, self.reason):
            w.setEnabled(ready)

    def _say(self, text: str, error: bool = False) -> None:
        tint(self.message, ERROR_COLOR if error else TEXT_COLOR)
        self.message.setText(text)

    def record(self) -> Task | None:
        """Store the final score through the store's one adjudication rule (in a worker)."""
        log, info, d = self.ctx.log, self.info, self.answer
        if log is None or info is None or d is None or self.task is not None or not self.record_button.isEnabled():
            return None
        adjudicator, score, reason = self.adjudicator.currentText(), self.score.currentData(), self.reason.text()
        task = Task(lambda _job: log.adjudicate(info.name, d.answer, adjudicator, score, reason), "adjudicate")
        task.signals.finished.connect(lambda _id: self._recorded(d, adjudicator, score))
        task.signals.errored.connect(lambda e: self._say(f"Not recorded: {describe_error(e)}", error=True))
        task.signals.done.connect(self._done)
        self.task = task
        self._enable()
        return self.ctx.tasks.start(task)

    def _recorded(self, d: Disagreement, adjudicator: str, score: int) -> None:
        self.reason.clear()
        self.score.setCurrentIndex(-1)
        self._say(
            f"Final score {score} recorded for item {d.item} (arm {d.arm}) by {adjudicator}; "
            "the raters' own ratings are kept."
        )
        self.recorded.emit(d.answer)

    def _done(self) -> None:
        self.task = None
        self._enable()

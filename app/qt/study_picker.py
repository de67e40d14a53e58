"""The shared-workstation way into the Study screen: a study in this log and the rater from its list.

A rater is chosen from the study's registered raters, never typed: the study refuses anyone else anyway
(``EvalLog.rate_study_answer``), and a typed name would let one person rate as another by accident.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from app.qt.app_context import AppContext
from app.qt.widgets import combo
from app.qt.workers import Task, describe_error
from app.service.rating_session import LogStudySession


class StudyPicker(QWidget):
    chosen = Signal(object)
    """A ``LogStudySession`` for the chosen study and rater."""
    failed = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.infos: list = []
        self.study = combo(12)
        self.study.setToolTip("A study in this workstation's log (a shared workstation rates there directly)")
        self.rater = combo(10)
        self.rater.setToolTip("Choose yourself from the study's raters")
        self.start_button = QPushButton("&Start rating")
        self.start_button.clicked.connect(self.start)
        self.note = QLabel()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Or rate a study in this log:"))
        lay.addWidget(self.study, 1)
        lay.addWidget(self.rater, 1)
        lay.addWidget(self.start_button)
        lay.addWidget(self.note)
        lay.addStretch(1)
        self.study.currentIndexChanged.connect(self._fill_raters)
        ctx.log_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> Task | None:
        log = self.ctx.log
        if log is None or not hasattr(log, "studies"):
            self._set_studies([])
            return None
        task = Task(lambda _job: log.studies(), "read studies")
        task.signals.finished.connect(self._set_studies)
        task.signals.errored.connect(lambda e: self.note.setText(f"Could not read studies: {describe_error(e)}"))
        return self.ctx.tasks.start(task)

    def _set_studies(self, infos: list) -> None:
        self.infos = list(infos)
        self.study.blockSignals(True)
        self.study.clear()
        self.study.addItems([i.name for i in self.infos])
        self.study.blockSignals(False)
        self._fill_raters()
        for w in (self.study, self.rater, self.start_button):
            w.setEnabled(bool(self.infos))
        self.note.setText("" if self.infos else "(no studies)")

    def _fill_raters(self) -> None:
        self.rater.clear()
        i = self.study.currentIndex()
        if 0 <= i < len(self.infos):
            self.rater.addItems(list(self.infos[i].raters))

    def start(self) -> Task | None:
        log, study, rater = self.ctx.log, self.study.currentText(), self.rater.currentText()
        if log is None or not study or not rater:
            return None
        task = Task(lambda _job: LogStudySession(log, study, rater), "open study")
        task.signals.finished.connect(self.chosen.emit)
        task.signals.errored.connect(lambda e: self.failed.emit(describe_error(e)))
        return self.ctx.tasks.start(task)

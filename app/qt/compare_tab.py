"""The Compare screen: two models (or two quantizations) answer the same note and instruction; the rater
sees them as A and B in random order, votes (and may score each), and only then learns which was which."""

from __future__ import annotations

import random

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AsclepiusError
from app.core.types import ModelInfo
from app.qt.appstate import AppContext
from app.qt.asking import Outcome, leading_offset
from app.qt.widgets import Banner, combo
from app.qt.workers import Job, Task, describe_error
from resources import RUBRIC, TASKS

VOTES = (("A is better", "A"), ("B is better", "B"), ("Tie", "tie"), ("Both bad", "both_bad"))


class CompareTab(QWidget):
    answers_ready = Signal()
    voted = Signal(int)
    """The comparison's id."""

    def __init__(self, ctx: AppContext, ask_tab, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.ask_tab = ask_tab
        self.rng = random.SystemRandom()
        self.pair: tuple[Outcome, Outcome] | None = None
        """(shown as A, shown as B)."""
        self.task: Task | None = None
        self.banner = Banner()
        self.model_a, self.model_b = combo(24), combo(24)
        self.task_box = combo()
        for t in TASKS:
            self.task_box.addItem(t.name, t.name)
        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText("Instruction (the same for both models)")
        self.note_info = QLabel()
        self.run_btn = QPushButton("&Run both models")
        self.run_btn.clicked.connect(self.run)
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setEnabled(False)
        self.stop_btn.clicked.connect(lambda: self.task and self.task.cancel.set())
        setup = QGroupBox("Setup")
        g = QGridLayout(setup)
        g.addWidget(QLabel("First model"), 0, 0)
        g.addWidget(self.model_a, 0, 1)
        g.addWidget(QLabel("Second model"), 0, 2)
        g.addWidget(self.model_b, 0, 3)
        g.addWidget(QLabel("Task"), 1, 0)
        g.addWidget(self.task_box, 1, 1)
        g.addWidget(QLabel("Instruction"), 1, 2)
        g.addWidget(self.instruction, 1, 3)
        g.addWidget(self.note_info, 2, 0, 1, 2)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.run_btn)
        row.addWidget(self.stop_btn)
        g.addLayout(row, 2, 2, 1, 2)
        g.setColumnStretch(1, 1)
        g.setColumnStretch(3, 2)

        self.views: list[QTextEdit] = []
        self.scores: list[QComboBox] = []
        answers = QHBoxLayout()
        for label in ("A", "B"):
            box = QGroupBox(f"Answer {label}")
            v = QVBoxLayout(box)
            te = QTextEdit()
            te.setReadOnly(True)
            te.setAccessibleName(f"Answer {label}")
            sc = combo()
            sc.addItem("no score", None)
            for lv in RUBRIC:
                sc.addItem(f"{lv.score} {lv.label}", lv.score)
            sc.setToolTip("Optional: a rubric score for this answer")
            srow = QHBoxLayout()
            srow.addWidget(QLabel("Score (optional)"))
            srow.addWidget(sc, 1)
            v.addWidget(te, 1)
            v.addLayout(srow)
            answers.addWidget(box)
            self.views.append(te)
            self.scores.append(sc)
        self.rater = QLineEdit()
        self.rater.setPlaceholderText("rater name")
        self.vote_btns: dict[str, QPushButton] = {}
        vote = QHBoxLayout()
        vote.addWidget(QLabel("Rater"))
        vote.addWidget(self.rater)
        vote.addStretch(1)
        for text, choice in VOTES:
            b = QPushButton(text)
            b.clicked.connect(lambda _c=False, ch=choice: self.vote(ch))
            self.vote_btns[choice] = b
            vote.addWidget(b)
        self.reveal = QLabel("Identities are hidden until you vote.")
        self.reveal.setWordWrap(True)
        self.reveal.setTextFormat(Qt.TextFormat.RichText)
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addWidget(setup)
        lay.addLayout(answers, 1)
        lay.addLayout(vote)
        lay.addWidget(self.reveal)
        self._set_votable(False)
        ctx.models_changed.connect(self.fill_models)
        ctx.engine_changed.connect(self.fill_models)
        self.fill_models()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self.instruction.text():
            self.task_box.setCurrentIndex(self.ask_tab.task_box.currentIndex())
            self.instruction.setText(self.ask_tab.instruction.toPlainText().strip())
        if not self.rater.text():
            self.rater.setText(self.ask_tab.rate.rater_name)
        self.note_info.setText(f"Note: the note on the Ask screen ({len(self.ask_tab.editor.toPlainText()):,} chars)")

    def fill_models(self) -> None:
        models = sorted(self.ctx.registry.list(), key=lambda m: (not m.is_demo, m.name))
        for i, box in enumerate((self.model_a, self.model_b)):
            keep = box.currentData()
            box.clear()
            for m in models:
                box.addItem(m.display_name, m.sha256)
            idx = box.findData(keep)
            box.setCurrentIndex(idx if idx >= 0 else min(i, len(models) - 1))

    def _set_votable(self, on: bool) -> None:
        for b in self.vote_btns.values():
            b.setEnabled(on)
        for s in self.scores:
            s.setEnabled(on)

    def _model(self, box: QComboBox) -> ModelInfo | None:
        return self.ctx.registry.find(box.currentData()) if box.currentData() else None

    def run(self) -> Task | None:
        if self.task is not None:
            return None
        first, second = self._model(self.model_a), self._model(self.model_b)
        note, instruction = self.ask_tab.editor.toPlainText(), self.instruction.text().strip()
        problem = None
        if first is None or second is None:
            problem = "Choose two models (import a second one on the Models screen)."
        elif first.sha256 == second.sha256:
            problem = "Choose two different models (or two quantizations of one model)."
        elif not instruction:
            problem = "Write an instruction."
        service = self.ctx.service()
        if not problem:
            try:  # the service checks the note and resolves the sampling settings (one rule everywhere)
                req = service.request(note, self.task_box.currentData(), instruction)
            except AsclepiusError as exc:
                problem = f"{exc} (the note comes from the Ask screen)"
        if problem:
            self.banner.show_error(problem)
            return None
        self.banner.hide()
        offset = leading_offset(note)

        def work(job: Job) -> list[Outcome]:
            out = []
            for i, info in enumerate((first, second)):
                if job.cancel.is_set():
                    break
                job.progress(i, 2)
                # Two runs of one question: the second gets its own run uuid.
                o = service.ask(req if i == 0 else req.renewed(), model=info, cancel=job.cancel)
                out.append(Outcome.of(o, offset))
            return out

        self.pair = None
        for v in self.views:
            v.clear()
        for s in self.scores:
            s.setCurrentIndex(0)
        self.reveal.setText("Running both models…")
        self._set_votable(False)
        task = Task(work, "compare")
        task.signals.progress.connect(lambda d, n: self.reveal.setText(f"Running model {d + 1} of {n}…"))
        task.signals.finished.connect(self._answers)
        task.signals.errored.connect(lambda e: self.banner.show_error(describe_error(e)))
        task.signals.done.connect(self._done)
        self.task = task
        self.run_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        return self.ctx.tasks.start(task)

    def _done(self) -> None:
        self.task = None
        self.run_btn.setEnabled(True)
        self.stop_btn.setEnabled(False)
        self.ctx.runs_changed.emit()

    def _answers(self, outcomes: list[Outcome]) -> None:
        self._done()
        if len(outcomes) < 2:
            self.reveal.setText("Stopped before both answers were ready.")
            return
        if any(o.run_id is None for o in outcomes):
            self.banner.show_error(f"The log is unavailable, so a vote cannot be stored: {self.ctx.log_error}")
        a, b = outcomes
        if self.rng.random() < 0.5:
            a, b = b, a
        self.pair = (a, b)
        for view, o in zip(self.views, self.pair, strict=True):
            view.setPlainText(o.result.answer or "(empty answer)")
        self.reveal.setText("Identities are hidden until you vote.")
        self._set_votable(all(o.run_id is not None for o in outcomes))
        self.answers_ready.emit()

    def vote(self, choice: str) -> Task | None:
        log, pair, rater = self.ctx.log, self.pair, self.rater.text().strip()
        if pair is None or log is None:
            return None
        if not rater:
            self.banner.show_error("Enter a rater name before voting.")
            return None
        scores = [s.currentData() for s in self.scores]
        a, b = pair

        def work(_job: Job) -> int:
            cid = log.add_comparison(a.run_id, b.run_id, rater, choice, a_side="left")
            for o, score in zip(pair, scores, strict=True):
                if score is not None:
                    log.add_rating(o.run_id, rater, score)
            return cid

        task = Task(work, "save vote")
        task.signals.finished.connect(lambda cid: self._voted(cid, choice))
        task.signals.errored.connect(lambda e: self.banner.show_error(f"Vote not saved: {describe_error(e)}"))
        self._set_votable(False)
        return self.ctx.tasks.start(task)

    def _voted(self, cid: int, choice: str) -> None:
        a, b = self.pair or (None, None)
        label = dict((c, t) for t, c in VOTES)[choice]
        self.reveal.setText(
            f"Saved ({label}). <b>A</b> was <b>{a.model.display_name}</b>; <b>B</b> was <b>{b.model.display_name}</b>."
        )
        self.ctx.runs_changed.emit()
        self.voted.emit(cid)

    def flush(self) -> None:
        if self.task is not None:
            self.task.cancel.set()

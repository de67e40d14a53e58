"""The Compare screen: two models (or two quantizations) answer the same note and instruction; the rater
sees them as A and B in random order, votes (and may score each), and only then learns which was which.

Which model is A is drawn before the runs start; A's answer streams first, then B's, so streaming reveals
nothing the final screen does not. Until the vote both runs are listed in History without model names.
A vote can be undone (and cast again) until the next comparison starts: the log keeps the first vote, marked
withdrawn, and records the second as not blind (the rater has seen the models), so win rates, which count
blind votes only, leave both out.
"""

from __future__ import annotations

import random

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AsclepiusError
from app.core.types import ModelInfo
from app.qt.app_context import AppContext
from app.qt.ask_jobs import ScreenOutcome, leading_offset
from app.qt.raters import RaterChooser
from app.qt.screen_fit import flow
from app.qt.stat_tables import LinesLabel
from app.qt.widgets import Banner, combo
from app.qt.workers import Job, Task, describe_error
from app.store.ratings import rating_problem
from app.store.rules import why_not_rateable
from resources import RUBRIC, TASKS
from resources.rubric import level

VOTES = (("A is better", "A"), ("B is better", "B"), ("Tie", "tie"), ("Both bad", "both_bad"))
HIDDEN = "Identities are hidden until you vote. Win rates count blind votes only."
SAME_MODEL = (
    "A/A comparison: both entries are the same model file (same sha256). The vote measures position bias "
    "(does the answer shown as A win more often?); win rates leave it out."
)


class CompareTab(QWidget):
    answers_ready = Signal()
    voted = Signal(int)
    """The comparison's id."""
    undone = Signal()

    def __init__(self, ctx: AppContext, ask_tab, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.ask_tab = ask_tab
        self.rng = random.SystemRandom()
        self.pair: tuple[ScreenOutcome, ScreenOutcome] | None = None
        """(shown as A, shown as B)."""
        self.task: Task | None = None
        self.order: tuple[int, int] = (0, 1)
        """Which of (first, second model) is shown as A and as B, drawn before each run."""
        self._stream_to = 0
        self.vote_id: int | None = None
        self._vote_ratings: list[int] = []
        self._seen = False
        """The rater has seen which model wrote which answer of this pair: a new vote is not blind."""
        self.banner = Banner()
        self.model_a, self.model_b = combo(16), combo(16)
        self.task_box = combo(12)
        for t in TASKS:
            self.task_box.addItem(t.name, t.name)
        self.instruction = QLineEdit()
        self.instruction.setPlaceholderText("Instruction (the same for both models)")
        self.note_info = QLabel()
        self.note_info.setWordWrap(True)
        self.note_view = QPlainTextEdit()
        self.note_view.setReadOnly(True)
        self.note_view.setAccessibleName("The note both models answer (edit it on the Ask screen)")
        self.note_view.setTabChangesFocus(True)
        self.run_btn = QPushButton("&Run both models")
        self.run_btn.clicked.connect(self.run)
        self.stop_btn = QPushButton("Stop  (Esc)")
        self.stop_btn.setEnabled(False)
        self.stop_btn.clicked.connect(self.stop)
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
        g.addWidget(flow(self.run_btn, self.stop_btn), 2, 0, 1, 4)
        g.setColumnStretch(1, 1)
        g.setColumnStretch(3, 2)

        self.same_model = QLabel(SAME_MODEL)
        self.same_model.setWordWrap(True)
        self.same_model.hide()
        g.addWidget(self.same_model, 3, 0, 1, 4)
        self.model_a.currentIndexChanged.connect(self._models_chosen)
        self.model_b.currentIndexChanged.connect(self._models_chosen)

        self.views: list[QTextEdit] = []
        self.scores: list[QComboBox] = []
        self.flags: list[QCheckBox] = []
        self.rubric_texts: list[LinesLabel] = []
        answers = QSplitter(Qt.Orientation.Horizontal)
        answers.setChildrenCollapsible(False)
        note_box = QGroupBox("Note")
        nl = QVBoxLayout(note_box)
        nl.addWidget(self.note_info)
        nl.addWidget(self.note_view, 1)
        answers.addWidget(note_box)
        for label in ("A", "B"):
            box = QGroupBox(f"Answer {label}")
            v = QVBoxLayout(box)
            te = QTextEdit()
            te.setReadOnly(True)
            te.setAccessibleName(f"Answer {label}")
            sc = combo(10)
            sc.addItem("no score", None)
            for lv in RUBRIC:
                sc.addItem(f"{lv.score} {lv.label}", lv.score)
                sc.setItemData(sc.count() - 1, lv.definition, Qt.ItemDataRole.ToolTipRole)
            sc.setToolTip("Optional: a rubric score for this answer")
            flag = QCheckBox("Hallucination")
            flag.setToolTip("The answer states something the note does not support (saved with a score)")
            # Three lines whatever the score says, so choosing one never moves the answer boxes.
            text = LinesLabel(3)
            sc.currentIndexChanged.connect(lambda _i, sc=sc, text=text: text.setText(_definition(sc.currentData())))
            srow = QHBoxLayout()
            srow.addWidget(QLabel("Score"))
            srow.addWidget(sc, 1)
            srow.addWidget(flag)
            v.addWidget(te, 1)
            v.addLayout(srow)
            v.addWidget(text)
            answers.addWidget(box)
            self.views.append(te)
            self.scores.append(sc)
            self.flags.append(flag)
            self.rubric_texts.append(text)
        self.rater = RaterChooser(ctx)
        self.vote_btns: dict[str, QPushButton] = {}
        rater_row = QWidget()
        rl = QHBoxLayout(rater_row)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(QLabel("Rater"))
        rl.addWidget(self.rater)
        buttons: list[QWidget] = [rater_row]
        for text, choice in VOTES:
            b = QPushButton(text)
            b.clicked.connect(lambda _c=False, ch=choice: self.vote(ch))
            self.vote_btns[choice] = b
            buttons.append(b)
        self.undo_btn = QPushButton("&Undo vote")
        self.undo_btn.setToolTip("Withdraw this vote (and the scores given with it) to vote again")
        self.undo_btn.clicked.connect(self.undo_vote)
        self.undo_btn.hide()
        buttons.append(self.undo_btn)
        vote = flow(*buttons)
        self.reveal = QLabel(HIDDEN)
        self.reveal.setWordWrap(True)
        self.reveal.setTextFormat(Qt.TextFormat.RichText)
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addWidget(setup)
        answers.setSizes([300, 360, 360])
        lay.addWidget(answers, 1)
        lay.addWidget(vote)
        lay.addWidget(self.reveal)
        # Window-wide like the Ask screen's: Qt ignores shortcuts of hidden screens, so they never clash.
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop)
        self._set_votable(False)
        ctx.models_changed.connect(self.fill_models)
        ctx.engine_changed.connect(self.fill_models)
        self.fill_models()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self.instruction.text():
            self.task_box.setCurrentIndex(self.ask_tab.task_box.currentIndex())
            self.instruction.setText(self.ask_tab.instruction.toPlainText().strip())
        if self.task is None:
            self.show_note()

    def show_note(self) -> None:
        note = self.ask_tab.editor.toPlainText()
        self.note_info.setText(f"From the Ask screen ({len(note):,} characters); edit it there.")
        if note != self.note_view.toPlainText():
            self.note_view.setPlainText(note)

    def fill_models(self) -> None:
        models = sorted(self.ctx.registry.list(), key=lambda m: (not m.is_demo, m.name))
        for i, box in enumerate((self.model_a, self.model_b)):
            keep = box.currentData()
            box.clear()
            for m in models:
                box.addItem(m.display_name, m.sha256)
            idx = box.findData(keep)
            box.setCurrentIndex(idx if idx >= 0 else min(i, len(models) - 1))
        # Never the same model on both sides by default (a second model, if there is one).
        if len(models) > 1 and self.model_a.currentData() == self.model_b.currentData():
            self.model_b.setCurrentIndex(1 if self.model_a.currentIndex() != 1 else 0)

    def _models_chosen(self) -> None:
        """Two entries of one file are allowed: an A/A comparison, said so before it runs."""
        a, b = self.model_a.currentData(), self.model_b.currentData()
        self.same_model.setVisible(a is not None and a == b)

    def _set_votable(self, on: bool) -> None:
        for b in self.vote_btns.values():
            b.setEnabled(on)
        for s, flag, why in zip(self.scores, self.flags, self._why_not_scored(), strict=True):
            flag.setEnabled(on and why is None)
            s.setEnabled(on and why is None)
            s.setToolTip(f"Not rateable: {why}" if why else "Optional: a rubric score for this answer")

    def _why_not_scored(self) -> list[str | None]:
        """Per side, why its answer takes no score (the store's rule: a stopped or failed one); None: it does."""
        if self.pair is None:
            return [None, None]
        return [why_not_rateable("finished", str(o.result.finish_reason), o.result.answer) for o in self.pair]

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

        # Draw which model is A before running; A runs (and streams) first.
        self.order = (0, 1) if self.rng.random() < 0.5 else (1, 0)
        shown = [(first, second)[i] for i in self.order]

        def work(job: Job) -> list[ScreenOutcome]:
            out = []
            for i, info in enumerate(shown):
                if job.cancel.is_set():
                    break
                job.progress(i, 2)
                # Two runs of one question: the second gets its own run uuid.
                o = service.ask(req if i == 0 else req.renewed(), model=info, on_token=job.token, cancel=job.cancel)
                if o.run_id is not None and service.log is not None:
                    service.log.hold_blind([o.run_id])  # in the log: hidden across restarts until the vote
                    job.message(str(o.run_id))
                out.append(ScreenOutcome.of(o, offset))
            return out

        self.pair = None
        self.vote_id, self._vote_ratings, self._seen = None, [], False
        self.undo_btn.hide()
        self.show_note()
        for v, label in zip(self.views, "AB", strict=True):
            v.clear()
            v.parent().setTitle(f"Answer {label}")
        for s, flag in zip(self.scores, self.flags, strict=True):
            s.setCurrentIndex(0)
            flag.setChecked(False)
        self.reveal.setText("Running both models…")
        self._set_votable(False)
        task = Task(work, "compare")
        task.signals.progress.connect(self._next_side)
        task.signals.token.connect(self._stream)
        task.signals.message.connect(lambda rid: self.ctx.blinded_runs.add(int(rid)))
        task.signals.finished.connect(self._answers)
        task.signals.errored.connect(lambda e: self.banner.show_error(describe_error(e)))
        task.signals.done.connect(self._done)
        self.task = task
        self.run_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        return self.ctx.tasks.start(task)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel.set()
            self.reveal.setText("Stopping…")

    def _next_side(self, i: int, n: int) -> None:
        self._stream_to = i
        self.reveal.setText(f"Writing answer {'AB'[i]} ({i + 1} of {n})… · Esc stops")

    def _stream(self, text: str) -> None:
        view = self.views[self._stream_to]
        cur = view.textCursor()
        cur.movePosition(QTextCursor.MoveOperation.End)
        cur.insertText(text)
        view.setTextCursor(cur)

    def _done(self) -> None:
        self.task = None
        self.run_btn.setEnabled(True)
        self.stop_btn.setEnabled(False)
        self.ctx.runs_changed.emit()

    def _answers(self, outcomes: list[ScreenOutcome]) -> None:
        self._done()
        if len(outcomes) < 2:
            self.reveal.setText("Stopped before both answers were ready.")
            return
        if any(o.run_id is None for o in outcomes):
            self.banner.show_error(f"The log is unavailable, so a vote cannot be stored: {self.ctx.log_error}")
        a, b = outcomes  # already in the drawn A/B order
        self.pair = (a, b)
        for view, o, label in zip(self.views, self.pair, "AB", strict=True):
            r = o.result
            view.setPlainText(r.answer or "(empty answer)")
            finish = str(r.finish_reason)
            incomplete = {"length": " · incomplete: length limit", "cancelled": " · incomplete: stopped"}
            view.parent().setTitle(f"Answer {label}{incomplete.get(finish, '')}")
        self.reveal.setText(HIDDEN)
        self._set_votable(all(o.run_id is not None for o in outcomes))
        self.answers_ready.emit()

    def vote(self, choice: str) -> Task | None:
        log, pair, rater = self.ctx.log, self.pair, self.rater.name
        if pair is None or log is None:
            return None
        if not rater:
            self.banner.show_error("Choose yourself in the Rater list before voting (add your name in Settings).")
            return None
        why_not = self._why_not_scored()
        scores = [s.currentData() if why is None else None for s, why in zip(self.scores, why_not, strict=True)]
        flags = [f.isChecked() and score is not None for f, score in zip(self.flags, scores, strict=True)]
        for side, score, flag in zip("AB", scores, flags, strict=True):
            problem = rating_problem(score, flag, None) if score is not None else None
            if problem:  # the store would refuse the score: say so before the vote is cast
                self.banner.show_error(f"Answer {side}: {problem}.")
                return None
        a, b = pair
        blind = not self._seen

        def work(_job: Job) -> tuple[int, list[int]]:
            cid = log.add_comparison(a.run_id, b.run_id, rater, choice, a_side="left", blind=blind)
            rids = [
                log.add_rating(o.run_id, rater, score, hallucination=flag)
                for o, score, flag in zip(pair, scores, flags, strict=True)
                if score
            ]
            return cid, rids

        task = Task(work, "save vote")
        task.signals.finished.connect(lambda res: self._voted(res, choice, blind))
        task.signals.errored.connect(lambda e: self.banner.show_error(f"Vote not saved: {describe_error(e)}"))
        self._set_votable(False)
        return self.ctx.tasks.start(task)

    def _voted(self, res: tuple[int, list[int]], choice: str, blind: bool) -> None:
        cid, self._vote_ratings = res
        self.vote_id, self._seen = cid, True
        a, b = self.pair or (None, None)
        for o in (a, b):
            if o is not None and o.run_id is not None:
                self.ctx.blinded_runs.discard(o.run_id)
        self.undo_btn.show()
        label = dict((c, t) for t, c in VOTES)[choice]
        unblind = "" if blind else " Recorded as not blind (you had seen the models): win rates leave it out."
        if a.model.sha256 == b.model.sha256:
            who = f"<b>A/A comparison</b>: A and B were both <b>{a.model.display_name}</b> (position bias)."
        else:
            who = f"<b>A</b> was <b>{a.model.display_name}</b>; <b>B</b> was <b>{b.model.display_name}</b>."
        self.reveal.setText(f"Saved ({label}). {who}{unblind}")
        self.ctx.runs_changed.emit()
        self.voted.emit(cid)

    def undo_vote(self) -> Task | None:
        """Withdraw the vote just cast (and its scores; the log keeps both, marked withdrawn); the answers
        stay to vote anew, and that vote is recorded as not blind."""
        log, cid, rids = self.ctx.log, self.vote_id, list(self._vote_ratings)
        if log is None or cid is None or self.pair is None:
            return None
        task = Task(lambda _job: log.undo_vote(cid, rids), "undo vote")
        task.signals.finished.connect(lambda _r: self._undone())
        task.signals.errored.connect(lambda e: self.banner.show_error(f"Vote not withdrawn: {describe_error(e)}"))
        self.undo_btn.setEnabled(False)
        return self.ctx.tasks.start(task)

    def _undone(self) -> None:
        self.vote_id, self._vote_ratings = None, []
        self.undo_btn.setEnabled(True)
        self.undo_btn.hide()
        self.reveal.setText(
            "Vote withdrawn (the log keeps it, marked withdrawn). You have seen which model wrote which answer, "
            "so a new vote is recorded as not blind and win rates, which count blind votes only, leave it out."
        )
        self._set_votable(True)
        self.ctx.runs_changed.emit()
        self.undone.emit()

    def flush(self) -> None:
        if self.task is not None:
            self.task.cancel.set()


def _definition(score: int | None) -> str:
    """The rubric's words for a score (``resources.rubric``), shown under the score box."""
    return "" if score is None else f"{score}: {level(score).definition}"

"""The Ask screen: note, context meter, task picker, instruction, streamed answer, grounding, metrics."""

from __future__ import annotations

from itertools import pairwise

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AsclepiusError
from app.core.types import AskRequest, ModelInfo, SamplingParams
from app.qt.answer_view import AnswerView
from app.qt.app_context import AppContext, State
from app.qt.ask_jobs import PromptProgress, ScreenOutcome, ask_all, leading_offset, metrics_line
from app.qt.ask_runs import AskRunsMixin
from app.qt.preread import NotePreread
from app.qt.rate_panel import RatePanel
from app.qt.run_all_panel import RunAllPanel
from app.qt.screen_fit import flow, scrolled
from app.qt.widgets import Banner, ContextMeter, NoteEditor, combo
from app.qt.workers import Task, describe_error
from app.service import AskService, SamplingOverrides, resolve_sampling
from app.store import RunView
from app.store.rules import why_not_rateable
from resources import TASKS, get_task, list_samples, load_sample

BUDGET_DEBOUNCE_MS = 300
"""Recount tokens this long after the last edit: a paste or typing burst costs one tokenization."""


class AskTab(AskRunsMixin, QWidget):
    run_finished = Signal(object)
    """A list of ScreenOutcome after each Ask or Run all tasks."""
    run_failed = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.task: Task | None = None
        self.outcome: ScreenOutcome | None = None
        self.view: RunView | None = None
        self._budget_gen = 0
        self._budget_task: Task | None = None
        self._loaded_text = ""
        """The note text last put in the editor by the app (sample, file, run): replacing it needs no question."""
        self._restoring = False
        self._note_banner = False
        self._asked_note = ""
        self._build()
        self._budget_timer = QTimer(self)
        self._budget_timer.setSingleShot(True)
        self._budget_timer.timeout.connect(self.update_budget)
        self.editor.textChanged.connect(self._note_changed)
        self.instruction.textChanged.connect(self._instruction_changed)
        self.task_box.currentIndexChanged.connect(self._task_changed)
        self.truncate.toggled.connect(self._schedule_budget)
        ctx.engine_changed.connect(self._engine_changed)
        ctx.config_changed.connect(self._schedule_budget)
        self._task_changed()
        self._engine_changed()

    # -- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.banner = Banner()
        self.editor = NoteEditor()
        self.editor.setAccessibleName("Discharge summary")
        self.editor.load_failed.connect(self.banner.show_error)
        self.editor.file_loaded.connect(lambda name: self.banner.show_info(f"Opened {name}", passing=True))
        self.editor.setMinimumWidth(220)
        self.editor.replace_hook = self.replace_note
        self.open_btn = open_btn = QPushButton("&Open note…")
        open_btn.setToolTip("Open a plain-text note (.txt) (Ctrl+O)")
        open_btn.clicked.connect(self.open_note_dialog)
        self.samples = combo(12)
        self.samples.addItem("Sample notes…")
        for name in list_samples():
            self.samples.addItem(load_sample(name).title, name)
        self.samples.activated.connect(self.open_sample)
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.clicked.connect(self.clear_note)
        self.meter = ContextMeter()
        self.preread = NotePreread(self.ctx, self.editor.toPlainText, lambda: self.task is not None, self)
        self.editor.textChanged.connect(self.preread.restart)
        self.truncate = QCheckBox("Truncate the note to fit")
        self.truncate.setToolTip(
            "The cut is reported. Otherwise a note that does not fit is refused: shorten it or lower the answer length"
        )
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("<b>Discharge summary</b>"))
        ll.addWidget(flow(self.samples, open_btn, self.clear_btn))
        ll.addWidget(self.editor, 1)
        ll.addWidget(self.meter)
        ll.addWidget(self.preread.status)
        ll.addWidget(self.truncate)

        self.task_box = combo(12)
        for t in TASKS:
            self.task_box.addItem(t.name, t.name)
        self.task_desc = QLabel()
        self.task_desc.setWordWrap(True)
        self.task_desc.setStyleSheet("color:#555;")
        self.examples = combo(12)
        self.examples.setToolTip("Example instructions for this task")
        self.examples.activated.connect(self._use_example)
        self.instruction = QPlainTextEdit()
        self.instruction.setTabChangesFocus(True)
        self.instruction.setPlaceholderText("Instruction (Ctrl+Enter to ask)")
        self.instruction.setMaximumHeight(70)
        self.instruction.setAccessibleName("Instruction")
        # Short labels, shortcuts in the tooltips: the four buttons stay on one row at 1024x700 (a second row
        # took two lines from the answer box); the instruction's placeholder and the progress line say the keys.
        self.ask_btn = QPushButton("Ask")
        self.ask_btn.setToolTip("Ask this instruction about the note (Ctrl+Enter)")
        self.ask_btn.setDefault(True)
        self.ask_btn.clicked.connect(self.ask)
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setToolTip("Stop the answer (Esc)")
        self.stop_btn.clicked.connect(self.stop)
        self.stop_btn.setEnabled(False)
        self.all_btn = QPushButton("Run all")
        self.all_btn.setToolTip("Run all tasks: each task's standard instruction on this note (processed once)")
        self.all_btn.clicked.connect(self.run_all)
        self.copy_btn = QPushButton("&Copy")
        self.copy_btn.setToolTip("Copy the answer with a provenance footer (model, settings, note hash)")
        self.copy_btn.clicked.connect(self.copy_answer)
        self.copy_btn.setEnabled(False)
        self.answer_view = AnswerView()
        self.answer_view.claim_activated.connect(self.go_to_claim)
        self._note_offset = 0  # where the validated note starts in the editor (leading whitespace)
        av = self.answer_view
        self.answer, self.flags, self.metrics = av.answer, av.flags, av.metrics
        mid = QWidget()
        ml = QVBoxLayout(mid)
        ml.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("<b>Task</b>"))
        row.addWidget(self.task_box, 1)
        ml.addLayout(row)
        ml.addWidget(self.task_desc)
        ml.addWidget(self.examples)
        ml.addWidget(self.instruction)
        ml.addWidget(flow(self.ask_btn, self.stop_btn, self.all_btn, self.copy_btn))
        self.run_all_panel = RunAllPanel()
        self.run_all_panel.finished.connect(self._all_finished)
        self.run_all_panel.failed.connect(self._all_failed)
        self.run_all_panel.rate_run.connect(self.rate_pane_run)
        self.answer_stack = QStackedWidget()
        self.answer_stack.addWidget(self.answer_view)
        self.answer_stack.addWidget(self.run_all_panel)
        ml.addWidget(self.answer_stack, 1)

        self.rate = RatePanel(self.ctx)
        self.rate_area = scrolled(self.rate)
        self._fit_rate_area()
        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.setChildrenCollapsible(False)
        self.split.addWidget(left)
        self.split.addWidget(mid)
        self.split.addWidget(self.rate_area)
        self.split.setCollapsible(2, True)
        self.split.setStretchFactor(0, 5)
        self.split.setStretchFactor(1, 5)
        self.split.setStretchFactor(2, 3)
        self.split.setSizes([560, 560, 320])
        lay = QVBoxLayout(self)
        lay.addWidget(self.split, 1)
        self.banner.float_over(self)  # "Opened note2.txt" must not push the screen down under the pointer

        # Window-wide, but Qt ignores the shortcuts of a hidden screen: Compare's own Esc does not clash.
        for keys, slot in (
            (QKeySequence("Ctrl+Return"), self.ask),
            (QKeySequence("Ctrl+Enter"), self.ask),
            (QKeySequence(Qt.Key.Key_Escape), self.stop),
            (QKeySequence(QKeySequence.StandardKey.Open), self.open_note_dialog),
        ):
            QShortcut(keys, self, slot)
        # Reading order: the note column, then the question and its buttons, then the answer (the Rate
        # panel's controls follow, as created).
        chain = [self.samples, self.open_btn, self.clear_btn, self.editor, self.truncate, self.task_box]
        chain += [self.examples, self.instruction, self.ask_btn, self.stop_btn, self.all_btn, self.copy_btn]
        chain += [self.answer]
        for a, b in pairwise(chain):
            self.setTabOrder(a, b)

    def _fit_rate_area(self) -> None:
        """Wide enough for the panel and a vertical scroll bar: the panel scrolls down, never sideways."""
        bar = self.rate_area.style().pixelMetric(self.rate_area.style().PixelMetric.PM_ScrollBarExtent)
        self.rate_area.setMinimumWidth(self.rate.minimumSizeHint().width() + bar + 4)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            # After the children have the new font too (they get it after this screen does).
            QTimer.singleShot(0, self._fit_rate_area)

    # -- the note: never replaced without asking, an answer never outlives it -----------------------
    def confirm(self, question: str) -> bool:
        """Ask before something replaces text the user typed or pasted (a modal Yes/No, default No)."""
        box = QMessageBox(QMessageBox.Icon.Question, "Replace the note?", question, parent=self)
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def note_is_users(self) -> bool:
        """True when the editor holds text the user typed or pasted (not a sample, file or run as loaded)."""
        text = self.editor.toPlainText()
        return bool(text.strip()) and text != self._loaded_text

    def replace_note(self, text: str, what: str) -> bool:
        """Put ``text`` in the editor (undoable with Ctrl+Z), asking first if it would replace the user's text."""
        current = self.editor.toPlainText()
        if text == current or (text and text.strip() == current.strip()):
            return True  # the same note (the log keeps it without outer whitespace): nothing to replace
        if self.note_is_users() and not self.confirm(
            f"{what} replaces the note in the editor, which you typed or pasted. Replace it? "
            "(Ctrl+Z in the note brings it back.)"
        ):
            return False
        cur = QTextCursor(self.editor.document())
        cur.select(QTextCursor.SelectionType.Document)
        cur.insertText(text)
        self._loaded_text = self.editor.toPlainText()
        # A new note is read from its top: the cursor (and so the view) would stay at the inserted text's end.
        cur.movePosition(QTextCursor.MoveOperation.Start)
        self.editor.setTextCursor(cur)
        self.editor.verticalScrollBar().setValue(0)
        return True

    def clear_note(self) -> bool:
        return self.replace_note("", "Clear")

    def _note_changed(self) -> None:
        if self._note_banner:
            self._note_banner = False
            self.banner.hide()
        self._detach_answer("The note changed: ask again for an answer about this note.")
        self._schedule_budget()

    def _instruction_changed(self) -> None:
        self._detach_answer("The instruction changed: ask again.")
        self._schedule_budget()

    def _detach_answer(self, reason: str) -> None:
        """An answer is only shown with the note, task and instruction it belongs to."""
        if self._restoring or self.task is not None:
            return
        if self.answer_stack.currentWidget() is self.run_all_panel:
            self.show_single(reason)
            return
        if self.outcome is None and self.view is None and not self.answer.toPlainText():
            return
        self.outcome, self.view = None, None
        self.answer_view.clear(reason)
        self.editor.clear_highlights()
        self.rate.set_run(None)
        self.copy_btn.setEnabled(False)

    # -- inputs -----------------------------------------------------------------------------------
    def open_note_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open note", "", "Text files (*.txt);;All files (*)")
        if path:
            self.editor.load_file(path)

    def open_sample(self, index: int) -> None:
        """Load the sample note at ``index`` of the sample picker (asks first if it would replace the user's text)."""
        name = self.samples.itemData(index)
        self.samples.setCurrentIndex(0)
        if name:
            self.replace_note(load_sample(name).text, "Loading a sample note")

    def _task_changed(self) -> None:
        t = get_task(self.task_box.currentData())
        self.task_desc.setText(t.description)
        self.examples.clear()
        self.examples.addItem("Example instructions…")
        self.examples.addItems(list(t.examples))
        if not self.instruction.toPlainText().strip() or self._instruction_is_example():
            self.instruction.setPlainText(t.standard_instruction)
        self._detach_answer("The task changed: ask again.")
        self._schedule_budget()

    def _instruction_is_example(self) -> bool:
        text = self.instruction.toPlainText().strip()
        return any(text in t.examples for t in TASKS)

    def _use_example(self, index: int) -> None:
        if index > 0:
            self.instruction.setPlainText(self.examples.itemText(index))
        self.examples.setCurrentIndex(0)

    def set_task(self, name: str) -> None:
        i = self.task_box.findData(get_task(name).name)
        self.task_box.setCurrentIndex(max(i, 0))

    def max_tokens(self) -> int:
        return self.sampling().max_tokens

    def sampling(self) -> SamplingParams:
        """This task's settings under the service's one rule (the Settings screen's values, the task's cap)."""
        return resolve_sampling(self.task_box.currentData(), self.ctx.config.generation)

    # -- context meter ----------------------------------------------------------------------------
    def _schedule_budget(self) -> None:
        self._budget_timer.start(BUDGET_DEBOUNCE_MS)

    def update_budget(self) -> Task | None:
        """Count tokens in a worker; only the latest request's answer is shown."""
        engine = self.ctx.engine
        if engine is None:
            self.meter.set_message(f"Context: {self.ctx.engine_message or 'waiting for the model'}")
            return None
        note, instr, task_name = self.editor.toPlainText(), self.instruction.toPlainText(), self.task_box.currentData()
        if not note.strip():
            self.meter.set_message(f"Context: empty note · the model's context is {engine.n_ctx:,} tokens")
            return None
        self._budget_gen += 1
        gen = self._budget_gen

        service = self.ctx.service()

        def work(_job):
            return service.budget(note, task_name, instr)

        task = Task(work, "count tokens")
        truncate = self.truncate.isChecked()
        task.signals.finished.connect(lambda b: gen == self._budget_gen and self.meter.set_budget(b, truncate))
        task.signals.errored.connect(lambda e: gen == self._budget_gen and self.meter.set_message(describe_error(e)))
        self._budget_task = self.ctx.tasks.start(task)
        return task

    def _engine_changed(self) -> None:
        ready = self.ctx.engine_state is State.READY
        self._set_running(self.task is not None)
        self.ask_btn.setToolTip("" if ready else f"The model is not ready: {self.ctx.engine_message}")
        self._schedule_budget()

    # -- asking -----------------------------------------------------------------------------------
    def _set_running(self, running: bool) -> None:
        ready = self.ctx.engine_state is State.READY
        self.ask_btn.setEnabled(ready and not running)
        self.all_btn.setEnabled(ready and not running)
        self.stop_btn.setEnabled(running)
        # The answer being written belongs to this note, task and instruction: they stay as they are.
        self.editor.setReadOnly(running)
        for w in (self.task_box, self.examples, self.samples, self.clear_btn):
            w.setEnabled(not running)
        self.instruction.setReadOnly(running)

    def ask(self, *, explicit: SamplingOverrides | None = None, model: ModelInfo | None = None) -> Task | None:
        """Ask the instruction about the note; ``explicit`` sampling values win over the Settings (re-run)."""
        if not self.instruction.toPlainText().strip():
            self.banner.show_error("Write an instruction first (or pick an example).")
            return None
        return self._start([(self.task_box.currentData(), self.instruction.toPlainText())], explicit, model)

    def show_single(self, reason: str = "") -> None:
        """Back from Run all tasks' panes to the one-answer view (and its Rate panel)."""
        if self.answer_stack.currentWidget() is self.run_all_panel:
            self.rate.set_run(None)  # a pane's run is rated no more once its panes go
        self.answer_stack.setCurrentWidget(self.answer_view)
        self.rate_area.show()
        self.answer_view.clear(reason)

    def _start(
        self,
        questions: list[tuple[str, str]],
        explicit: SamplingOverrides | None = None,
        model: ModelInfo | None = None,
    ) -> Task | None:
        if self.task is not None:
            return None
        requests = self._requests(questions, explicit)
        if requests is None:
            return None
        note, service = self.editor.toPlainText(), self.ctx.service()
        self.show_single()
        self._forget_answer()
        self.answer_view.set_header(requests[0].task, requests[0].instruction)
        offset = leading_offset(note)
        task = Task(lambda job: ask_all(job, service, requests, model, note_offset=offset), "ask")
        task.signals.token.connect(self._append)
        task.signals.info.connect(self._prompt_info)
        task.signals.finished.connect(self._finished)
        task.signals.errored.connect(self._failed)
        self._first_token = True
        self._start_progress(model)
        return self._launch(task, service, note, "This run")

    def run_all(self) -> Task | None:
        """Each task's standard instruction about the note, answered together, one pane per task."""
        if self.task is not None:
            return None
        requests = self._requests([(t.name, t.standard_instruction) for t in TASKS], None)
        if requests is None:
            return None
        note, service = self.editor.toPlainText(), self.ctx.service()
        self._forget_answer()
        self.answer_view.clear()
        task = self.run_all_panel.begin(service, requests, note)
        self.answer_stack.setCurrentWidget(self.run_all_panel)
        self.rate_area.hide()  # nothing to rate while the panes run: the room goes to the answers
        return self._launch(task, service, note, "These runs")

    def _forget_answer(self) -> None:
        """A new run starts: nothing of the previous answer stays rateable, highlighted or copyable."""
        self.rate.set_run(None)
        self.editor.clear_highlights()
        self.outcome, self.view = None, None
        self.copy_btn.setEnabled(False)

    def _launch(self, task: Task, service: AskService, note: str, what: str) -> Task:
        """Start an Ask or Run all tasks: the inputs lock until the task's ``done``."""
        # Only if no newer run started meanwhile (a run_finished listener may ask again at once).
        task.signals.done.connect(lambda t=task: self.task is t and self._done())
        self.preread.cancel()  # the run continues from what was read; another note's run waits for nothing
        self.task = task
        self._set_running(True)
        self._asked_note = note
        if service.log is None:
            self.banner.show_error(f"{what} will not be saved: {service.log_unavailable}")
        return self.ctx.tasks.start(task)

    def _requests(
        self, questions: list[tuple[str, str]], explicit: SamplingOverrides | None
    ) -> list[AskRequest] | None:
        """The service checks the note, task, instruction and sampling once, before any work."""
        if self.ctx.engine_state is not State.READY or self.ctx.engine is None:
            self.banner.show_error(f"The model is not ready yet: {self.ctx.engine_message}")
            return None
        note, truncate, service = self.editor.toPlainText(), self.truncate.isChecked(), self.ctx.service()
        try:
            requests = [
                service.request(note, task, instr, explicit=explicit, truncate=truncate) for task, instr in questions
            ]
        except AsclepiusError as exc:
            self.banner.show_error(str(exc))
            self._note_banner = True  # goes away as soon as the note changes
            return None
        self.banner.hide()
        return requests

    def _prompt_info(self, p: PromptProgress) -> None:
        """The worker counted the prompt on the engine that runs it (another model on a Re-run)."""
        if self.task is not None and self._first_token:
            self.answer_view.set_token_source(lambda: p.engine.evaluated_tokens, p.tokens)

    def _start_progress(self, model: ModelInfo | None) -> None:
        """Percent and elapsed time while the note is processed, from the engine's evaluated-token count
        (llama.cpp advances it after each batch); elapsed time alone where that count is not ours to read."""
        engine = self.ctx.engine
        b = self.meter.budget
        same_engine = engine is not None and (model is None or model.sha256 == engine.model.sha256)
        prompt = None
        if b is not None and self.budget_is_current():
            prompt = min(b.total, b.n_ctx) - b.reserved_answer_tokens
        if same_engine and prompt:
            self.answer_view.start_progress("Processing the note", lambda: engine.evaluated_tokens, prompt)
        elif not same_engine and model is not None:
            # The worker loads that model first; the percent appears once it has counted the prompt there.
            self.answer_view.start_progress(f"{model.display_name}: loading, then processing the note")
        else:
            self.answer_view.start_progress("Processing the note")

    def budget_is_current(self) -> bool:
        """True when the context meter counts the inputs as they are now (no count pending or running)."""
        return not self._budget_timer.isActive() and (
            self._budget_task is None or self._budget_task.finished_flag.is_set()
        )

    def stop(self) -> None:
        if self.task is None:
            return
        if self.answer_stack.currentWidget() is self.run_all_panel:
            self.run_all_panel.stop_all()
        else:
            self.task.cancel.set()
            self.answer_view.set_phase("Stopping")

    def _append(self, text: str) -> None:
        if self._first_token and self.answer_view.progress.isVisible():
            self._first_token = False
            self.answer_view.set_phase("Writing the answer")
        cur = self.answer.textCursor()
        cur.movePosition(QTextCursor.MoveOperation.End)
        cur.insertText(text)
        self.answer.setTextCursor(cur)

    def _done(self) -> None:
        self.task = None
        self.answer_view.stop_progress()
        self._set_running(False)

    def _failed(self, exc: BaseException) -> None:
        self._done()  # before anyone hears of it, so a listener may ask again at once
        msg = failure_message(exc)
        self.answer_view.clear()
        self.banner.show_error(msg)
        self.run_failed.emit(msg)
        self.ctx.runs_changed.emit()

    def _all_finished(self, outcomes: list[ScreenOutcome]) -> None:
        self._done()  # before anyone hears of it, so a listener may run again at once
        self.ctx.runs_changed.emit()
        if outcomes and outcomes[-1].result.truncation:
            self.banner.show_info(outcomes[-1].result.truncation.message)
        self.run_finished.emit(outcomes)

    def _all_failed(self, exc: BaseException) -> None:
        self._done()
        msg = failure_message(exc)
        self.run_all_panel.finish(None, f"Run all tasks failed: {msg}")
        self.banner.show_error(msg)
        self.ctx.runs_changed.emit()
        self.run_failed.emit(msg)

    def _finished(self, outcomes: list[ScreenOutcome]) -> None:
        self._done()
        self.ctx.runs_changed.emit()
        if not outcomes:
            self.answer_view.clear("Stopped before the first answer.")
            self.run_finished.emit(outcomes)
            return
        last = outcomes[-1]
        if self.view is not None or self._asked_note != self.editor.toPlainText():
            # A run was opened from History while this one was stopping: its answer belongs to another note.
            self.run_finished.emit(outcomes)
            return
        self._show_outcome(last)
        if last.result.truncation:
            self.banner.show_info(last.result.truncation.message)
        self.run_finished.emit(outcomes)

    def _show_outcome(self, o: ScreenOutcome) -> None:
        self.outcome = o
        r = o.result
        self.answer_view.set_header(r.task, r.instruction)
        self.answer.setPlainText(r.answer)
        self.metrics.setText(metrics_line(o.model, r))
        self.show_grounding(o.report, o.note_offset)
        finish = str(r.finish_reason)
        self.answer_view.mark_incomplete(finish, r.sampling.max_tokens, empty=not r.answer.strip())
        why = why_not_rateable("finished", finish, r.answer)  # the service returns only ended runs
        self.rate.set_run(o.run_id if why is None else None, why_not=why or "")
        self.copy_btn.setEnabled(bool(r.answer))


def failure_message(exc: BaseException) -> str:
    """An Ask or Run all tasks failure as the banner says it."""
    # The core's refusal names the CLI flag; here the same choice is a checkbox.
    return describe_error(exc).replace("truncate the note explicitly", "tick “Truncate the note to fit”")

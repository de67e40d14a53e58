"""The Ask screen: note, context meter, task picker, instruction, streamed answer, grounding, metrics."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AsclepiusError
from app.core.types import GroundingReport, ModelInfo, SamplingParams
from app.qt.appstate import AppContext, State
from app.qt.asking import Outcome, ask_all, leading_offset, metrics_line, provenance_footer
from app.qt.rate_panel import RatePanel
from app.qt.widgets import Banner, ContextMeter, NoteEditor, combo
from app.qt.workers import Task, describe_error
from app.service import SamplingOverrides, ground, resolve_sampling
from app.store import RunView
from resources import TASKS, get_task, list_samples, load_sample

BUDGET_DEBOUNCE_MS = 300
"""Recount tokens this long after the last edit: a paste or typing burst costs one tokenization."""


class AskTab(QWidget):
    run_finished = Signal(object)
    """A list of Outcome after each Ask or Run all tasks."""
    run_failed = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.task: Task | None = None
        self.outcome: Outcome | None = None
        self.view: RunView | None = None
        self._budget_gen = 0
        self._budget_task: Task | None = None
        self._build()
        self._budget_timer = QTimer(self)
        self._budget_timer.setSingleShot(True)
        self._budget_timer.timeout.connect(self.update_budget)
        self.editor.textChanged.connect(self._schedule_budget)
        self.instruction.textChanged.connect(self._schedule_budget)
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
        self.editor.file_loaded.connect(lambda name: self.banner.show_info(f"Opened {name}"))
        open_btn = QPushButton("&Open note…")
        open_btn.setToolTip("Open a plain-text note (.txt) (Ctrl+O)")
        open_btn.clicked.connect(self.open_note_dialog)
        self.samples = combo()
        self.samples.addItem("Sample notes…")
        for name in list_samples():
            self.samples.addItem(load_sample(name).title, name)
        self.samples.activated.connect(self._load_sample)
        clear_btn = QPushButton("Clear")
        clear_btn.clicked.connect(self.editor.clear)
        top = QHBoxLayout()
        top.addWidget(QLabel("<b>Discharge summary</b>"))
        top.addStretch(1)
        top.addWidget(self.samples)
        top.addWidget(open_btn)
        top.addWidget(clear_btn)
        self.meter = ContextMeter()
        self.truncate = QCheckBox("Truncate the note to fit (the cut is reported)")
        self.truncate.setToolTip("Otherwise a note that does not fit is refused: shorten it or lower the answer length")
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(top)
        ll.addWidget(self.editor, 1)
        ll.addWidget(self.meter)
        ll.addWidget(self.truncate)

        self.task_box = combo()
        for t in TASKS:
            self.task_box.addItem(t.name, t.name)
        self.task_desc = QLabel()
        self.task_desc.setWordWrap(True)
        self.task_desc.setStyleSheet("color:#555;")
        self.examples = combo()
        self.examples.setToolTip("Example instructions for this task")
        self.examples.activated.connect(self._use_example)
        self.instruction = QPlainTextEdit()
        self.instruction.setTabChangesFocus(True)
        self.instruction.setPlaceholderText("Instruction (Ctrl+Enter to ask)")
        self.instruction.setMaximumHeight(70)
        self.instruction.setAccessibleName("Instruction")
        self.ask_btn = QPushButton("Ask  (Ctrl+Enter)")
        self.ask_btn.setDefault(True)
        self.ask_btn.clicked.connect(self.ask)
        self.stop_btn = QPushButton("Stop  (Esc)")
        self.stop_btn.clicked.connect(self.stop)
        self.stop_btn.setEnabled(False)
        self.all_btn = QPushButton("Run all tasks")
        self.all_btn.setToolTip("Ask each task's standard instruction on this note (the note is processed once)")
        self.all_btn.clicked.connect(self.run_all)
        self.copy_btn = QPushButton("&Copy answer")
        self.copy_btn.setToolTip("Copy the answer with a provenance footer")
        self.copy_btn.clicked.connect(self.copy_answer)
        self.copy_btn.setEnabled(False)
        btns = QHBoxLayout()
        for b in (self.ask_btn, self.stop_btn, self.all_btn):
            btns.addWidget(b)
        btns.addStretch(1)
        btns.addWidget(self.copy_btn)
        self.answer = QTextEdit()
        self.answer.setReadOnly(True)
        self.answer.setAcceptRichText(False)
        self.answer.setPlaceholderText("The answer streams in here.")
        self.answer.setAccessibleName("Answer")
        self.flags = QLabel()
        self.flags.setWordWrap(True)
        self.flags.setTextFormat(Qt.TextFormat.RichText)
        self.metrics = QLabel()
        self.metrics.setWordWrap(True)
        self.metrics.setStyleSheet("color:#444;")
        self.metrics.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
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
        ml.addLayout(btns)
        ml.addWidget(QLabel("<b>Answer</b>"))
        ml.addWidget(self.answer, 1)
        ml.addWidget(self.flags)
        ml.addWidget(self.metrics)

        self.rate = RatePanel(self.ctx)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(mid)
        split.addWidget(self.rate)
        split.setStretchFactor(0, 5)
        split.setStretchFactor(1, 5)
        split.setStretchFactor(2, 3)
        split.setSizes([560, 560, 320])
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addWidget(split, 1)

        QShortcut(QKeySequence("Ctrl+Return"), self, self.ask)
        QShortcut(QKeySequence("Ctrl+Enter"), self, self.ask)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop)
        QShortcut(QKeySequence.StandardKey.Open, self, self.open_note_dialog)
        self.setTabOrder(self.editor, self.task_box)
        self.setTabOrder(self.task_box, self.examples)
        self.setTabOrder(self.examples, self.instruction)
        self.setTabOrder(self.instruction, self.ask_btn)

    # -- inputs -----------------------------------------------------------------------------------
    def open_note_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open note", "", "Text files (*.txt);;All files (*)")
        if path:
            self.editor.load_file(path)

    def _load_sample(self, index: int) -> None:
        name = self.samples.itemData(index)
        if name:
            self.editor.setPlainText(load_sample(name).text)
        self.samples.setCurrentIndex(0)

    def _task_changed(self) -> None:
        t = get_task(self.task_box.currentData())
        self.task_desc.setText(t.description)
        self.examples.clear()
        self.examples.addItem("Example instructions…")
        self.examples.addItems(list(t.examples))
        if not self.instruction.toPlainText().strip() or self._instruction_is_example():
            self.instruction.setPlainText(t.standard_instruction)
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
        task.signals.finished.connect(lambda b: gen == self._budget_gen and self.meter.set_budget(b))
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

    def ask(self, *, explicit: SamplingOverrides | None = None, model: ModelInfo | None = None) -> Task | None:
        """Ask the instruction about the note; ``explicit`` sampling values win over the Settings (re-run)."""
        if not self.instruction.toPlainText().strip():
            self.banner.show_error("Write an instruction first (or pick an example).")
            return None
        return self._start([(self.task_box.currentData(), self.instruction.toPlainText())], explicit, model)

    def run_all(self) -> Task | None:
        return self._start([(t.name, t.standard_instruction) for t in TASKS], headers=True)

    def _start(
        self,
        questions: list[tuple[str, str]],
        explicit: SamplingOverrides | None = None,
        model: ModelInfo | None = None,
        *,
        headers: bool = False,
    ) -> Task | None:
        if self.task is not None:
            return None
        if self.ctx.engine_state is not State.READY or self.ctx.engine is None:
            self.banner.show_error(f"The model is not ready yet: {self.ctx.engine_message}")
            return None
        note, truncate, service = self.editor.toPlainText(), self.truncate.isChecked(), self.ctx.service()
        try:  # the service checks the note, task, instruction and sampling once, before any work
            requests = [
                service.request(note, task, instr, explicit=explicit, truncate=truncate) for task, instr in questions
            ]
        except AsclepiusError as exc:
            self.banner.show_error(str(exc))
            return None
        self.banner.hide()
        self.rate.set_run(None)
        self.editor.clear_highlights()
        self.answer.clear()
        self.flags.clear()
        self.outcome, self.view = None, None
        self.copy_btn.setEnabled(False)
        offset = leading_offset(note)
        task = Task(lambda job: ask_all(job, service, requests, model, headers=headers, note_offset=offset), "ask")
        task.signals.token.connect(self._append)
        task.signals.progress.connect(
            lambda d, n: self.metrics.setText(f"Running all tasks: {d} of {n} done…" if d < n else "")
        )
        task.signals.finished.connect(self._finished)
        task.signals.errored.connect(self._failed)
        task.signals.done.connect(self._done)
        self.task = task
        self._set_running(True)
        self.metrics.setText("Processing the note…")
        if service.log is None:
            self.banner.show_error(f"This run will not be saved: {service.log_unavailable}")
        return self.ctx.tasks.start(task)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel.set()
            self.metrics.setText("Stopping…")

    def _append(self, text: str) -> None:
        cur = self.answer.textCursor()
        cur.movePosition(QTextCursor.MoveOperation.End)
        cur.insertText(text)
        self.answer.setTextCursor(cur)

    def _done(self) -> None:
        self.task = None
        self._set_running(False)

    def _failed(self, exc: BaseException) -> None:
        self._done()  # before anyone hears of it, so a listener may ask again at once
        # The core's refusal names the CLI flag; here the same choice is a checkbox.
        msg = describe_error(exc).replace("truncate the note explicitly", "tick “Truncate the note to fit”")
        self.metrics.setText("")
        self.banner.show_error(msg)
        self.run_failed.emit(msg)
        self.ctx.runs_changed.emit()

    def _finished(self, outcomes: list[Outcome]) -> None:
        self._done()
        self.ctx.runs_changed.emit()
        if not outcomes:
            self.metrics.setText("Stopped before the first answer.")
            self.run_finished.emit(outcomes)
            return
        last = outcomes[-1]
        if len(outcomes) == 1:
            self._show_outcome(last)
        else:
            self.metrics.setText(
                f"Ran {len(outcomes)} tasks · {sum(o.result.completion_tokens for o in outcomes)} tokens · "
                f"{sum(o.result.total_s for o in outcomes):.1f} s · open a run from History to rate it"
            )
        if last.result.truncation:
            self.banner.show_info(last.result.truncation.message)
        self.run_finished.emit(outcomes)

    def _show_outcome(self, o: Outcome) -> None:
        self.outcome = o
        self.answer.setPlainText(o.result.answer)
        self.metrics.setText(metrics_line(o.model, o.result))
        self._show_grounding(o.report, o.note_offset)
        self.rate.set_run(o.run_id)
        self.copy_btn.setEnabled(bool(o.result.answer))

    # -- grounding --------------------------------------------------------------------------------
    def _show_grounding(self, report: GroundingReport, offset: int) -> None:
        spans = [sp for s in report.supported for sp in s.note_spans]
        self.editor.highlight(spans, offset)
        found_fmt, missing_fmt = QTextCharFormat(), QTextCharFormat()
        found_fmt.setBackground(QColor("#c8ecc9"))
        missing_fmt.setBackground(QColor("#ffd6d1"))
        missing_fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        missing_fmt.setUnderlineColor(QColor("#b3261e"))
        sels = []
        for s in report.spans:
            sel = QTextEdit.ExtraSelection()
            cur = QTextCursor(self.answer.document())
            cur.setPosition(s.answer_start)
            cur.setPosition(s.answer_end, QTextCursor.MoveMode.KeepAnchor)
            sel.cursor, sel.format = cur, found_fmt if s.found else missing_fmt
            sels.append(sel)
        self.answer.setExtraSelections(sels)
        missing = report.unsupported
        if not report.spans:
            self.flags.setText("<span style='color:#555'>No numbers, dates, doses or terms to check.</span>")
        elif missing:
            items = ", ".join(f"<b>{_esc(s.text)}</b> ({s.kind})" for s in missing)
            self.flags.setText(
                f"<span style='color:#b3261e'>⚠ Not found in the note — check these: {items}</span>"
                f"<br><span style='color:#555'>{len(report.supported)} of {len(report.spans)} checked facts "
                "found (highlighted green in the note).</span>"
            )
        else:
            self.flags.setText(
                f"<span style='color:#1e6b2a'>✓ All {len(report.spans)} checked facts appear in the note "
                "(highlighted green).</span>"
            )

    # -- history ----------------------------------------------------------------------------------
    def show_run(self, view: RunView) -> None:
        """Restore a logged run: note (when the log kept it), task, instruction, answer, metrics, rating."""
        self.stop()
        self.banner.hide()
        if view.note_text is not None:
            self.editor.setPlainText(view.note_text)
        else:
            self.banner.show_info(
                f"The log keeps only this note's sha256 ({view.note_sha256[:12]}…), not its text: paste the "
                "note to see the highlights."
            )
        self.set_task(view.task)
        self.instruction.setPlainText(view.instruction)
        self.answer.setPlainText(view.answer or "")
        self.outcome, self.view = None, view
        self.metrics.setText(metrics_line(f"{view.model_name} [{view.model_sha256[:8]}]", view))
        if view.error:
            self.banner.show_error(f"This run failed: {view.error}")
        note = self.editor.toPlainText()
        report = GroundingReport(())
        if view.answer and view.note_text is not None:
            # The log stores the validated note, so it is the text the model saw (cut where it was cut).
            report = ground(view.answer, view.note_text, (view.truncation or {}).get("kept_chars"))
        self._show_grounding(report, leading_offset(note))
        self.copy_btn.setEnabled(bool(view.answer))
        self.rate.set_run(view.id if view.status == "finished" else None)

    def rerun(self, view: RunView) -> Task | None:
        """Ask again with the run's model and sampling settings."""
        self.show_run(view)
        info = self.ctx.registry.find(view.model_sha256)
        if info is None:
            self.banner.show_error(f"The model of this run ({view.model_file}) is not in the registry: import it.")
            return None
        return self.ask(explicit=SamplingOverrides.of(SamplingParams(**view.sampling)), model=info)

    def copy_answer(self) -> str:
        if self.outcome is not None:
            o = self.outcome
            text = provenance_footer(o.result.answer, o.model.display_name, o.result, o.report)
        elif self.view is not None and self.view.answer:
            v = self.view
            text = provenance_footer(v.answer or "", f"{v.model_name} ({v.model_quant})", v, None)
        else:
            return ""
        QApplication.clipboard().setText(text)
        self.metrics.setText(self.metrics.text().split(" · copied")[0] + " · copied with provenance")
        return text


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

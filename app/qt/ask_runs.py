"""The Ask screen's answers as logged runs: grounding highlights and going to a claim, a run opened from
History (or one pane of Run all tasks rated beside the grid), re-running one, and copying with provenance.

A mixin of :class:`app.qt.ask_tab.AskTab` (split out to keep that module a readable size): it uses the
screen's widgets (``editor``, ``answer_view``, ``rate``, ``banner``, ...) and its note/answer state.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication

from app.core.grounding import GroundingReport
from app.core.types import SamplingParams
from app.qt.answer_view import claim_note_spans, note_highlights
from app.qt.ask_jobs import leading_offset, metrics_line, provenance_footer
from app.qt.workers import Task, describe_error
from app.service import SamplingOverrides
from app.store import RunView
from app.store.rules import why_not_rateable


class AskRunsMixin:
    """Logged runs on the Ask screen (see the module docstring); ``AskTab`` supplies the widgets."""

    ctx: Any
    editor: Any
    answer: Any
    answer_view: Any
    metrics: Any
    rate: Any
    rate_area: Any
    banner: Any
    copy_btn: Any
    instruction: Any
    outcome: Any
    view: RunView | None
    _note_offset: int
    _restoring: bool

    # -- grounding --------------------------------------------------------------------------------
    def show_grounding(self, report: GroundingReport, offset: int) -> None:
        self._note_offset = offset
        self.editor.highlight(note_highlights(report), offset)
        self.answer_view.show_grounding(report)

    def go_to_claim(self, index: int) -> None:
        """Show a flagged claim: select where its parts are in the note, else the claim in the answer."""
        report = self.answer_view.report
        if report is None or not 0 <= index < len(report.claims):
            return
        claim = report.claims[index]
        spans = claim_note_spans(claim)
        doc_len = self.editor.document().characterCount()
        target, start, end = (self.editor, *spans[0]) if spans else (self.answer, claim.answer_start, claim.answer_end)
        if target is self.editor:
            start, end = start + self._note_offset, end + self._note_offset
            if not 0 <= start < end <= doc_len:  # the note was edited since: show the claim instead
                target, start, end = self.answer, claim.answer_start, claim.answer_end
        cur = QTextCursor(target.document())
        cur.setPosition(start)
        cur.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        target.setTextCursor(cur)
        target.ensureCursorVisible()

    # -- history ----------------------------------------------------------------------------------
    def show_run(self, view: RunView) -> bool:
        """Restore a logged run: note (when the log kept it), task, instruction, answer, metrics, rating."""
        self.stop()
        if view.note_text is not None and not self.replace_note(view.note_text, "Opening a run from History"):
            return False
        self.show_single()
        self.banner.hide()
        self._restoring = True
        if view.note_text is None:
            self.banner.show_info(
                f"The log keeps only this note's sha256 ({view.note_sha256[:12]}…), not its text: paste the "
                "note to see the highlights."
            )
        try:
            self.set_task(view.task)
            self.instruction.setPlainText(view.instruction)
        finally:
            self._restoring = False
        self.answer_view.clear()
        self.answer_view.set_header(view.task, view.instruction)
        self.answer.setPlainText(view.answer or "")
        self.outcome, self.view = None, view
        self.metrics.setText(metrics_line(f"{view.model_name} [{view.model_sha256[:8]}]", view))
        if view.error:
            self.banner.show_error(f"This run failed: {view.error}")
        note = self.editor.toPlainText()
        report = GroundingReport()
        if view.answer and view.note_text is not None:
            # The log stores the validated note, so it is the text the model saw (cut where it was cut).
            kept = (view.truncation or {}).get("kept_chars")
            report = self.ctx.service().ground(view.answer, view.note_text, kept, view.task, view.instruction)
        elif view.answer and view.grounding:
            # Hash-only log: the stored report (answer offsets hold; its note offsets have no text to land on).
            report = GroundingReport.from_dict(view.grounding)
        self.show_grounding(report, leading_offset(note))
        self.copy_btn.setEnabled(bool(view.answer))
        finish = view.finish_reason or ("error" if view.error else "")
        self.answer_view.mark_incomplete(finish, (view.sampling or {}).get("max_tokens"), empty=not view.answer)
        why = why_not_rateable(view.status, finish, view.answer)
        self.rate.set_run(view.id if why is None else None, why_not=why or "")
        if self.isVisible():  # never leave the focus on a rating button, where Space would rate unasked
            self.answer.setFocus(Qt.FocusReason.OtherFocusReason)
        return True

    def rerun(self, view: RunView) -> Task | None:
        """Ask again with the run's model and sampling settings."""
        if not self.show_run(view):
            return None
        info = self.ctx.registry.find(view.model_sha256)
        if info is None:
            self.banner.show_error(f"The model of this run ({view.model_file}) is not in the registry: import it.")
            return None
        return self.ask(explicit=SamplingOverrides.of(SamplingParams(**view.sampling)), model=info)

    def rate_pane_run(self, run_id: int, task: str) -> None:
        """Rate one of Run all tasks' runs beside the grid: the Rate panel shows (the one rating code path:
        autosave, the store's rules) and the panes stay, so the next one is a click away."""
        self.rate_area.show()
        self.rate.set_run(run_id, subject=f"{task} (run {run_id})")

    def open_run_id(self, run_id: int) -> Task | None:
        """Open one of Run all tasks' runs on its own (highlights, Rate panel): read in a worker."""
        log = self.ctx.log
        if log is None:
            return None
        task = Task(lambda _job: log.get_run(run_id), "read run")
        task.signals.finished.connect(lambda v: v is not None and self.show_run(v))
        task.signals.errored.connect(lambda e: self.banner.show_error(describe_error(e)))
        return self.ctx.tasks.start(task)

    def copy_answer(self) -> str:
        if self.outcome is not None:
            o = self.outcome
            text = provenance_footer(o.result.answer, o.model.display_name, o.result, o.report)
        elif self.view is not None and self.view.answer:
            v = self.view
            text = provenance_footer(v.answer or "", f"{v.model_name} ({v.model_quant})", v, self.answer_view.report)
        else:
            return ""
        QApplication.clipboard().setText(text)
        self.metrics.setText(self.metrics.text().split(" · copied")[0] + " · copied with provenance")
        return text

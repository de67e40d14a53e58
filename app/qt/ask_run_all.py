"""Run all tasks on the Ask screen: the controller half (``RunAllView`` in app/qt/run_all.py is the view).

A mixin of ``AskTab``: it uses the tab's editor, banner, Rate panel, task runner and ``_requests``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from app.qt.asking import Outcome, ask_each, leading_offset
from app.qt.workers import Task, describe_error
from resources import TASKS

if TYPE_CHECKING:
    from app.qt.ask_tab import AskTab


class RunAllMixin:
    def run_all(self: AskTab) -> Task | None:
        """Each task's standard instruction about the note, answered together, one pane per task."""
        if self.task is not None:
            return None
        requests = self._requests([(t.name, t.standard_instruction) for t in TASKS], None)
        if requests is None:
            return None
        note, service, view = self.editor.toPlainText(), self.ctx.service(), self.run_all_view
        self.rate.set_run(None)
        self.editor.clear_highlights()
        self.answer_view.clear()
        self.outcome, self.view = None, None
        self.copy_btn.setEnabled(False)
        self._cancels = [threading.Event() for _ in requests]
        cancels, offset = self._cancels, leading_offset(note)
        view.start(requests, note)
        self.answer_stack.setCurrentWidget(view)
        self.rate_area.hide()  # nothing to rate while the panes run: the room goes to the answers
        task = Task(lambda job: ask_each(job, service, requests, cancels, note_offset=offset), "run all tasks")
        task.signals.piece.connect(lambda i, text: view.panes[i].append(text))
        task.signals.item.connect(self._item)
        task.signals.info.connect(lambda p: view.set_prompt_progress(lambda: p.engine.evaluated_tokens, p.tokens))
        task.signals.finished.connect(self._all_finished)
        task.signals.errored.connect(self._all_failed)
        # Only if no newer run started meanwhile (a run_finished listener may ask again at once).
        task.signals.done.connect(lambda t=task: self.task is t and self._done())
        self.task = task
        self._set_running(True)
        self._asked_note = note
        if service.log is None:
            self.banner.show_error(f"These runs will not be saved: {service.log_unavailable}")
        return self.ctx.tasks.start(task)

    def _item(self: AskTab, i: int, event: str) -> None:
        pane = self.run_all_view.panes[i]
        if event == "start":
            pane.started()
        else:
            pane.done()
        self.run_all_view.tick()

    def stop_one(self: AskTab, i: int) -> None:
        """Stop one task's answer; the others go on."""
        if self.task is not None and i < len(self._cancels):
            self._cancels[i].set()
            self.run_all_view.panes[i].stopping = True
            self.run_all_view.tick()

    def _all_finished(self: AskTab, outcomes: list[Outcome]) -> None:
        self._done()  # before anyone hears of it, so a listener may run again at once
        self.ctx.runs_changed.emit()
        self.run_all_view.finish(outcomes)
        if outcomes and outcomes[-1].result.truncation:
            self.banner.show_info(outcomes[-1].result.truncation.message)
        self.run_finished.emit(outcomes)

    def _all_failed(self: AskTab, exc: BaseException) -> None:
        self._done()
        msg = describe_error(exc).replace("truncate the note explicitly", "tick “Truncate the note to fit”")
        self.run_all_view.finish(None, f"Run all tasks failed: {msg}")
        self.banner.show_error(msg)
        self.ctx.runs_changed.emit()
        self.run_failed.emit(msg)

    def open_run_id(self: AskTab, run_id: int) -> Task | None:
        """Open one of Run all tasks' runs on its own (highlights, Rate panel): read in a worker."""
        log = self.ctx.log
        if log is None:
            return None
        task = Task(lambda _job: log.get_run(run_id), "read run")
        task.signals.finished.connect(lambda v: v is not None and self.show_run(v))
        task.signals.errored.connect(lambda e: self.banner.show_error(describe_error(e)))
        return self.ctx.tasks.start(task)

"""The Statistics screen's evaluation section: per suite and model, the primary metrics scored against gold
(``asclepius eval run``) with their 95% bootstrap intervals and n, beside the human ratings above it.

The figures are computed off the event loop (a ``Task``), from the scores stored in the log
(``app.service.eval_run.stored_results``); a suite the log names but this installation cannot load (a suite
file that moved) is listed with its item count and the reason it has no figures.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from app.qt.app_context import AppContext
from app.qt.stats_tab import _fill, _interval, _table
from app.qt.workers import Task, describe_error
from app.service.eval_report import PRIMARY

HEADERS = ["Suite", "Model", "Metric", "Value", "95% interval", "n"]

Row = tuple[str, str, str, str, str, int]


def eval_rows(log: Any) -> list[Row]:
    """One row per suite, model and primary metric, by suite then model."""
    summaries = log.eval_suites()
    if not summaries:
        return []
    from app.core.errors import AsclepiusError
    from app.core.evaluation.suites import load_suite
    from app.service.eval_run import stored_results

    rows: list[Row] = []
    for name in dict.fromkeys(s.suite for s in summaries):
        try:
            suite = load_suite(name)
        except AsclepiusError as e:
            rows += [(name, s.model, "(not loaded)", str(e)[:80], "", s.items) for s in summaries if s.suite == name]
            continue
        for r in stored_results(log, suite).results:
            for metric in (m for m in PRIMARY if m in r.metrics):
                e = r.metrics[metric]
                rows.append((name, r.model, metric, f"{e.value:.3f}", _interval(e.low, e.high), e.n))
    return rows


class EvalResultsView(QGroupBox):
    """The evaluation-against-gold table; ``refresh()`` recomputes it in the background."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__("Task evaluation against gold (asclepius eval run): 95% bootstrap interval over items", parent)
        self.ctx = ctx
        self.table = _table(HEADERS, "Evaluation results")
        self.empty = QLabel("No evaluation scores yet: run  asclepius eval run SUITE --data FILE --model M")
        lay = QVBoxLayout(self)
        lay.addWidget(self.empty)
        lay.addWidget(self.table)
        self.table.hide()
        self.task: Task | None = None

    def refresh(self) -> Task | None:
        log = self.ctx.log
        if log is None or self.task is not None:
            return None
        task = Task(lambda _job: eval_rows(log), "evaluation results")
        task.signals.finished.connect(self.show_rows)
        task.signals.errored.connect(lambda e: self.empty.setText(describe_error(e)))
        task.signals.done.connect(lambda: setattr(self, "task", None))
        self.task = task
        return self.ctx.tasks.start(task)

    def show_rows(self, rows: list[Row]) -> None:
        _fill(self.table, list(rows))
        self.table.setVisible(bool(rows))
        self.empty.setVisible(not rows)

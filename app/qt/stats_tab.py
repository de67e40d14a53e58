"""The Statistics screen: mean scores per task and model (chart), agreement, win rates, and exports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.models import Registry
from app.core.privatefile import private_dir
from app.qt.app_context import AppContext
from app.qt.screen_fit import flow, scrolled
from app.qt.stats_chart import MeanScoreChart
from app.qt.widgets import Banner
from app.qt.workers import Job, Task, describe_error
from app.store import EvalLog
from app.store.export import export
from app.store.stats import Agreement, MeanCI, WinRate, agreement, mean_scores, win_rates


@dataclass(frozen=True)
class Stats:
    means: list[MeanCI]
    agreement: Agreement
    wins: list[WinRate]


def compute(log: EvalLog) -> Stats:
    return Stats(mean_scores(log), agreement(log), win_rates(log))


def export_file(log: EvalLog, path: Path, kind: str, include_note_text: bool) -> int:
    """Write an export readable by the user alone (it can hold patient text)."""
    from app.core.privatefile import private_file

    fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".json") else "csv"
    if not path.parent.exists():
        private_dir(path.parent)
    with private_file(path, what="export file") as fh:  # the one private writer (0600, links refused)
        return export(log, fh, fmt=fmt, kind=kind, include_note_text=include_note_text)


def model_labels(labels: set[str], registry: Registry) -> dict[str, str]:
    """The log's "file [sha8]" model labels as the app names models elsewhere, with the DEMO mark."""
    out = {}
    for label in labels:
        sha = label.rsplit("[", 1)[-1].rstrip("]") if label.endswith("]") else ""
        try:
            m = registry.find(sha) if len(sha) >= 8 else None
        except ValueError:
            m = None
        if m is None:
            out[label] = label
        else:
            out[label] = f"{m.name} {m.file_type} [{sha}]" + (" · DEMO" if m.is_demo else "")
    return out


def _fmt(v: float, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.0%}" if pct else f"{v:.2f}"


class StatsTab(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.banner = Banner()
        self.chart = MeanScoreChart()
        self.chart.setMinimumHeight(200)
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["Model", "Task", "Mean", "95% interval", "Runs", "Ratings"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setAccessibleName("Mean score per task and model, as a table")
        self.views = QStackedWidget()
        self.views.addWidget(self.chart)
        self.views.addWidget(self.table)
        self.as_table = QCheckBox("Show as a ta&ble")
        self.as_table.setToolTip("The same numbers as the chart, readable by a screen reader and by keyboard")
        self.as_table.toggled.connect(lambda on: self.views.setCurrentIndex(1 if on else 0))
        self.agree = QLabel()
        self.agree.setWordWrap(True)
        self.wins = QTableWidget(0, 7)
        self.wins.setHorizontalHeaderLabels(["Model", "Comparisons", "Wins", "Losses", "Ties", "Both bad", "Win rate"])
        self.wins.verticalHeader().hide()
        self.wins.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.wins.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.wins.setMaximumHeight(170)
        refresh = QPushButton("&Refresh")
        refresh.clicked.connect(self.refresh)
        self.export_btns = []
        exp_btns = []
        for label, kind, text in (
            ("Export runs with note text…", "runs", True),
            ("Export runs without note text…", "runs", False),
            ("Export ratings…", "ratings", False),
        ):
            b = QPushButton(label)
            b.clicked.connect(lambda _c=False, k=kind, t=text: self.export_dialog(k, t))
            exp_btns.append(b)
            self.export_btns.append(b)
        exp = flow(*exp_btns, refresh)
        self.status = QLabel()
        self.status.setStyleSheet("color:#555;")
        chart_box = QGroupBox("Mean human score per task (95% bootstrap interval over runs)")
        cl = QVBoxLayout(chart_box)
        cl.addWidget(self.as_table)
        cl.addWidget(self.views, 1)
        win_box = QGroupBox("Blind votes only: win rate = (wins + ties/2) / decided; 'both bad' not counted")
        win_box.setToolTip("Withdrawn votes and votes cast after the models were shown (after Undo) are left out")
        wl = QVBoxLayout(win_box)
        wl.addWidget(self.wins)
        content = QWidget()
        lay = QVBoxLayout(content)
        lay.addWidget(self.banner)
        lay.addWidget(chart_box, 3)
        lay.addWidget(self.agree)
        lay.addWidget(win_box, 1)
        lay.addWidget(exp)
        lay.addWidget(self.status)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scrolled(content))
        self._stale = True
        self.task: Task | None = None
        self._exports = 0
        """Exports in flight: "Exporting …" stays on the status line until the last of them is done."""
        self._status = ""
        """What the status line says when no export is running (the statistics' own line)."""
        ctx.runs_changed.connect(self._runs_changed)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.refresh()

    def _runs_changed(self) -> None:
        self._stale = True
        if self.isVisible():
            self.refresh()

    def refresh(self) -> Task | None:
        log = self.ctx.log
        if log is None or self.task is not None:
            return None
        self._stale = False
        self._set_status("Computing…")
        task = Task(lambda job: compute(log), "statistics")
        task.signals.finished.connect(self._show)
        task.signals.errored.connect(lambda e: self.banner.show_error(describe_error(e)))
        task.signals.done.connect(lambda: setattr(self, "task", None))
        self.task = task
        return self.ctx.tasks.start(task)

    def _show(self, st: Stats) -> None:
        names = model_labels({m.model for m in st.means} | {w.model for w in st.wins}, self.ctx.registry)
        self.chart.set_data(st.means, names)
        self.table.setRowCount(len(st.means))
        for r, m in enumerate(st.means):
            interval = "–" if math.isnan(m.low) else f"{m.low:.2f} – {m.high:.2f}"
            for c, v in enumerate((names[m.model], m.task, _fmt(m.mean), interval, m.runs, m.ratings)):
                self.table.setItem(r, c, QTableWidgetItem(str(v)))
        a = st.agreement
        if a.runs:
            self.agree.setText(
                f"<b>Inter-rater agreement</b>: Krippendorff's alpha (ordinal) = {_fmt(a.alpha)} over {a.runs} "
                f"runs rated by two or more of {a.raters} raters."
            )
        else:
            self.agree.setText("<b>Inter-rater agreement</b>: needs runs rated by at least two raters.")
        self.wins.setRowCount(len(st.wins))
        for r, w in enumerate(st.wins):
            vals = (
                names.get(w.model, w.model),
                w.comparisons,
                w.wins,
                w.losses,
                w.ties,
                w.both_bad,
                _fmt(w.win_rate, pct=True),
            )
            for c, v in enumerate(vals):
                self.wins.setItem(r, c, QTableWidgetItem(str(v)))
        n = sum(m.ratings for m in st.means)
        self._set_status(f"{n} current human ratings, {sum(w.comparisons for w in st.wins) // 2} comparisons.")

    def _set_status(self, text: str) -> None:
        self._status = text
        if not self._exports:
            self.status.setText(text)

    def export_dialog(self, kind: str, with_text: bool) -> None:
        name = f"asclepius-{kind}{'' if with_text or kind == 'ratings' else '-no-notes'}.csv"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export", str(Path.home() / name), "CSV (*.csv);;JSON Lines (*.jsonl)"
        )
        if path:
            self.export_to(Path(path), kind, with_text)

    def export_to(self, path: Path, kind: str, with_text: bool) -> Task | None:
        log = self.ctx.log
        if log is None:
            self.banner.show_error(self.ctx.log_error or "The evaluation log is not open yet.")
            return None

        def work(_job: Job) -> int:
            return export_file(log, path, kind, with_text)

        task = Task(work, "export")
        task.signals.finished.connect(lambda n: self.banner.show_info(f"Exported {n:,} {kind} to {path}."))
        task.signals.errored.connect(lambda e: self.banner.show_error(f"Export failed: {describe_error(e)}"))
        # Not "restore what it said before": an export started while another runs would restore "Exporting".
        task.signals.done.connect(self._export_done)
        self._exports += 1
        self.status.setText(f"Exporting {kind}…")
        return self.ctx.tasks.start(task)

    def _export_done(self) -> None:
        self._exports -= 1
        if not self._exports:
            self.status.setText(self._status)

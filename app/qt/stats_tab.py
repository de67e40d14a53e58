"""The Statistics screen: mean scores per task and model (chart), agreement, win rates, and exports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.models import Registry
from app.core.privatefile import private_dir
from app.qt.app_context import AppContext
from app.qt.screen_fit import flow, scrolled

# The names this screen has always used for the shared helpers; other Statistics views import them from here.
from app.qt.stat_tables import fill as _fill
from app.qt.stat_tables import interval as _interval
from app.qt.stat_tables import num as _fmt
from app.qt.stat_tables import table as _table
from app.qt.stat_tables import tint
from app.qt.stats_chart import MeanScoreChart
from app.qt.study_stats_view import STATUS_COLOR, StudyStatsView
from app.qt.widgets import Banner, combo
from app.qt.workers import Job, Task, describe_error
from app.store import EvalLog
from app.store.export import export
from app.store.stats import (
    Agreement,
    FlagCount,
    MeanCI,
    WinRate,
    agreement,
    agreement_per_task,
    flag_counts,
    mean_scores,
    win_rates,
)
from app.store.studies import StudyInfo


@dataclass(frozen=True)
class Stats:
    means: list[MeanCI]
    agreement: Agreement
    wins: list[WinRate]
    per_task: list[Agreement]
    """Agreement per task, with intervals."""
    flags: list[FlagCount]
    """Hallucination flags and score-1 ratings per model and task."""


def compute(log: EvalLog) -> Stats:
    return Stats(mean_scores(log), agreement(log), win_rates(log), agreement_per_task(log), flag_counts(log))


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


LOG_PAGE, STUDY_PAGE = 0, 1
"""The pages of the screen: every rating in the log, or the study chosen in the selector."""


class StatsTab(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.banner = Banner()
        self.banner.float_over(self)  # an export's message must not make the statistics jump
        self.source = combo(24)
        self.source.setAccessibleName("Statistics of")
        self.source.setToolTip("Every rating in this log, or one evaluation study (its raters, agreement, arms)")
        self.source.addItem("All ratings in this log", None)
        self.source.currentIndexChanged.connect(self._source_chosen)
        self.source_note = QLabel()
        tint(self.source_note, STATUS_COLOR)
        show = QLabel("Sho&w:")
        show.setBuddy(self.source)
        row = QHBoxLayout()
        row.setContentsMargins(9, 6, 9, 0)  # in line with the pages' content below
        row.addWidget(show)
        row.addWidget(self.source, 2)
        row.addWidget(self.source_note, 3)
        self.study_view = StudyStatsView(ctx, self.banner)
        self.pages = QStackedWidget()
        self.pages.addWidget(scrolled(self._log_page(ctx)))
        self.pages.addWidget(scrolled(self.study_view))
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(row)
        outer.addWidget(self.pages, 1)
        self._stale = True
        self.task: Task | None = None
        self.studies_task: Task | None = None
        """Reading the log's list of studies (for the selector)."""
        self._exports = 0
        """Exports in flight: "Exporting …" stays on the status line until the last of them is done."""
        self._status = ""
        """What the status line says when no export is running (the statistics' own line)."""
        ctx.runs_changed.connect(self._runs_changed)
        ctx.log_changed.connect(self._runs_changed)  # another log: other ratings, other studies

    def _log_page(self, ctx: AppContext) -> QWidget:
        """The statistics of every rating in the log: chart, agreement, flags, win rates, exports (``ctx``: the
        application, for the parts of the page that read the log themselves)."""
        self.chart = MeanScoreChart()
        self.chart.setMinimumHeight(200)
        self.table = _table(
            ["Model", "Task", "Mean", "95% interval", "Runs", "Ratings"], "Mean score per task and model, as a table"
        )
        self.views = QStackedWidget()
        self.views.addWidget(self.chart)
        self.views.addWidget(self.table)
        self.as_table = QCheckBox("Show as a ta&ble")
        self.as_table.setToolTip("The same numbers as the chart, readable by a screen reader and by keyboard")
        self.as_table.toggled.connect(lambda on: self.views.setCurrentIndex(1 if on else 0))
        self.agree = QLabel()
        self.agree.setWordWrap(True)
        self.agree_tasks = _table(["Task", "Alpha", "95% interval", "Runs", "Raters", "Note"], "Agreement per task")
        self.agree_tasks.setMaximumHeight(150)
        self.flags = _table(["Model", "Task", "Ratings", "Hallucination flags", "Scored 1"], "Hallucination flags")
        self.flags.setMaximumHeight(170)
        self.wins = _table(["Model", "Comparisons", "Wins", "Losses", "Ties", "Both bad", "Win rate"], "Win rates")
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
        tint(self.status, STATUS_COLOR)
        chart_box = QGroupBox("Mean human score per task (95% bootstrap interval over runs)")
        cl = QVBoxLayout(chart_box)
        cl.addWidget(self.as_table)
        cl.addWidget(self.views, 1)
        win_box = QGroupBox("Blind votes only: win rate = (wins + ties/2) / decided; 'both bad' not counted")
        win_box.setToolTip("Withdrawn votes and votes cast after the models were shown (after Undo) are left out")
        wl = QVBoxLayout(win_box)
        wl.addWidget(self.wins)
        agree_box = QGroupBox("Inter-rater agreement: Krippendorff's alpha (ordinal), 95% bootstrap interval over runs")
        al = QVBoxLayout(agree_box)
        al.addWidget(self.agree)
        al.addWidget(self.agree_tasks)
        flag_box = QGroupBox("Hallucination flags and answers scored 1 (unacceptable), current human ratings")
        fl = QVBoxLayout(flag_box)
        fl.addWidget(self.flags)
        content = QWidget()
        lay = QVBoxLayout(content)
        lay.addWidget(chart_box, 3)
        lay.addWidget(agree_box)
        lay.addWidget(flag_box)
        lay.addWidget(win_box, 1)
        from app.qt.eval_results_view import EvalResultsView  # here: that module reuses this one's table helpers

        self.evals = EvalResultsView(ctx)
        lay.addWidget(self.evals)
        lay.addWidget(exp)
        lay.addWidget(self.status)
        return content

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.refresh()

    def _runs_changed(self) -> None:
        self._stale = True
        if self.isVisible():
            self.refresh()

    def refresh(self) -> Task | None:
        """Recompute the log's statistics, the list of studies and the study shown (each in a worker)."""
        log = self.ctx.log
        if log is None:
            return None
        self._refresh_studies(log)
        if self.pages.currentIndex() == STUDY_PAGE:
            self.study_view.refresh()
        if self.task is not None:
            return None
        self._stale = False
        self._set_status("Computing…")
        self.evals.refresh()
        task = Task(lambda job: compute(log), "statistics")
        task.signals.finished.connect(self._show)
        task.signals.errored.connect(lambda e: self.banner.show_error(describe_error(e)))
        task.signals.done.connect(lambda: setattr(self, "task", None))
        self.task = task
        return self.ctx.tasks.start(task)

    def _refresh_studies(self, log: EvalLog) -> None:
        if self.studies_task is not None:
            return
        task = Task(lambda _job: log.studies(), "read studies")
        task.signals.finished.connect(self._set_studies)
        task.signals.errored.connect(lambda e: self.source_note.setText(f"Studies not read: {describe_error(e)}"))
        task.signals.done.connect(lambda: setattr(self, "studies_task", None))
        self.studies_task = task
        self.ctx.tasks.start(task)

    def _set_studies(self, infos: list[StudyInfo]) -> None:
        """Fill the selector, keeping the study shown when it is still in the log."""
        shown = self.source.currentData()
        names = [i.name for i in infos]
        self.source.blockSignals(True)
        while self.source.count() > 1:
            self.source.removeItem(1)
        for name in names:
            self.source.addItem(f"Study: {name}", name)
        self.source.setCurrentIndex(1 + names.index(shown) if shown in names else 0)
        self.source.blockSignals(False)
        self.source_note.setText(
            f"{len(names)} {'study' if len(names) == 1 else 'studies'} in this log"
            if names
            else "No studies in this log (asclepius study create makes one)."
        )
        if shown is not None and shown not in names:
            self._source_chosen()

    def _source_chosen(self) -> None:
        name = self.source.currentData()
        self.pages.setCurrentIndex(LOG_PAGE if name is None else STUDY_PAGE)
        if name is not None:
            self.study_view.show_study(name)

    def _show(self, st: Stats) -> None:
        labels = {m.model for m in st.means} | {w.model for w in st.wins} | {c.model for c in st.flags}
        names = model_labels(labels, self.ctx.registry)
        self.chart.set_data(st.means, names)
        _fill(
            self.table,
            [(names[m.model], m.task, _fmt(m.mean), _interval(m.low, m.high), m.runs, m.ratings) for m in st.means],
        )
        a = st.agreement
        if a.runs:
            self.agree.setText(
                f"<b>All tasks</b>: alpha = {_fmt(a.alpha)} ({_interval(a.low, a.high)}) over {a.runs} "
                f"runs rated by two or more of {a.raters} raters" + (f" ({a.reason})." if a.reason else ".")
            )
        else:
            self.agree.setText("<b>All tasks</b>: needs runs rated by at least two raters.")
        _fill(
            self.agree_tasks,
            [(t.task, _fmt(t.alpha), _interval(t.low, t.high), t.runs, t.raters, t.reason or "") for t in st.per_task],
        )
        _fill(
            self.flags,
            [(names.get(c.model, c.model), c.task, c.ratings, c.hallucination, c.score_1) for c in st.flags],
        )
        _fill(
            self.wins,
            [
                (
                    names.get(w.model, w.model),
                    w.comparisons,
                    w.wins,
                    w.losses,
                    w.ties,
                    w.both_bad,
                    _fmt(w.win_rate, True),
                )
                for w in st.wins
            ],
        )
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
        task.signals.finished.connect(lambda n: self.banner.show_info(f"Exported {n:,} {kind} to {path}.", True))
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

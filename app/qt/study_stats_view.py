"""One evaluation study on the Statistics screen: the coordinator's view of progress, agreement, arm means,
flags and disagreements, the adjudication of those, and the study report.

Every number comes from ``app.store.agreement.study_stats`` (the one home of the study's statistics, also
behind ``asclepius study status`` and the report), computed in a worker: the bootstrap intervals take a
moment on a large study and the window must not freeze. The tables have fixed heights and the messages fixed
line counts, so results arriving never move what the coordinator is looking at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.qt.adjudication_panel import AdjudicationPanel, scores_text
from app.qt.app_context import AppContext
from app.qt.screen_fit import flow
from app.qt.stat_tables import LinesLabel, RowsTable, fill, interval, num, tint
from app.qt.widgets import Banner
from app.qt.workers import Task, describe_error
from app.store import EvalLog
from app.store.agreement import ALL_TASKS, Disagreement, StudyStats, study_stats
from app.store.estimates import AlphaEstimate
from app.store.studies import StudyInfo

CAPTION = (
    "Coordinator's view: the arms' names (the models) and every rater's scores are shown here. Raters never "
    "see them in the Study screen: do not show this page to a rater who is still rating."
)
CAPTION_COLOR = "#7a4b00"
STATUS_COLOR = "#555555"
NOT_ADJUDICATED = "open"
"""The final-score cell of a disagreement no adjudicator has settled yet."""


@dataclass(frozen=True)
class StudyResult:
    """What the view shows for one study, read and computed off the GUI thread."""

    info: StudyInfo
    stats: StudyStats


def compute_study(log: EvalLog, name: str) -> StudyResult:
    return StudyResult(log.study(name), study_stats(log.study_data(name)))


def _alpha_row(label: str, a: AlphaEstimate) -> tuple[object, ...]:
    return (label, num(a.alpha), interval(a.low, a.high), a.units, a.raters, a.reason or "")


def agreement_rows(st: StudyStats) -> list[tuple[object, ...]]:
    """All answers, the calibration subset, then each task: alpha, interval, n answers, raters, why missing."""
    rows = [_alpha_row("All answers", st.alpha), _alpha_row("Calibration subset", st.calibration)]
    return rows + [_alpha_row(f"Task: {t}", a) for t, a in st.per_task.items()]


def mean_rows(st: StudyStats) -> list[tuple[object, ...]]:
    """Per arm: all tasks first, then each task (the order ``study_stats`` gives within an arm)."""
    ordered = sorted(st.arm_means, key=lambda m: m.task != ALL_TASKS)  # stable: arm order kept
    arms = list(dict.fromkeys(m.arm for m in st.arm_means))
    ordered.sort(key=lambda m: arms.index(m.arm))
    return [(m.arm, m.task, num(m.mean), interval(m.low, m.high), m.answers, m.adjudicated) for m in ordered]


def final_text(d: Disagreement) -> str:
    return NOT_ADJUDICATED if d.adjudicated is None else f"{d.adjudicated} ({d.adjudicator})"


def summary_text(info: StudyInfo, st: StudyStats) -> str:
    return (
        f"{info.name}: {info.items} items × {len(info.arms)} arms, {info.generated} of {info.answers} answers "
        f"generated; {len(info.raters)} raters, each answer rated by k = {info.overlap}, a calibration subset "
        f"of {info.calibration} items rated by everyone; blinding {info.blinding}. {st.ratings} current ratings "
        f"of {st.answers} answers, {st.adjudications} adjudicated."
    )


def _box(title: str, *widgets: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    lay = QVBoxLayout(box)
    for w in widgets:
        lay.addWidget(w)
    return box


class StudyStatsView(QWidget):
    computed = Signal(object)
    """The ``StudyResult`` now shown."""
    report_written = Signal(str)
    """The report's HTML file."""

    def __init__(self, ctx: AppContext, banner: Banner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.banner = banner
        self.name: str | None = None
        self.result: StudyResult | None = None
        self._seq = 0
        """Bumped by each computation started: a result for an earlier choice is dropped, not shown."""
        self.computing = 0
        """Computations in flight."""
        self.disagreements: tuple[Disagreement, ...] = ()
        self._build()

    def _build(self) -> None:
        self.caption = LinesLabel(2, CAPTION)
        tint(self.caption, CAPTION_COLOR)
        self.summary = LinesLabel(3)
        self.progress = RowsTable(["Rater", "Rated", "Assigned", "Done"], "Progress per rater", rows=4)
        self.pairwise = RowsTable(
            ["Rater", "With", "Both rated (n)", "Same score", "Within 1 point"], "Pairwise rater agreement", rows=4
        )
        self.agreement = RowsTable(
            ["Subset", "Alpha", "95% interval", "Answers (n)", "Raters", "Note"], "Agreement", rows=5
        )
        self.means = RowsTable(
            ["Arm", "Task", "Mean", "95% interval", "Answers (n)", "Adjudicated"], "Mean score per arm", rows=5
        )
        self.flags = RowsTable(
            ["Arm", "Ratings (n)", "Scored 1", "Hallucination flags", "Failed answers"],
            "Score-1 and hallucination counts per arm",
            rows=3,
        )
        self.disagree = RowsTable(["Item", "Task", "Arm", "Scores", "Spread", "Final score"], "Disagreements", rows=5)
        self.disagree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.disagree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.disagree.itemSelectionChanged.connect(self._chosen)
        self.adjudication = AdjudicationPanel(self.ctx)
        self.adjudication.recorded.connect(lambda _uid: self.refresh())
        self.refresh_button = QPushButton("Re&compute")
        self.refresh_button.setToolTip("Read the study's ratings again (after an import, for instance)")
        self.refresh_button.clicked.connect(self.refresh)
        self.report_button = QPushButton("Write re&port…")
        self.report_button.setToolTip("The study report: one HTML file with its plots, and every table as CSV")
        self.report_button.clicked.connect(self.report_dialog)
        self.status = LinesLabel(2)
        tint(self.status, STATUS_COLOR)
        self._lay_out()

    def _lay_out(self) -> None:
        """Raters first (progress, pairwise), then agreement, the arms, and the disagreements to settle."""
        top = QHBoxLayout()
        top.addWidget(_box("Progress: rated / assigned", self.progress), 2)
        top.addWidget(_box("Pairwise agreement (the raters' own scores)", self.pairwise), 3)
        self.agree_box = _box("Krippendorff's alpha (ordinal), 95% bootstrap interval over answers", self.agreement)
        self.means_box = _box(
            "Mean score per arm: the adjudicated score, else the raters' mean; 95% bootstrap interval", self.means
        )
        flags_box = _box("Ratings of 1 (unacceptable) and hallucination flags per arm", self.flags)
        self.disagree_box = _box("Disagreements: raters 2 or more points apart", self.disagree, self.adjudication)
        lay = QVBoxLayout(self)
        for w in (self.caption, self.summary):
            lay.addWidget(w)
        lay.addLayout(top)
        for w in (self.agree_box, self.means_box, flags_box, self.disagree_box):
            lay.addWidget(w)
        lay.addWidget(flow(self.refresh_button, self.report_button))
        lay.addWidget(self.status)
        lay.addStretch(1)

    # -- computing -------------------------------------------------------------------------------
    def show_study(self, name: str) -> Task | None:
        """Show ``name`` (its numbers follow from a worker; the previous study's go at once)."""
        if name != self.name:
            self.name = name
            self._clear()
        return self.refresh()

    def refresh(self) -> Task | None:
        log, name = self.ctx.log, self.name
        if log is None or name is None:
            return None
        self._seq += 1
        seq = self._seq
        self.computing += 1
        self.status.setText(f"Computing the statistics of {name}…")
        task = Task(lambda _job: compute_study(log, name), "study statistics")
        task.signals.finished.connect(lambda r, n=seq: self._show(r) if n == self._seq else None)
        task.signals.errored.connect(lambda e, n=seq: self._failed(e) if n == self._seq else None)
        task.signals.done.connect(self._done)
        return self.ctx.tasks.start(task)

    def _done(self) -> None:
        self.computing -= 1

    def _failed(self, e: BaseException) -> None:
        self.status.setText("")
        self.banner.show_error(f"Could not compute the study's statistics: {describe_error(e)}")

    def _clear(self) -> None:
        self.result = None
        self.summary.setText("")
        for t in (self.progress, self.agreement, self.pairwise, self.flags, self.means, self.disagree):
            t.setRowCount(0)
        self.disagreements = ()
        self.adjudication.set_study(None)

    # -- showing ---------------------------------------------------------------------------------
    def _show(self, r: StudyResult) -> None:
        chosen = self.adjudication.answer.answer if self.adjudication.answer else None
        same_study = self.result is not None and self.result.info.uuid == r.info.uuid
        self.result = r
        st = r.stats
        self.summary.setText(summary_text(r.info, st))
        done = [
            (p.rater, p.rated, p.assigned, num(p.rated / p.assigned if p.assigned else None, True)) for p in st.progress
        ]
        fill(self.progress, done)
        fill(self.agreement, agreement_rows(st))
        fill(
            self.pairwise,
            [(p.rater_a, p.rater_b, p.n, num(p.exact, True), num(p.within_one, True)) for p in st.pairwise],
        )
        fill(
            self.flags,
            [(f.arm, f.ratings, f.score_1, f.hallucination, f.failed) for f in st.flags],
        )
        fill(self.means, mean_rows(st))
        self._show_disagreements(st, r.info, chosen if same_study else None)
        self.status.setText(f"{st.ratings} current ratings; the numbers are those of `asclepius study status`.")
        self.computed.emit(r)

    def _show_disagreements(self, st: StudyStats, info: StudyInfo, keep: str | None) -> None:
        self.disagreements = st.disagreements
        open_ = sum(d.adjudicated is None for d in st.disagreements)
        self.disagree_box.setTitle(
            f"Disagreements: raters 2 or more points apart ({len(st.disagreements)}, {open_} to adjudicate)"
        )
        self.adjudication.set_study(info)
        rows = [i for i, d in enumerate(st.disagreements) if d.answer == keep]
        # Signals held: the panel is told once, below, about the answer chosen after the refill.
        self.disagree.blockSignals(True)
        self.disagree.clearSelection()
        fill(
            self.disagree,
            [(d.item, d.task, d.arm, scores_text(d), d.spread, final_text(d)) for d in st.disagreements],
        )
        if rows:
            self.disagree.selectRow(rows[0])  # the list marks it adjudicated; the panel says by whom
        self.disagree.blockSignals(False)
        self._chosen()

    def _chosen(self) -> None:
        rows = {i.row() for i in self.disagree.selectedIndexes()}
        self.adjudication.set_answer(self.disagreements[min(rows)] if rows else None)

    # -- the report ------------------------------------------------------------------------------
    def report_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the study report", str(Path.home()))
        if folder:
            self.write_report_to(Path(folder))

    def write_report_to(self, folder: Path) -> Task | None:
        log, name = self.ctx.log, self.name
        if log is None or name is None:
            return None
        from app.service.study_report import write_report  # matplotlib loads only when a report is written

        task = Task(lambda _job: write_report(log.study_data(name), folder), "study report")
        task.signals.finished.connect(self._written)
        task.signals.errored.connect(
            lambda e: self.banner.show_error(f"The report was not written: {describe_error(e)}")
        )
        task.signals.done.connect(lambda: self.report_button.setEnabled(True))
        self.report_button.setEnabled(False)
        self.status.setText(f"Writing the report of {name} into {folder}…")
        return self.ctx.tasks.start(task)

    def _written(self, path: Path) -> None:
        self.status.setText(f"Report written: {path}")
        self.banner.show_info(f"Report written: {path} (and its tables as CSV in the same folder).")
        self.report_written.emit(str(path))

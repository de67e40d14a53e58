"""The History screen: runs from the log, filtered and searched; open one, or re-run it.

Every read of the log runs in a worker (counting, each page as the table scrolls, the filter choices, the
run to open), so a large log or a slow disk never freezes the window; only the latest request's answer is
shown. Runs of a Compare whose vote is still open show no model name (the comparison is blind). The score
column and the "Rated" filter are the chosen rater's own (``RunQuery.viewer``): a rater never sees how many
others rated a run, nor their mean, before rating it; everyone's ratings are the Statistics screen's.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.qt.app_context import AppContext
from app.qt.history_model import FINISH_COL, INSTRUCTION_COL, MODEL_COL, NOTE_COL, PAGE_SIZE, SCORE_COL, RunTableModel
from app.qt.screen_fit import flow
from app.qt.widgets import Banner, combo
from app.qt.workers import Task, describe_error
from app.store import NoteView, RunFilter, RunQuery, RunView
from resources import TASK_NAMES

SEARCH_DEBOUNCE_MS = 250
BLINDED = "hidden until the vote"


class AsyncRunTableModel(RunTableModel):
    """The History rows, read in workers: :meth:`load` for the first page, ``fetchMore`` for the next."""

    def __init__(self, ctx: AppContext, parent: Any = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._gen = 0
        self._fetching = False

    def load(self, log: Any, query: RunQuery, on_done, on_error) -> Task:
        self._gen += 1
        gen = self._gen

        def work(_job) -> tuple[int, list]:
            return log.count_history(query), log.history_page(query, 0, PAGE_SIZE)

        def show(res: tuple[int, list]) -> None:
            if gen != self._gen:
                return
            self.beginResetModel()
            self.log, self.query, (self.total, self.rows) = log, query, res
            self._fetching = False
            self.endResetModel()
            on_done()

        task = Task(work, "read history")
        task.signals.finished.connect(show)
        task.signals.errored.connect(lambda e: gen == self._gen and on_error(e))
        return self.ctx.tasks.start(task)

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> None:  # noqa: B008
        if self._fetching or not self.canFetchMore(parent) or self.log is None:
            return
        self._fetching = True
        gen, log, query, offset = self._gen, self.log, self.query, len(self.rows)
        task = Task(lambda _job: log.history_page(query, offset, PAGE_SIZE), "read history page")

        def add(more: list) -> None:
            self._fetching = False
            if gen == self._gen and offset == len(self.rows):
                self.append_page(more)

        task.signals.finished.connect(add)
        task.signals.errored.connect(lambda _e: setattr(self, "_fetching", False))
        self.ctx.tasks.start(task)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        blind = index.isValid() and index.column() == MODEL_COL and role == Qt.ItemDataRole.DisplayRole
        if blind and self.rows[index.row()][0].id in self.ctx.blinded_runs:
            return BLINDED
        return super().data(index, role)


INSTRUCTION_MIN_CHARS = 24
"""The least of the instruction shown in History, in characters of the current font."""


class HistoryTab(QWidget):
    open_run = Signal(object)
    """A RunView with its note text."""
    rerun = Signal(object)
    refreshed = Signal()
    """The table shows the latest query's rows."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.banner = Banner()
        self.model = AsyncRunTableModel(ctx, self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setStretchLastSection(False)
        # Note, task and model get widths in characters (they follow the font); the instruction takes what is
        # left but never less than INSTRUCTION_MIN_CHARS: at 14 pt on 1024 px the table scrolls sideways
        # rather than squeezing the instruction to nothing (fit_columns, on every resize and font change).
        for col in (0, 1, FINISH_COL, FINISH_COL + 1, SCORE_COL):
            hh.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.fit_columns()
        self.table.doubleClicked.connect(lambda _i: self.open_selected())
        self.table.activated.connect(lambda _i: self.open_selected())

        self.task = combo()
        self.task.addItem("All tasks", None)
        for t in TASK_NAMES:
            self.task.addItem(t, t)
        self.model_box = combo()
        self.note_box = combo()
        self.note_box.setToolTip("Only the runs on one note (named by you, else by its first line; its sha256 after ·)")
        self.hide_failed = QCheckBox("Hide &failed attempts")
        self.hide_failed.setToolTip("Leave out runs that were stopped, failed or interrupted before an answer")
        self.hide_failed.setChecked(True)
        self.name_btn = QPushButton("&Name note…")
        self.name_btn.setToolTip("Give the selected run's note a name: History lists its runs under it")
        self.name_btn.clicked.connect(self.name_selected_note)
        self.rated = combo()
        for label, v in (("Rated by me or not", None), ("Rated by me", True), ("Not rated by me", False)):
            self.rated.addItem(label, v)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search instructions and answers…")
        self.search.setClearButtonEnabled(True)
        open_btn = QPushButton("&Open")
        open_btn.clicked.connect(self.open_selected)
        rerun_btn = QPushButton("&Re-run with the same settings")
        rerun_btn.clicked.connect(self.rerun_selected)
        self.count = QLabel()
        pairs = []
        for label, w in (("Note", self.note_box), ("Task", self.task), ("Model", self.model_box)):
            lab = QLabel(label)
            lab.setBuddy(w)
            pair = QWidget()
            pl = QHBoxLayout(pair)
            pl.setContentsMargins(0, 0, 0, 0)
            pl.addWidget(lab)
            pl.addWidget(w)
            pairs.append(pair)
        self.search.setMinimumWidth(180)
        actions = QHBoxLayout()
        actions.addWidget(self.count, 1)
        actions.addWidget(flow(self.name_btn, open_btn, rerun_btn))
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addWidget(flow(*pairs, self.rated, self.hide_failed))
        lay.addWidget(self.search)
        lay.addWidget(self.table, 1)
        lay.addLayout(actions)
        # Tab follows reading order (the note filter comes first on screen, though it was added last).
        order = [self.note_box, self.task, self.model_box, self.rated, self.hide_failed, self.search, self.table]
        for a, b in pairwise([*order, self.name_btn, open_btn, rerun_btn]):
            self.setTabOrder(a, b)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        for box in (self.note_box, self.task, self.model_box, self.rated):
            box.currentIndexChanged.connect(lambda _i: self.refresh())
        self.hide_failed.toggled.connect(lambda _on: self.refresh())
        self.search.textChanged.connect(lambda _t: self._timer.start(SEARCH_DEBOUNCE_MS))
        ctx.runs_changed.connect(self._runs_changed)
        ctx.log_changed.connect(self._runs_changed)
        ctx.config_changed.connect(self._viewer_changed)
        self._viewer = ctx.config.rater
        self._stale = True

    # Refreshing only when visible keeps a background write from costing the Ask screen anything.

    def fit_columns(self) -> None:
        """Note, task and model widths in characters of the current font; the instruction gets the rest of the
        viewport, at least ``INSTRUCTION_MIN_CHARS`` characters."""
        ch = max(1, self.table.fontMetrics().averageCharWidth())
        for col, chars in ((NOTE_COL, 16), (NOTE_COL + 1, 14), (MODEL_COL, 14)):
            self.table.setColumnWidth(col, chars * ch)
        hh = self.table.horizontalHeader()
        others = sum(hh.sectionSize(c) for c in range(hh.count()) if c != INSTRUCTION_COL)
        self.table.setColumnWidth(
            INSTRUCTION_COL, max(INSTRUCTION_MIN_CHARS * ch, self.table.viewport().width() - others)
        )

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_columns()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self.fit_columns()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self._fill_choices()
            self.refresh()

    def _runs_changed(self) -> None:
        self._stale = True
        if self.isVisible():
            self._fill_choices()
            self.refresh()

    def _viewer_changed(self) -> None:
        """Another rater was chosen: the scores shown become theirs."""
        if self.ctx.config.rater != self._viewer:
            self._viewer = self.ctx.config.rater
            self._runs_changed()

    def _fill_choices(self) -> Task | None:
        log = self.ctx.log
        if log is None:
            return None
        task = Task(lambda _job: (log.models(), log.notes()), "read history filters")
        task.signals.finished.connect(self._set_choices)
        task.signals.errored.connect(lambda e: self.banner.show_error(describe_error(e)))
        return self.ctx.tasks.start(task)

    def _set_choices(self, choices: tuple[list, list[NoteView]]) -> None:
        models, notes = choices
        for box, items, first in (
            (self.model_box, [(f"{m.name} ({m.quant})", m.sha256) for m in models], "All models"),
            (self.note_box, [(f"{n.caption} ({n.runs})", n.sha256) for n in notes], "All notes"),
        ):
            keep = box.currentData()
            box.blockSignals(True)
            box.clear()
            box.addItem(first, None)
            for label, data in items:
                box.addItem(label, data)
            box.setCurrentIndex(max(0, box.findData(keep)))
            box.blockSignals(False)

    def query(self) -> RunQuery:
        f = RunFilter(self.task.currentData(), self.model_box.currentData(), note_sha256=self.note_box.currentData())
        # Nobody chosen: "" matches no rater (names are never empty), so no score shows at all.
        viewer, hide = self.ctx.config.rater, self.hide_failed.isChecked()
        return RunQuery(f, self.search.text(), self.rated.currentData(), viewer=viewer, hide_failed=hide)

    def refresh(self) -> Task | None:
        """Re-read the runs in a worker; :attr:`refreshed` is emitted when the table shows them."""
        log = self.ctx.log
        if log is None:
            self.count.setText(self.ctx.log_error or "Opening the evaluation log…")
            return None
        self._stale = False
        self.count.setText("Reading the log…")
        return self.model.load(log, self.query(), self._loaded, self._load_failed)

    def _loaded(self) -> None:
        self.count.setText(f"{self.model.total:,} {'run' if self.model.total == 1 else 'runs'}")
        self.refreshed.emit()

    def _load_failed(self, exc: BaseException) -> None:
        self._stale = True
        self.count.setText("")
        self.banner.show_error(f"Could not read the log: {describe_error(exc)}")

    def selected_run(self) -> RunView | None:
        """The selected row's run as listed (without its note text: :meth:`_with_run` reads the full run)."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            idx = self.table.currentIndex()
            if not idx.isValid():
                return None
            rows = [idx]
        return self.model.run_at(rows[0].row())

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)
        self.table.setCurrentIndex(self.model.index(row, 0))

    def _with_run(self, signal) -> Task | None:
        """Read the selected run in full (note text included) in a worker, then emit ``signal`` with it."""
        v, log = self.selected_run(), self.ctx.log
        if v is None or log is None:
            return None
        reveal = v.id in self.ctx.blinded_runs
        if reveal and not self.confirm_reveal():
            self.banner.show_error("This run is part of a blind comparison: vote on the Compare screen first.")
            return None

        def work(_job):
            if reveal:  # the user chose to see it: the blind vote on it is given up, in the log
                log.release_blind([v.id])
            return log.get_run(v.id)

        if reveal:
            self.ctx.blinded_runs.discard(v.id)
        task = Task(work, "read run")
        task.signals.finished.connect(signal.emit)
        task.signals.errored.connect(lambda e: self.banner.show_error(describe_error(e)))
        return self.ctx.tasks.start(task)

    def confirm_reveal(self) -> bool:
        """A run of a comparison never voted on (say, before a restart): show it only if the user says so."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Reveal a blind answer?",
            "This run belongs to a blind comparison that was not voted on. Opening it shows its model, "
            "so it can no longer be voted on blind. Open it anyway?",
            parent=self,
        )
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def name_selected_note(self, name: str | None = None) -> Task | None:
        """Name the selected run's note (asked in a dialog unless ``name`` is given; blank removes the name)."""
        v, log = self.selected_run(), self.ctx.log
        if v is None or log is None:
            self.banner.show_error("Select a run first: its note is the one named.")
            return None
        if name is None:
            name, ok = QInputDialog.getText(
                self, "Name this note", f"A name for the note of run {v.id} (blank: none):", text=v.note_label or ""
            )
            if not ok:
                return None
        task = Task(lambda _job: log.name_note(v.note_sha256, name), "name note")
        task.signals.finished.connect(lambda _r: self._runs_changed())
        task.signals.errored.connect(lambda e: self.banner.show_error(describe_error(e)))
        return self.ctx.tasks.start(task)

    def open_selected(self) -> Task | None:
        """Open the selected run on the Ask screen (what Enter and a double click do)."""
        return self._with_run(self.open_run)

    def rerun_selected(self) -> Task | None:
        """Ask the selected run's question again with its model and settings."""
        return self._with_run(self.rerun)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.open_selected()
        else:
            super().keyPressEvent(event)

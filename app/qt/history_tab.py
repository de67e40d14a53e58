"""The History screen: runs from the log, filtered and searched; open one, or re-run it."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AsclepiusError
from app.qt.appstate import AppContext
from app.qt.history_model import RunQuery, RunTableModel
from app.qt.widgets import Banner, combo
from app.store import RunFilter, RunView
from resources import TASK_NAMES

SEARCH_DEBOUNCE_MS = 250


class HistoryTab(QWidget):
    open_run = Signal(object)
    """A RunView with its note text."""
    rerun = Signal(object)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.banner = Banner()
        self.model = RunTableModel(self)
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
        for col, w in enumerate((60, 130, 210, 230, 420, 80, 70, 80)):
            self.table.setColumnWidth(col, w)
        hh.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        for col in (0, 1, 5, 6, 7):
            hh.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.doubleClicked.connect(lambda _i: self._open())
        self.table.activated.connect(lambda _i: self._open())

        self.task = combo()
        self.task.addItem("All tasks", None)
        for t in TASK_NAMES:
            self.task.addItem(t, t)
        self.model_box = combo()
        self.rater = combo()
        self.rated = combo()
        for label, v in (("Rated or not", None), ("Rated", True), ("Not rated", False)):
            self.rated.addItem(label, v)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search instructions and answers…")
        self.search.setClearButtonEnabled(True)
        open_btn = QPushButton("&Open")
        open_btn.clicked.connect(self._open)
        rerun_btn = QPushButton("&Re-run with the same settings")
        rerun_btn.clicked.connect(self._rerun)
        self.count = QLabel()
        filters = QHBoxLayout()
        for label, w in (("Task", self.task), ("Model", self.model_box), ("Rater", self.rater), ("", self.rated)):
            if label:
                filters.addWidget(QLabel(label))
            filters.addWidget(w)
        filters.addWidget(self.search, 1)
        actions = QHBoxLayout()
        actions.addWidget(self.count, 1)
        actions.addWidget(open_btn)
        actions.addWidget(rerun_btn)
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addLayout(filters)
        lay.addWidget(self.table, 1)
        lay.addLayout(actions)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        for box in (self.task, self.model_box, self.rater, self.rated):
            box.currentIndexChanged.connect(lambda _i: self.refresh())
        self.search.textChanged.connect(lambda _t: self._timer.start(SEARCH_DEBOUNCE_MS))
        ctx.runs_changed.connect(self._runs_changed)
        ctx.log_changed.connect(self._runs_changed)
        self._stale = True

    # Refreshing only when visible keeps a background write from costing the Ask screen anything.
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

    def _fill_choices(self) -> None:
        log = self.ctx.log
        if log is None:
            return
        try:
            models, raters = log.models(), log.raters()
        except AsclepiusError as exc:
            self.banner.show_error(str(exc))
            return
        for box, items, first in (
            (self.model_box, [(f"{m.name} ({m.quant})", m.sha256) for m in models], "All models"),
            (self.rater, [(r.name, r.name) for r in raters], "Any rater"),
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
        f = RunFilter(task=self.task.currentData(), model=self.model_box.currentData(), rater=self.rater.currentData())
        return RunQuery(f, self.search.text(), self.rated.currentData())

    def refresh(self) -> None:
        log = self.ctx.log
        if log is None:
            self.count.setText(self.ctx.log_error or "Opening the evaluation log…")
            return
        try:
            self.model.reset(log, self.query())
        except AsclepiusError as exc:
            self.banner.show_error(f"Could not read the log: {exc}")
            return
        self._stale = False
        self.count.setText(f"{self.model.total:,} runs")

    def selected_run(self) -> RunView | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            idx = self.table.currentIndex()
            if not idx.isValid():
                return None
            rows = [idx]
        log = self.ctx.log
        if log is None:
            return None
        try:
            return log.get_run(self.model.run_at(rows[0].row()).id)
        except AsclepiusError as exc:
            self.banner.show_error(str(exc))
            return None

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)
        self.table.setCurrentIndex(self.model.index(row, 0))

    def _open(self) -> None:
        v = self.selected_run()
        if v is not None:
            self.open_run.emit(v)

    def _rerun(self) -> None:
        v = self.selected_run()
        if v is not None:
            self.rerun.emit(v)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._open()
        else:
            super().keyPressEvent(event)

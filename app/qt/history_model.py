"""The History table: a paged Qt model over the evaluation log.

``RunQuery`` adds the two things the History screen needs beyond ``app.store.RunFilter``: a text search
(instruction or answer) and "rated or not". It is built on the store's own ``runs_select``/``run_view``
so rows are the store's ``RunView``; it belongs in app.store.queries (asked of its owner) and lives here
until then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from sqlalchemy import exists, func, or_, select

from app.store import EvalLog, RunFilter, RunView
from app.store.models import Rating, Run
from app.store.queries import run_view, runs_select

PAGE_SIZE = 100
"""Rows fetched per page as the table scrolls: one short query, never the whole log."""


@dataclass(frozen=True)
class RunQuery:
    filters: RunFilter = field(default_factory=RunFilter)
    search: str = ""
    """Case-insensitive substring of the instruction or the answer."""
    rated: bool | None = None
    """True: runs with a current rating; False: runs without; None: both."""

    def _apply(self, stmt: Any) -> Any:
        stmt = self.filters.apply(stmt)
        if self.search.strip():
            pat = "%" + self.search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(or_(Run.instruction.ilike(pat, escape="\\"), Run.answer.ilike(pat, escape="\\")))
        if self.rated is not None:
            has = exists().where(Rating.run_id == Run.id, Rating.is_current.is_(True))
            stmt = stmt.where(has if self.rated else ~has)
        return stmt

    def page(self, log: EvalLog, offset: int, limit: int) -> list[tuple[RunView, float | None, int]]:
        """Runs newest first, each with its mean current score and number of current ratings."""
        mean = (
            select(func.avg(Rating.score)).where(Rating.run_id == Run.id, Rating.is_current.is_(True))
        ).scalar_subquery()
        n = (select(func.count()).where(Rating.run_id == Run.id, Rating.is_current.is_(True))).scalar_subquery()
        stmt = self._apply(runs_select().add_columns(mean.label("mean_score"), n.label("n_ratings")))
        stmt = stmt.order_by(Run.started_at.desc(), Run.id.desc()).offset(offset).limit(limit)
        with log.read_session() as s:
            return [(run_view(r), r.mean_score, r.n_ratings) for r in s.execute(stmt)]

    def count(self, log: EvalLog) -> int:
        with log.read_session() as s:
            return int(s.scalar(self._apply(select(func.count()).select_from(Run))) or 0)


COLUMNS = ("Run", "Started", "Task", "Model", "Instruction", "Finish", "Tokens", "Score")


class RunTableModel(QAbstractTableModel):
    """Rows load a page at a time (``canFetchMore``/``fetchMore``) as the view scrolls."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.log: EvalLog | None = None
        self.query = RunQuery()
        self.rows: list[tuple[RunView, float | None, int]] = []
        self.total = 0

    def reset(self, log: EvalLog | None, query: RunQuery) -> None:
        """Re-run the query from the first page (raises StoreError if the log cannot be read)."""
        self.beginResetModel()
        try:
            self.log, self.query, self.rows, self.total = log, query, [], 0
            if log is not None:
                self.total = query.count(log)
                self.rows = query.page(log, 0, PAGE_SIZE)
        finally:
            self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self.log is not None and len(self.rows) < self.total

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent) or self.log is None:
            return
        more = self.query.page(self.log, len(self.rows), PAGE_SIZE)
        if not more:
            self.total = len(self.rows)
            return
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows) + len(more) - 1)
        self.rows.extend(more)
        self.endInsertRows()

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def run_at(self, row: int) -> RunView:
        return self.rows[row][0]

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        v, mean, n = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return _cell(v, mean, n, col)
        if role == Qt.ItemDataRole.ToolTipRole and col == 4:
            return v.instruction
        if role == Qt.ItemDataRole.ToolTipRole and col == 5 and v.error:
            return v.error
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (0, 6, 7):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def _cell(v: RunView, mean: float | None, n: int, col: int) -> Any:
    if col == 0:
        return v.id
    if col == 1:
        return v.started_at.astimezone().strftime("%Y-%m-%d %H:%M")
    if col == 2:
        return v.task
    if col == 3:
        return f"{v.model_name} ({v.model_quant})"
    if col == 4:
        return v.instruction if len(v.instruction) < 90 else v.instruction[:87] + "…"
    if col == 5:
        return v.finish_reason or v.status
    if col == 6:
        return v.completion_tokens if v.completion_tokens is not None else ""
    if col == 7:
        return "" if mean is None else (f"{mean:.1f}" if n == 1 else f"{mean:.2f} ({n})")
    return None

"""The History table: a paged Qt model over the evaluation log.

Its query (``app.store.RunQuery``: filters, text search, rated or not) and the reads live in the store
(``EvalLog.history_page`` / ``count_history``); this module only shows the rows.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from app.store import EvalLog, RunQuery, RunView

__all__ = ["COLUMNS", "PAGE_SIZE", "RunQuery", "RunTableModel", "score_text"]

PAGE_SIZE = 100
"""Rows fetched per page as the table scrolls: one short query, never the whole log."""


COLUMNS = ("Run", "Started", "Note", "Task", "Model", "Instruction", "Finish", "Tokens", "Your score")
"""The last column is the viewing rater's own score (``RunQuery.viewer``), never other raters' mean."""
NOTE_COL, MODEL_COL, INSTRUCTION_COL, FINISH_COL, SCORE_COL = (
    COLUMNS.index(c) for c in ("Note", "Model", "Instruction", "Finish", "Your score")
)


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
                self.total = log.count_history(query)
                self.rows = log.history_page(query, 0, PAGE_SIZE)
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
        self.append_page(self.log.history_page(self.query, len(self.rows), PAGE_SIZE))

    def append_page(self, more: list[tuple[RunView, float | None, int]]) -> None:
        """Add a page read after the rows held now; an empty page means the log holds no more."""
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
        if role == Qt.ItemDataRole.ToolTipRole and col == NOTE_COL:
            return f"{v.note_title}\nsha256 {v.note_sha256} · {v.note_chars:,} characters"
        if role == Qt.ItemDataRole.ToolTipRole and col == INSTRUCTION_COL:
            return v.instruction
        if role == Qt.ItemDataRole.ToolTipRole and col == FINISH_COL and v.error:
            return v.error
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (0, COLUMNS.index("Tokens"), SCORE_COL):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def score_text(mean: float | None, n: int = 1) -> str:
    """A score as a list shows it: a whole score is "2", never "2.0"; a mean of several "2.50 (2)"."""
    if mean is None:
        return ""
    if n == 1:
        return f"{mean:g}"
    return f"{mean:.2f} ({n})"


def _cell(v: RunView, mean: float | None, n: int, col: int) -> Any:
    name = COLUMNS[col]
    if name == "Run":
        return v.id
    if name == "Started":
        return v.started_at.astimezone().strftime("%Y-%m-%d %H:%M")
    if name == "Note":
        return v.note_caption
    if name == "Task":
        return v.task
    if name == "Model":
        return f"{v.model_name} ({v.model_quant})"
    if name == "Instruction":
        return v.instruction if len(v.instruction) < 90 else v.instruction[:87] + "…"
    if name == "Finish":
        return v.finish_reason or v.status
    if name == "Tokens":
        return v.completion_tokens if v.completion_tokens is not None else ""
    if name == "Your score":
        return score_text(mean, n)
    return None

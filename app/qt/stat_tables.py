"""The read-only tables and number formats the Statistics screen's views share (the log's and a study's)."""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

DASH = "–"
"""What a missing number shows (no data, or not enough for an estimate)."""


def num(v: float | None, pct: bool = False) -> str:
    """Two decimals (or a whole percentage); a dash for None or NaN."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return DASH
    return f"{v:.0%}" if pct else f"{v:.2f}"


def interval(low: float | None, high: float | None) -> str:
    """ "low – high", or a dash when there is no interval (None or NaN bounds)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return DASH
    return f"{low:.2f} – {high:.2f}"


def table(headers: list[str], name: str) -> QTableWidget:
    """A read-only table that stretches its first column (the statistics' tables look alike)."""
    t = QTableWidget(0, len(headers))
    _setup(t, headers, name)
    return t


def _setup(t: QTableWidget, headers: list[str], name: str) -> None:
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().hide()
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    t.setAccessibleName(name)


class RowsTable(QTableWidget):
    """A read-only table as tall as ``rows`` rows whatever it holds: filling it never moves what is below
    (more rows scroll inside it). The height follows the font, so a 14 pt font still shows ``rows`` rows."""

    def __init__(self, headers: list[str], name: str, rows: int, parent: QWidget | None = None) -> None:
        super().__init__(0, len(headers), parent)
        _setup(self, headers, name)
        self.rows = rows
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def _height(self) -> int:
        header = self.horizontalHeader().sizeHint().height()
        return header + self.rows * self.verticalHeader().defaultSectionSize() + 2 * self.frameWidth()

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), self._height())

    def minimumSizeHint(self) -> QSize:
        return QSize(super().minimumSizeHint().width(), self._height())

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self.updateGeometry()


def tint(label: QLabel, color: str) -> None:
    """Colour a label's text through its palette: a style sheet would also cut it off from the window's font
    (the Settings' font size), so it would stay small when the rest grows."""
    pal = label.palette()
    pal.setColor(QPalette.ColorRole.WindowText, QColor(color))
    label.setPalette(pal)


def fill(t: QTableWidget, rows: list[tuple[object, ...]]) -> None:
    t.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            t.setItem(r, c, QTableWidgetItem(str(v)))


class LinesLabel(QLabel):
    """A word-wrapped label exactly ``lines`` lines tall, whatever it says: a message arriving or going does
    not move the widgets below it. A longer text is cut at the bottom; the tooltip holds it whole."""

    def __init__(self, lines: int, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.lines = lines
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._fit()

    def setText(self, text: str) -> None:  # type: ignore[override]
        super().setText(text)
        self.setToolTip(text if len(text) > 80 else "")

    def _fit(self) -> None:
        m = self.contentsMargins()
        self.setFixedHeight(self.lines * self.fontMetrics().lineSpacing() + m.top() + m.bottom() + 2)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit()

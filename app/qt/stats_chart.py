"""A per-task chart of mean scores with 95% intervals, one colour per model, drawn with QPainter
(QtCharts is not part of PySide6-Essentials)."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.store.stats import MeanCI
from resources import TASK_NAMES, get_task

PALETTE = ("#3b7dd8", "#e39b2d", "#2e9e5b", "#c0392b", "#8e5bd1", "#6b6b6b")


class MeanScoreChart(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.means: list[MeanCI] = []
        self.names: dict[str, str] = {}
        """Log label -> the label shown (the model's name with the DEMO mark)."""
        self.setMinimumHeight(260)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Mean score per task and model")

    def sizeHint(self) -> QSize:
        return QSize(900, 340)

    def set_data(self, means: list[MeanCI], names: dict[str, str] | None = None) -> None:
        self.means = means
        self.names = names or {}
        self.update()

    def models(self) -> list[str]:
        return sorted({m.model for m in self.means})

    def paintEvent(self, _e: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        fm = QFontMetrics(self.font())
        models = self.models()
        tasks = [t for t in TASK_NAMES if any(m.task == t for m in self.means)] or list(TASK_NAMES)
        # Legend entries wrap onto as many lines as the names need.
        lines, lx = 1, 0.0
        for model in models:
            w = 14 + fm.horizontalAdvance(self.names.get(model, model)) + 24
            if lx and lx + w > self.width() - 60:
                lines, lx = lines + 1, 0.0
            lx += w
        legend_h = (fm.height() + 6) * lines
        # The y labels get their own column left of the axis, so no label touches it.
        axis_x = fm.horizontalAdvance("4") + 16
        plot = QRectF(
            axis_x, 12 + legend_h, self.width() - axis_x - 16, self.height() - 12 - legend_h - 2.4 * fm.height() - 12
        )
        if plot.width() < 50 or plot.height() < 50:
            return

        # Y axis: rubric 1..4.
        # A line of room above 4 and below 1: a value label at 1 would touch the task names under the axis.
        pad = fm.height()

        def y(v: float) -> float:
            return plot.bottom() - pad - (v - 1) / 3 * (plot.height() - 2 * pad)

        p.setPen(QPen(QColor("#dddddd"), 1))
        for s in (1, 2, 3, 4):
            p.drawLine(QPointF(plot.left(), y(s)), QPointF(plot.right(), y(s)))
        p.setPen(QColor("#444444"))
        for s in (1, 2, 3, 4):
            p.drawText(QRectF(0, y(s) - fm.height() / 2, axis_x - 8, fm.height()), Qt.AlignmentFlag.AlignRight, str(s))
        p.drawLine(QPointF(plot.left(), plot.top()), QPointF(plot.left(), plot.bottom()))
        if not self.means:
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "No rated runs yet: rate answers on the Ask screen.")
            return
        # X: one group per task, one point per model within the group.
        gw = plot.width() / len(tasks)
        lookup = {(m.model, m.task): m for m in self.means}
        for ti, task in enumerate(tasks):
            gx = plot.left() + ti * gw
            label = get_task(task).slug.upper() if fm.horizontalAdvance(task) > gw - 6 else task
            p.setPen(QColor("#333333"))
            p.drawText(
                QRectF(gx + 3, plot.bottom() + 4, gw - 6, fm.height() * 2.2),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
                label,
            )
            for mi, model in enumerate(models):
                m = lookup.get((model, task))
                if m is None:
                    continue
                x = gx + gw * (mi + 1) / (len(models) + 1)
                color = QColor(PALETTE[mi % len(PALETTE)])
                p.setPen(QPen(color, 2))
                if not math.isnan(m.low):
                    p.drawLine(QPointF(x, y(m.low)), QPointF(x, y(m.high)))
                    p.drawLine(QPointF(x - 4, y(m.low)), QPointF(x + 4, y(m.low)))
                    p.drawLine(QPointF(x - 4, y(m.high)), QPointF(x + 4, y(m.high)))
                p.setBrush(color)
                p.drawEllipse(QPointF(x, y(m.mean)), 4.5, 4.5)
                p.setPen(QColor("#333333"))
                p.drawText(QPointF(x + 7, y(m.mean) + fm.ascent() / 2 - 1), f"{m.mean:.2f} (n={m.runs})")
        # Legend.
        lx, ly = plot.left(), 6.0
        for mi, model in enumerate(models):
            w = 14 + fm.horizontalAdvance(self.names.get(model, model)) + 24
            if lx > plot.left() and lx + w > self.width() - 60 + plot.left():
                lx, ly = plot.left(), ly + fm.height() + 6
            color = QColor(PALETTE[mi % len(PALETTE)])
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(color)
            p.drawEllipse(QPointF(lx + 5, ly + fm.height() / 2), 5, 5)
            p.setPen(QColor("#222222"))
            name = self.names.get(model, model)
            p.drawText(QPointF(lx + 14, ly + fm.ascent()), name)
            lx += 14 + fm.horizontalAdvance(name) + 24

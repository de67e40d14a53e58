"""Small widgets shared by the screens: an inline error banner, the note editor and the context meter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QPainter, QPaintEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.budget import Budget
from app.core.errors import NoteError
from app.core.notes import read_note_file

ERROR_STYLE = "background:#fdecea; color:#8a1c13; border:1px solid #e6a19a; border-radius:4px; padding:6px;"
INFO_STYLE = "background:#e8f1fb; color:#17406b; border:1px solid #a9c6e8; border-radius:4px; padding:6px;"


INFO_SHOWN_MS = 12_000
"""A passing message ("Opened note2.txt", "Exported ...") goes away by itself after this long; errors and
notices (the default model is missing, ...) stay until dismissed."""
FLOAT_MARGIN = 6


class Banner(QWidget):
    """A message shown inside the window (not a modal dialog): errors stay visible until dismissed.

    In a layout it takes room when shown; after :meth:`float_over` it floats over the top of its screen
    instead, so a message arriving or going never moves the controls under the pointer.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._host: QWidget | None = None
        self._expire = QTimer(self)
        self._expire.setSingleShot(True)
        self._expire.timeout.connect(self.hide)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label, 1)
        lay.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.kind = ""
        self.hide()

    def show_error(self, text: str) -> None:
        self._show(text, ERROR_STYLE, "error")

    def show_info(self, text: str, passing: bool = False) -> None:
        """``passing``: a confirmation that needs no action, hidden again after ``INFO_SHOWN_MS``."""
        self._show(text, INFO_STYLE, "info")
        if passing:
            self._expire.start(INFO_SHOWN_MS)

    def _show(self, text: str, style: str, kind: str) -> None:
        self.kind = kind
        self.label.setText(text)
        self.label.setStyleSheet(style)
        self.show()
        self._expire.stop()
        if self._host is not None:
            self._place()
            self.raise_()

    def float_over(self, host: QWidget) -> None:
        """Float over the top edge of ``host`` (never in its layout): showing it moves nothing below."""
        self._host = host
        self.setParent(host)
        self.setAutoFillBackground(True)  # opaque: the controls under it do not show through
        host.installEventFilter(self)
        self.hide()

    def eventFilter(self, watched, event) -> bool:  # type: ignore[no-untyped-def]
        if watched is self._host and event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return super().eventFilter(watched, event)

    def _place(self) -> None:
        host = self._host
        if host is None:
            return
        width = max(100, host.width() - 2 * FLOAT_MARGIN)
        lay = self.layout()
        # As tall as the text needs at this width (a size hint guesses a narrower, so taller, label).
        height = lay.totalHeightForWidth(width) if lay.hasHeightForWidth() else self.sizeHint().height()
        self.setGeometry(FLOAT_MARGIN, FLOAT_MARGIN, width, height)

    def text(self) -> str:
        return "" if self.isHidden() else self.label.text()


class NoteEditor(QPlainTextEdit):
    """Plain-text note editor: paste, drop a .txt file, or open one; grounding highlights on demand."""

    file_loaded = Signal(str)
    """The file name (never its text)."""
    load_failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setPlaceholderText("Paste a discharge summary here, drop a .txt file, or use Open note… (Ctrl+O)")
        self.setTabChangesFocus(True)
        self.replace_hook: Callable[[str, str], bool] | None = None
        """``(text, what) -> replaced?``: lets the screen ask before a file replaces the user's text."""

    def insertFromMimeData(self, source: QMimeData) -> None:
        # Plain text only: rich text from a browser or word processor would carry hidden markup.
        if source.hasUrls() and not source.hasText():
            self._drop_urls(source)
            return
        self.insertPlainText(source.text())

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return source.hasText() or source.hasUrls()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if event.mimeData().hasUrls():
            self._drop_urls(event.mimeData())
            event.acceptProposedAction()
        else:
            super().dropEvent(event)

    def _drop_urls(self, data: QMimeData) -> None:
        files = [u.toLocalFile() for u in data.urls() if u.isLocalFile()]
        if files:
            self.load_file(files[0])

    def load_file(self, path: str | Path) -> bool:
        """Replace the note with a text file's content (checked by app.core.notes); False on error."""
        try:
            text = read_note_file(path)
        except NoteError as exc:
            self.load_failed.emit(str(exc))
            return False
        if self.replace_hook is not None:
            if not self.replace_hook(text, f"Opening {Path(path).name}"):
                return False
        else:
            self.setPlainText(text)
        self.file_loaded.emit(Path(path).name)
        return True

    def highlight(self, spans: list[tuple[int, int]], offset: int = 0, color: str = "#c8ecc9") -> None:
        """Background-highlight character ranges (note offsets, shifted by ``offset``)."""
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(color))
        sels = []
        doc_len = self.document().characterCount()
        for start, end in spans:
            s, e = start + offset, end + offset
            if 0 <= s < e <= doc_len:
                sel = QTextEdit.ExtraSelection()
                cur = QTextCursor(self.document())
                cur.setPosition(s)
                cur.setPosition(e, QTextCursor.MoveMode.KeepAnchor)
                sel.cursor, sel.format = cur, fmt
                sels.append(sel)
        self.setExtraSelections(sels)

    def clear_highlights(self) -> None:
        self.setExtraSelections([])


SEGMENT_COLORS = {
    "template": QColor("#9e9e9e"),
    "note": QColor("#3b7dd8"),
    "instruction": QColor("#8e5bd1"),
    "answer": QColor("#e39b2d"),
}


class ContextMeter(QWidget):
    """Template, note, instruction and reserved answer tokens against the model's context window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.budget: Budget | None = None
        self.bar = _MeterBar(self)
        self.label = QLabel("Context: waiting for the model")
        self.label.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.bar)
        lay.addWidget(self.label)
        self.setAccessibleName("Context meter")

    def set_message(self, text: str) -> None:
        self.budget = None
        self.label.setText(text)
        self.label.setStyleSheet("")
        self.bar.update()

    def set_budget(self, b: Budget, truncate: bool = False) -> None:
        """Show ``b``; with ``truncate`` a note that does not fit is described as what will happen to it."""
        self.budget = b
        parts = (
            f"template {b.template_tokens:,} · note {b.note_tokens:,} · instruction {b.instruction_tokens:,} · "
            f"answer reserve {b.reserved_answer_tokens:,} = {b.total:,} of {b.n_ctx:,} tokens"
        )
        if b.fits:
            self.label.setText(f"Context: {parts}")
            self.label.setStyleSheet("")
        elif truncate:
            self.label.setText(
                f"<b>Will be truncated:</b> the note's last {b.overflow:,} tokens are cut to fit (the cut is "
                f"reported with the answer). {parts}"
            )
            self.label.setStyleSheet("color:#8a4b00;")
        else:
            self.label.setText(
                f"<b>Does not fit: {b.overflow:,} tokens over.</b> {parts}. Shorten the note by about "
                f"{b.overflow:,} tokens, lower the maximum answer length, or truncate explicitly below."
            )
            self.label.setStyleSheet("color:#b3261e;")
        self.bar.update()

    @property
    def fits(self) -> bool | None:
        return None if self.budget is None else self.budget.fits


class _MeterBar(QWidget):
    def __init__(self, meter: ContextMeter) -> None:
        super().__init__(meter)
        self.meter = meter
        self.setMinimumHeight(14)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(200, 14)

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        b = self.meter.budget
        p.setPen(QColor("#b3261e") if b is not None and not b.fits else QColor("#8a8a8a"))
        p.setBrush(QColor("#f1f1f1"))
        p.drawRoundedRect(r, 3, 3)
        if b is None or b.n_ctx <= 0:
            return
        scale = r.width() / max(b.n_ctx, b.total)
        x = r.left()
        segs = [
            ("template", b.template_tokens),
            ("note", b.note_tokens),
            ("instruction", b.instruction_tokens),
            ("answer", b.reserved_answer_tokens),
        ]
        p.setPen(Qt.PenStyle.NoPen)
        for name, n in segs:
            w = n * scale
            p.setBrush(SEGMENT_COLORS[name])
            p.drawRect(QRectF(x, r.top() + 1, w, r.height() - 2))
            x += w
        if not b.fits:
            # The context's end, so the overflow past it is visible.
            p.setPen(QColor("#b3261e"))
            cx = r.left() + b.n_ctx * scale
            p.drawLine(int(cx), int(r.top()), int(cx), int(r.bottom()))


def combo(min_chars: int = 14) -> QComboBox:
    """A combo box whose width does not grow with its longest item (task names, model labels are long)."""
    c = QComboBox()
    c.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    c.setMinimumContentsLength(min_chars)
    return c

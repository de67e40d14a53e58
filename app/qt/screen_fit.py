"""Making the window fit a laptop screen and stay usable by keyboard.

* :class:`FlowLayout` wraps a row of buttons onto the next line when the window is narrow, so a row of
  five buttons does not set a 700-pixel minimum width.
* :func:`scrolled` puts a screen in a scroll area: at 1024x700, or with a 14-point font, everything stays
  reachable (the scroll area follows keyboard focus), instead of the window growing past the screen.
* :class:`FocusRing` draws a clearly visible frame around whichever widget has keyboard focus; the styles'
  own focus hints are faint (Fusion's is a one-pixel tint) and some widgets draw none at all.
* :func:`initial_size` picks the first window size from the screen it opens on.
"""

from __future__ import annotations

import contextlib

from PySide6.QtCore import QEvent, QObject, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QApplication,
    QFrame,
    QLayout,
    QLayoutItem,
    QScrollArea,
    QSizePolicy,
    QWidget,
    QWidgetItem,
)

PREFERRED_SIZE = QSize(1440, 900)
"""The first window's size on a large screen; smaller screens get ~92% of their available area."""


class FlowLayout(QLayout):
    """Left-to-right items that wrap to a new line when the width runs out (height follows width)."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def addWidget(self, w: QWidget) -> None:  # type: ignore[override]
        self.addChildWidget(w)
        self._items.append(QWidgetItem(w))
        self.invalidate()

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:
        w = sum(i.sizeHint().width() for i in self._visible()) + self._spacing * max(0, len(self._visible()) - 1)
        h = max((i.sizeHint().height() for i in self._visible()), default=0)
        m = self.contentsMargins()
        return QSize(w + m.left() + m.right(), h + m.top() + m.bottom())

    def minimumSize(self) -> QSize:
        # As narrow as the widest single item: everything else wraps.
        s = QSize()
        for i in self._visible():
            s = s.expandedTo(i.minimumSize())
        m = self.contentsMargins()
        return s + QSize(m.left() + m.right(), m.top() + m.bottom())

    def _visible(self) -> list[QLayoutItem]:
        return [i for i in self._items if not (i.widget() and i.widget().isHidden())]

    def _place(self, rect: QRect, *, move: bool) -> int:
        m = self.contentsMargins()
        r = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        x, y, line_h = r.x(), r.y(), 0
        for item in self._visible():
            hint = item.sizeHint()
            if x > r.x() and x + hint.width() > r.right() + 1:
                x, y, line_h = r.x(), y + line_h + self._spacing, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), QSize(min(hint.width(), r.width()), hint.height())))
            x += hint.width() + self._spacing
            line_h = max(line_h, hint.height())
        return y + line_h - rect.y() + m.bottom()


def flow(*widgets: QWidget) -> QWidget:
    """A widget holding ``widgets`` in a :class:`FlowLayout`."""
    box = QWidget()
    lay = FlowLayout(box)
    for w in widgets:
        lay.addWidget(w)
    sp = box.sizePolicy()
    sp.setHeightForWidth(True)
    sp.setHorizontalPolicy(QSizePolicy.Policy.Preferred)
    box.setSizePolicy(sp)
    return box


def scrolled(content: QWidget, *, horizontal: bool = False) -> QScrollArea:
    """``content`` in a frameless scroll area that resizes it and keeps the focused widget in view."""
    area = QScrollArea()
    area.setWidget(content)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(
        Qt.ScrollBarPolicy.ScrollBarAsNeeded if horizontal else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    )
    area.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    return area


def initial_size(screen_size: QSize | None) -> QSize:
    """The first window size: the preferred size, shrunk to ~92% of a smaller screen's available area."""
    if screen_size is None or screen_size.isEmpty():
        return PREFERRED_SIZE
    return QSize(
        min(PREFERRED_SIZE.width(), int(screen_size.width() * 0.92)),
        min(PREFERRED_SIZE.height(), int(screen_size.height() * 0.92)),
    )


def available_size(widget: QWidget) -> QSize | None:
    screen = widget.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry().size() if screen is not None else None


FOCUS_COLOR = "#1a62c6"


class FocusRing(QWidget):
    """A 2-pixel frame drawn over the window around the widget with keyboard focus.

    It is a transparent child of the window that follows focus changes and the focused widget's moves and
    resizes; it never takes mouse or keyboard input.
    """

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.window_ = window
        self.target: QWidget | None = None
        self._watched: list[QWidget] = []
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.hide()
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_changed)

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        for w in self._watched:
            with contextlib.suppress(RuntimeError):  # already deleted
                w.removeEventFilter(self)
        self.target = new if new is not None and new.window() is self.window_ and new is not self else None
        # Watch the widget and its ancestors: scrolling moves the scroll area's content, not the widget.
        # A widget focused inside a scroll area (by Tab or by code) is scrolled into view.
        self._watched = []
        w = self.target
        while w is not None and w is not self.window_:
            parent = w.parentWidget()
            if isinstance(parent, QWidget) and isinstance(parent.parentWidget(), QScrollArea):
                parent.parentWidget().ensureWidgetVisible(self.target, 8, 8)
            w.installEventFilter(self)
            self._watched.append(w)
            w = w.parentWidget()
        self.follow()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() in (
            QEvent.Type.Move,
            QEvent.Type.Resize,
            QEvent.Type.Hide,
            QEvent.Type.Show,
        ):
            self.follow()
        return False

    def follow(self) -> None:
        t = self.target
        if t is None or not t.isVisible() or not (t.focusPolicy() & Qt.FocusPolicy.TabFocus):
            self.hide()
            return
        # A widget inside a scroll area is clipped by its viewport: ring the visible part only.
        rect = QRect(t.mapTo(self.window_, QPoint(0, 0)), t.size())
        clip = t.visibleRegion().boundingRect()
        if not clip.isEmpty():
            rect = QRect(t.mapTo(self.window_, clip.topLeft()), clip.size())
        ring = rect.adjusted(-3, -3, 3, 3)
        moved = self.isVisible() and ring != self.geometry()
        self.setGeometry(ring)
        self.raise_()
        self.show()
        self.update()
        if moved:
            self._repaint_scrolled(t)

    def _repaint_scrolled(self, t: QWidget) -> None:
        """Scrolling blits the viewport's pixels, the ring's drawing over them included, so a copy of the
        ring would stay painted where the content moved it (the stale rectangles over the instruction box):
        have each scroll area the focused widget is in repaint what it shows."""
        w = t.parentWidget()
        while w is not None and w is not self.window_:
            if isinstance(w, QAbstractScrollArea):
                w.viewport().update()
            w = w.parentWidget()

    def paintEvent(self, _e: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(QColor(FOCUS_COLOR), 2))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRoundedRect(self.rect().adjusted(1, 1, -1, -1), 4, 4)


def tab_leaves_item_views(root: QWidget) -> None:
    """Tab moves on to the next control instead of from cell to cell (arrow keys move between cells):
    a table with many rows would otherwise hold the keyboard on the screen for as many Tab presses."""
    from PySide6.QtWidgets import QAbstractItemView

    for view in root.findChildren(QAbstractItemView):
        view.setTabKeyNavigation(False)

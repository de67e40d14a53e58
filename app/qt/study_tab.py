"""The Study screen: a clinician rates a study's answers, one at a time, from the keyboard.

Two ways in: open a sealed packet (file + passphrase; the rater's own workstation, ratings kept in this
machine's log and exported as a sealed responses file), or, on a shared workstation, pick a study in the log
and yourself from its rater list. Either way the screen holds a ``RatingSession``
(``app/service/rating_session.py``) and never knows more than that rater's own items: no arm, no model name,
no other rater's score.

Keys (when no text box has focus): 1-4 score the item and go to the next, H toggles the hallucination flag,
Alt+Left / Alt+Right move without rating, Esc leaves the comment box. Each rating is saved (in a worker: a slow
disk must not freeze the window) before the next item is shown; keys pressed while it saves are ignored rather
than applied to an item the rater has not seen yet.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.packets import ResponseRow, read_packet, utc_now
from app.qt.app_context import AppContext
from app.qt.study_picker import StudyPicker
from app.qt.workers import Task, describe_error
from app.service.rating_session import PacketSession, RatingSession, first_unrated
from app.store.ratings import rating_problem

ERROR_STYLE = "color:#b3261e"


class StudyTab(QWidget):
    item_shown = Signal(int)
    """The index of the item now on screen (after a rating was saved, a move, or opening a session)."""
    saved = Signal(str)
    """The answer uid whose rating was just saved."""
    failed = Signal(str)
    opened = Signal()
    exported = Signal(str)
    """The responses file written."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.session: RatingSession | None = None
        self.index = 0
        self.ratings: dict[str, ResponseRow] = {}
        self.busy: Task | None = None
        """The save or open running now; input waits for it."""
        self._build()
        self._keys()
        self._show_empty()

    # -- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.open_button = QPushButton("&Open packet…")
        self.open_button.setToolTip("Open the sealed packet file your study coordinator gave you")
        self.open_button.clicked.connect(self.choose_packet)
        self.picker = StudyPicker(self.ctx)
        self.picker.chosen.connect(self.open_session)
        self.export_button = QPushButton("E&xport responses…")
        self.export_button.setToolTip("Write your ratings as a sealed responses file for the coordinator")
        self.export_button.clicked.connect(self.choose_export)
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        # A long study name must not set the window's minimum width (1024 px at a 14 pt font).
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress = QLabel("0 / 0")
        self.progress.setToolTip("Rated / assigned to you")
        self.progress.setStyleSheet("font-weight:bold;")
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.export_button)
        top.addWidget(self.title, 1)
        top.addWidget(self.progress)

        self.note = _reader("The note")
        self.task = QLabel()
        self.task.setWordWrap(True)
        self.task.setTextFormat(Qt.TextFormat.PlainText)
        self.task.setStyleSheet("font-weight:bold;")
        self.failure = QLabel()
        self.failure.setWordWrap(True)
        self.failure.setStyleSheet(ERROR_STYLE)
        self.answer = _reader("The answer to rate")
        self.rubric = QLabel()
        self.rubric.setWordWrap(True)
        self.rubric.setTextFormat(Qt.TextFormat.RichText)
        self.hallucination = QCheckBox("Hallucination (H): states something the note does not support")
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("comment (optional)")
        self.corrected = QPlainTextEdit()
        self.corrected.setPlaceholderText("corrected answer (optional)")
        self.corrected.setTabChangesFocus(True)
        self.corrected.setMaximumHeight(70)
        self.prev_button = QPushButton("◀ &Previous")
        self.prev_button.setToolTip("Alt+Left")
        self.prev_button.clicked.connect(lambda: self.move(-1))
        self.next_button = QPushButton("&Next ▶")
        self.next_button.setToolTip("Alt+Right: next item without rating this one")
        self.next_button.clicked.connect(lambda: self.move(1))
        nav = QHBoxLayout()
        nav.addWidget(self.prev_button)
        nav.addStretch(1)
        nav.addWidget(self.next_button)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        for w in (self.task, self.failure):
            rl.addWidget(w)
        rl.addWidget(self.answer, 1)
        for w in (self.rubric, self.hallucination, self.comment, self.corrected):
            rl.addWidget(w)
        rl.addLayout(nav)
        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.addWidget(self.note)
        self.split.addWidget(right)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 1)
        self.split.setSizes([500, 500])  # the note is the long text: half the width, not a third
        self.status = QLabel()
        self.status.setWordWrap(True)

        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.picker)
        lay.addWidget(self.split, 1)
        lay.addWidget(self.status)

    def _keys(self) -> None:
        ctx = Qt.ShortcutContext.WidgetWithChildrenShortcut
        # Editable text boxes claim printable keys (ShortcutOverride), so 1-4 and H type into a comment there.
        for score in (1, 2, 3, 4):
            QShortcut(QKeySequence(str(score)), self, lambda s=score: self.rate(s), context=ctx)
        QShortcut(QKeySequence("H"), self, self.hallucination.toggle, context=ctx)
        QShortcut(QKeySequence("Alt+Left"), self, lambda: self.move(-1), context=ctx)
        QShortcut(QKeySequence("Alt+Right"), self, lambda: self.move(1), context=ctx)
        for box in (self.comment, self.corrected):
            box.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Esc leaves a text box (the line edit keeps Esc for itself otherwise), so 1-4 rate again.
        if event.type() == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Escape:  # type: ignore[attr-defined]
            self.answer.setFocus()
            return True
        return super().eventFilter(watched, event)

    # -- opening ----------------------------------------------------------------------------------
    def choose_packet(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a rater packet", "", "Rater packets (*.packet);;All files (*)"
        )
        if not path:
            return
        passphrase, ok = QInputDialog.getText(
            self, "Passphrase", f"Passphrase for {Path(path).name}:", QLineEdit.EchoMode.Password
        )
        if ok:
            self.open_packet(path, passphrase)

    def open_packet(self, path: str | Path, passphrase: str) -> Task | None:
        """Read and check the packet in a worker (the key derivation takes a tenth of a second), then rate it."""
        log = self.ctx.log
        if log is None:
            self._fail(self.ctx.log_error or "the evaluation log is not open yet (your ratings are kept there)")
            return None

        def work(_job) -> tuple[RatingSession, dict[str, ResponseRow]]:
            session = PacketSession(log, read_packet(path, passphrase), passphrase)
            return session, session.saved()

        return self._start(Task(work, "open packet"), lambda got: self._opened(*got), "Opening the packet…")

    def open_session(self, session: RatingSession) -> Task | None:
        """Rate ``session`` (the shared-workstation path hands one in from the study picker)."""
        return self._start(Task(lambda _job: (session, session.saved()), "open study"), lambda got: self._opened(*got))

    def _opened(self, session: RatingSession, ratings: dict[str, ResponseRow]) -> None:
        self.session, self.ratings = session, dict(ratings)
        self.title.setText(f"Study {session.title} · rater {session.rater}")
        self.rubric.setText(
            "<br>".join(
                f"<b>{lv['score']}&nbsp;&nbsp;{_html(str(lv['label']))}</b>: {_html(str(lv['definition']))}"
                for lv in session.rubric
            )
        )
        self.export_button.setEnabled(session.can_export)
        done = len(self.ratings)
        resumed = f"; resuming at item {first_unrated(session.items, self.ratings) + 1}" if done else ""
        self.status.setText(f"{len(session.items)} answers to rate{resumed}. Keys: 1-4 rate, H hallucination.")
        self.opened.emit()
        self.show_item(first_unrated(session.items, self.ratings))

    # -- one item ---------------------------------------------------------------------------------
    def _show_empty(self) -> None:
        self.title.setText("No study open: open your packet, or choose a study and yourself below the log's list.")
        self.export_button.setEnabled(False)
        for w in (self.prev_button, self.next_button, self.hallucination, self.comment, self.corrected):
            w.setEnabled(False)

    def show_item(self, index: int) -> None:
        s = self.session
        if s is None or not s.items:
            self._show_empty()
            return
        self.index = max(0, min(index, len(s.items) - 1))
        it = s.items[self.index]
        self.note.setPlainText(it.note)
        self.task.setText(f"Item {self.index + 1} of {len(s.items)} · {it.task}\n{it.instruction}")
        self.failure.setText(
            f"No usable answer: {it.failure}. Rate it like any answer (usually 1)." if it.failure else ""
        )
        self.failure.setVisible(bool(it.failure))
        self.answer.setPlainText(it.answer if it.answer.strip() else "(empty answer)")
        mine = self.ratings.get(it.answer_uid)
        self.hallucination.setChecked(bool(mine and mine.hallucination))
        self.comment.setText((mine.comment if mine else None) or "")
        self.corrected.setPlainText((mine.corrected_answer if mine else None) or "")
        for w in (self.hallucination, self.comment, self.corrected):
            w.setEnabled(True)
        self.prev_button.setEnabled(self.index > 0)
        self.next_button.setEnabled(self.index < len(s.items) - 1)
        self._show_progress(mine)
        if self.focusWidget() in (self.comment, self.corrected) or self.focusWidget() is None:
            self.answer.setFocus()
        self.item_shown.emit(self.index)

    def _show_progress(self, mine: ResponseRow | None) -> None:
        total = len(self.session.items) if self.session else 0
        self.progress.setText(f"{len(self.ratings)} / {total} rated")
        if mine is not None:
            flag = " with the hallucination flag" if mine.hallucination else ""
            self.status.setText(f"You rated this item {mine.score}{flag}; a key 1-4 rates it again.")

    def _form(self, score: int) -> ResponseRow | None:
        if self.session is None or not self.session.items:
            return None
        uid = self.session.items[self.index].answer_uid
        comment, corrected = self.comment.text().strip(), self.corrected.toPlainText().strip()
        return ResponseRow(uid, score, self.hallucination.isChecked(), comment or None, corrected or None, utc_now())

    def _changed_since_saved(self) -> ResponseRow | None:
        """The current item's rating with the form's flag and texts, if they differ from what was saved."""
        if self.session is None or not self.session.items:
            return None
        mine = self.ratings.get(self.session.items[self.index].answer_uid)
        row = self._form(mine.score) if mine else None
        if mine is None or row is None:
            return None
        same = (row.hallucination, row.comment, row.corrected_answer) == (
            mine.hallucination,
            mine.comment,
            mine.corrected_answer,
        )
        return None if same else row

    # -- rating and moving ------------------------------------------------------------------------
    def rate(self, score: int) -> Task | None:
        """Save ``score`` (with the flag, comment and corrected answer) for the item shown, then show the next."""
        row = self._form(score)
        if row is None or self.busy is not None:
            return None
        problem = rating_problem(row.score, bool(row.hallucination), row.comment)  # the store's rubric rule
        if problem is not None:
            self._fail(f"{problem} (type it in the comment box, then press the score again)")
            self.comment.setFocus()
            return None
        return self._save(row, self.index + 1)

    def move(self, step: int) -> Task | None:
        """Go ``step`` items on; a rated item whose flag or texts were edited is saved first."""
        if self.session is None or self.busy is not None:
            return None
        target = self.index + step
        if not 0 <= target < len(self.session.items):
            return None
        row = self._changed_since_saved()
        if row is not None:
            return self._save(row, target)
        self.show_item(target)
        return None

    def flush(self) -> None:
        """Before closing: save an edited flag or text of a rated item (in this thread: the app is closing)."""
        row = self._changed_since_saved()
        if row is not None and self.session is not None and self.busy is None:
            try:
                self.session.save(row)
            except Exception as exc:  # closing: report it, never block the close
                self._fail(describe_error(exc))

    def _save(self, row: ResponseRow, then: int) -> Task | None:
        session = self.session
        assert session is not None

        def work(_job) -> ResponseRow:
            session.save(row)
            return row

        def done(saved: ResponseRow) -> None:
            self.ratings[saved.answer_uid] = saved
            self.saved.emit(saved.answer_uid)
            if then >= len(session.items):
                self._show_progress(saved)
                self.status.setText(f"Saved {saved.score}. That was the last item: export your responses.")
                self.item_shown.emit(self.index)
            else:
                self.show_item(then)
                if self.ratings.get(session.items[then].answer_uid) is None:
                    self.status.setText(f"Saved {saved.score} for item {then}. Keys: 1-4 rate, H hallucination.")
            self.ctx.runs_changed.emit()

        return self._start(Task(work, "save study rating"), done, "Saving…")

    # -- export -----------------------------------------------------------------------------------
    def choose_export(self) -> None:
        s = self.session
        if s is None or not s.can_export:
            return
        default = f"{s.title}-{s.rater}.responses"
        path, _ = QFileDialog.getSaveFileName(self, "Export responses", default, "Responses (*.responses)")
        if path:
            self.export(path)

    def export(self, path: str | Path) -> Task | None:
        s = self.session
        if s is None or not s.can_export:
            return None

        def done(n: int) -> None:
            self.status.setText(
                f"Exported {n} rating{'s' * (n != 1)} to {Path(path).name}: give it to the coordinator."
            )
            self.exported.emit(str(path))

        return self._start(Task(lambda _job: s.export(path), "export responses"), done, "Exporting…")

    # -- workers ----------------------------------------------------------------------------------
    def _start(self, task: Task, on_done, message: str = "") -> Task | None:
        if self.busy is not None:
            return None
        self.busy = task
        if message:
            self.status.setText(message)

        def finished(result: object) -> None:
            self.busy = None
            on_done(result)

        def errored(exc: BaseException) -> None:
            self.busy = None
            self._fail(describe_error(exc))

        task.signals.finished.connect(finished)
        task.signals.errored.connect(errored)
        return self.ctx.tasks.start(task)

    def _fail(self, text: str) -> None:
        self.status.setText(f"<span style='{ERROR_STYLE}'>Not done: {_html(text)}</span>")
        self.failed.emit(text)


def _reader(name: str) -> QPlainTextEdit:
    box = QPlainTextEdit()
    box.setReadOnly(True)
    box.setAccessibleName(name)
    box.setTabChangesFocus(True)
    return box


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

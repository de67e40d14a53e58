"""The answer side of the Ask screen: what the answer belongs to, the streamed text, progress while the
note is processed, the grounding warning (capped, expandable) and the metrics line.

An answer is only ever shown together with the note and task it belongs to: :meth:`AnswerView.clear`
is called by the Ask screen as soon as either changes, and the header says which task and instruction
the answer is for. Incomplete answers (length limit, stopped) are marked plainly.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QTextEdit, QVBoxLayout, QWidget

from app.core.grounding import GroundingReport, describe_summary
from app.qt.screen_fit import scrolled

FLAGS_SHOWN = 6
"""Unsupported facts listed before "show all": two or three lines at 1024 px, so the answer keeps its room."""
FLAGS_EXPANDED_MAX_PX = 140
"""When expanded, the list scrolls inside this height instead of squeezing the answer box."""
TICK_MS = 250
"""Progress refresh while the note is processed (llama.cpp reports per batch of 512 tokens)."""

INCOMPLETE = {
    "length": "Incomplete: the answer reached the length limit ({n} tokens). Raise it in Settings, or ask for less.",
    "cancelled": "Incomplete: stopped before the answer ended.",
    "error": "The run failed: no answer.",
}


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class AnswerView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.answer = QTextEdit()
        self.answer.setReadOnly(True)
        self.answer.setAcceptRichText(False)
        self.answer.setPlaceholderText("The answer streams in here.")
        self.answer.setAccessibleName("Answer")
        self.answer.setTabChangesFocus(True)
        self.answer.setMinimumHeight(80)
        self.incomplete = QLabel()
        self.incomplete.setWordWrap(True)
        self.incomplete.setStyleSheet("color:#8a4b00; font-weight:bold;")
        self.incomplete.hide()
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.progress.hide()
        self.flags = QLabel()
        self.flags.setWordWrap(True)
        self.flags.setTextFormat(Qt.TextFormat.RichText)
        self.flags.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.flags.linkActivated.connect(self._toggle_flags)
        self.flags_area = scrolled(self.flags)
        self.flags_area.setMaximumHeight(FLAGS_EXPANDED_MAX_PX)
        self.flags_area.setSizeAdjustPolicy(self.flags_area.SizeAdjustPolicy.AdjustToContents)
        self.flags_area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.metrics = QLabel()
        self.metrics.setWordWrap(True)
        self.metrics.setStyleSheet("color:#444;")
        self.metrics.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.header)
        lay.addWidget(self.answer, 1)
        lay.addWidget(self.incomplete)
        lay.addWidget(self.progress)
        lay.addWidget(self.flags_area)
        lay.addWidget(self.metrics)
        self.report: GroundingReport | None = None
        self.flags_expanded = False
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self.update_progress)
        self._t0 = 0.0
        self._phase = ""
        self._evaluated = None
        self._prompt_tokens: int | None = None
        self.clear()

    # -- what the answer belongs to ---------------------------------------------------------------
    def set_header(self, task: str, instruction: str) -> None:
        short = instruction if len(instruction) <= 90 else instruction[:87] + "…"
        self.header.setText(f"<b>Answer</b> <span style='color:#555'>· {esc(task)}: {esc(short)}</span>")

    def clear(self, reason: str = "") -> None:
        self.stop_progress()
        self.answer.clear()
        self.answer.setExtraSelections([])
        self.header.setText("<b>Answer</b>")
        self.incomplete.hide()
        self.report = None
        self.flags.clear()
        self.flags_area.hide()
        self.metrics.setText(reason)

    def mark_incomplete(self, finish_reason: str, max_tokens: int | None = None, empty: bool = False) -> None:
        text = INCOMPLETE.get(finish_reason, "")
        if text:
            text = text.format(n=max_tokens if max_tokens is not None else "?")
        if empty and finish_reason != "error":
            text = (text + " " if text else "") + "The model gave an empty answer: there is nothing to rate."
        self.incomplete.setText(f"⚠ {text}" if text else "")
        self.incomplete.setVisible(bool(text))

    # -- progress ---------------------------------------------------------------------------------
    def start_progress(self, phase: str, evaluated=None, prompt_tokens: int | None = None) -> None:
        """Show ``phase`` with elapsed seconds; with ``evaluated`` (a callable giving the engine's evaluated
        token count) and ``prompt_tokens``, also the tokens processed and the percent."""
        self._t0 = time.monotonic()
        self._phase, self._evaluated, self._prompt_tokens = phase, evaluated, prompt_tokens
        self._start_tokens: int | None = None
        self.progress.setRange(0, 0)
        self.progress.show()
        self._timer.start()
        self.update_progress()

    def set_token_source(self, evaluated, prompt_tokens: int) -> None:
        """Percent from now on, when the prompt's size is known only once the worker counted it."""
        if self._evaluated is None and self.progress.isVisible():
            self._evaluated, self._prompt_tokens, self._start_tokens = evaluated, prompt_tokens, None
            self.update_progress()

    def set_phase(self, phase: str, *, tokens: bool = False) -> None:
        self._phase = phase
        if not tokens:
            self._evaluated = None
            self.progress.setRange(0, 0)
        self.update_progress()

    def stop_progress(self) -> None:
        self._timer.stop()
        self.progress.hide()

    def progress_text(self) -> str:
        return self.metrics.text()

    def update_progress(self) -> None:
        """Show the phase, elapsed time and (where known) percent of the prompt processed; a timer calls it."""
        elapsed = time.monotonic() - self._t0
        text = f"{self._phase} · {elapsed:.0f} s"
        if self._evaluated is not None and self._prompt_tokens:
            n = self._evaluated()
            if self._start_tokens is None:
                self._start_tokens = n
            # The count still holds the previous run's tokens until llama.cpp starts on this prompt.
            if n != self._start_tokens or n <= self._prompt_tokens:
                n = min(n, self._prompt_tokens)
                pct = int(100 * n / self._prompt_tokens)
                self.progress.setRange(0, 100)
                self.progress.setValue(pct)
                text = f"{self._phase}: {n:,} of {self._prompt_tokens:,} tokens ({pct}%) · {elapsed:.0f} s"
        self.metrics.setText(text + " · Esc stops")

    # -- grounding --------------------------------------------------------------------------------
    def show_grounding(self, report: GroundingReport) -> None:
        self.report = report
        self.flags_expanded = False
        found_fmt, missing_fmt = QTextCharFormat(), QTextCharFormat()
        found_fmt.setBackground(QColor("#c8ecc9"))
        missing_fmt.setBackground(QColor("#ffd6d1"))
        missing_fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        missing_fmt.setUnderlineColor(QColor("#b3261e"))
        sels = []
        spans = [(p.answer_start, p.answer_end, p.found) for c in report.claims for p in c.parts]
        spans += [(i.answer_start, i.answer_end, i.match != "none") for i in report.items]
        for start, end, found in spans:
            sel = QTextEdit.ExtraSelection()
            cur = QTextCursor(self.answer.document())
            cur.setPosition(start)
            cur.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            sel.cursor, sel.format = cur, found_fmt if found else missing_fmt
            sels.append(sel)
        self.answer.setExtraSelections(sels)
        self._render_flags()

    def _toggle_flags(self, _link: str = "") -> None:
        self.flags_expanded = not self.flags_expanded
        self._render_flags()

    def _render_flags(self) -> None:
        report = self.report
        self.flags_area.show()
        if report is None:
            self.flags.clear()
            self.flags_area.hide()
            return
        summary = report.summary()
        missing = summary["flagged"] + [f"{t} (named in the note, not in the answer)" for t in summary["omitted"]]
        line = esc(describe_summary(summary))
        if not report.claims and not report.items:
            self.flags.setText("<span style='color:#555'>No claims or items to check.</span>")
        elif missing:
            shown = missing if self.flags_expanded else missing[:FLAGS_SHOWN]
            items = "; ".join(f"<b>{esc(t)}</b>" for t in shown)
            more = ""
            if len(missing) > FLAGS_SHOWN:
                more = (
                    " <a href='#less'>show fewer</a>"
                    if self.flags_expanded
                    else f" … <a href='#all'>show all {len(missing)}</a>"
                )
            self.flags.setText(
                f"<span style='color:#b3261e'>⚠ Check ({len(missing)}): {items}</span>{more}"
                f"<br><span style='color:#555'>{line}.</span>"
            )
        else:
            self.flags.setText(f"<span style='color:#1e6b2a'>✓ {line} (highlighted green).</span>")
        # As tall as the text (no empty band under the answer), at most FLAGS_EXPANDED_MAX_PX: then it scrolls.
        width = max(self.answer.width() - 4, 200)  # the column's width (the area may not be laid out yet)
        self.flags_area.setFixedHeight(min(self.flags.heightForWidth(width) + 4, FLAGS_EXPANDED_MAX_PX))

"""The answer side of the Ask screen: what the answer belongs to, the streamed text, progress while the
note is processed, the grounding warning (capped, expandable) and the metrics line.

An answer is only ever shown together with the note and task it belongs to: :meth:`AnswerView.clear`
is called by the Ask screen as soon as either changes, and the header says which task and instruction
the answer is for. Incomplete answers (length limit, stopped) are marked plainly.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QTextEdit, QVBoxLayout, QWidget

from app.core.grounding import Claim, ClaimStatus, GroundingReport
from app.qt.screen_fit import scrolled
from app.qt.stat_tables import LinesLabel

FLAGS_SHOWN = 6
"""Flagged claims listed before "show all": two or three lines at 1024 px, so the answer keeps its room."""
FLAGS_EXPANDED_MAX_PX = 140
"""When expanded, the list scrolls inside this height instead of squeezing the answer box."""
GREEN, AMBER_BG, PINK = "#c8ecc9", "#ffe6b3", "#ffd6d1"
"""Backgrounds: supported, partly supported, not found."""
RED, AMBER = "#b3261e", "#8a4b00"
"""Text and underline colours of the same (amber dark enough to read on white)."""
CLAIM_COLOURS = {ClaimStatus.SUPPORTED: GREEN, ClaimStatus.PARTLY: AMBER_BG, ClaimStatus.NOT_FOUND: PINK}
TICK_MS = 250
"""Progress refresh while the note is processed (llama.cpp reports per batch of 512 tokens)."""

INCOMPLETE = {
    "length": "Incomplete: the answer reached the length limit ({n} tokens). Raise it in Settings, or ask for less.",
    "cancelled": "Incomplete: stopped before the answer ended.",
    "error": "The run failed: no answer.",
}
STOPPED_EARLY = "Stopped while the note was processed: no answer was written."
"""Esc before the first token: the run was stopped, not answered empty by the model."""


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class AnswerView(QWidget):
    claim_activated = Signal(int)
    """A flagged claim's link was clicked: its index in ``report.claims`` (the Ask screen shows it in the note)."""

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
        self.flags.linkActivated.connect(self._link)
        self.flags_area = scrolled(self.flags)
        self.flags_area.setMaximumHeight(FLAGS_EXPANDED_MAX_PX)
        self.flags_area.setSizeAdjustPolicy(self.flags_area.SizeAdjustPolicy.AdjustToContents)
        self.flags_area.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        # Two lines whatever it says (progress, then the metrics; a long line's whole text is the tooltip): the
        # answer box above keeps its height when the run ends, and at a 14 pt font it is not eaten by metrics.
        self.metrics = LinesLabel(2)
        self.metrics.setStyleSheet("color:#444;")
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
        self.unchecked_expanded = False
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
        if empty and finish_reason == "cancelled":
            text = STOPPED_EARLY
        elif empty and finish_reason != "error":
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
        self.flags_expanded = self.unchecked_expanded = False
        sels = []
        for start, end, fmt in answer_marks(report):
            sel = QTextEdit.ExtraSelection()
            cur = QTextCursor(self.answer.document())
            cur.setPosition(start)
            cur.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            sel.cursor, sel.format = cur, fmt
            sels.append(sel)
        self.answer.setExtraSelections(sels)
        self._render_flags()

    def _link(self, link: str) -> None:
        """``#all``/``#less``: more or fewer flags; ``#unchecked``: the unchecked claims; ``#claim-N``: go to it."""
        if link.startswith("#claim-"):
            self.claim_activated.emit(int(link.removeprefix("#claim-")))
            return
        if link == "#unchecked":
            self.unchecked_expanded = not self.unchecked_expanded
        else:
            self.flags_expanded = not self.flags_expanded
        self._render_flags()

    def _render_flags(self) -> None:
        report = self.report
        self.flags_area.show()
        if report is None:
            self.flags.clear()
            self.flags_area.hide()
            return
        self.flags.setText(flags_html(report, self.flags_expanded, self.unchecked_expanded))
        # As tall as the text (no empty band under the answer), at most FLAGS_EXPANDED_MAX_PX: then it scrolls.
        width = max(self.answer.width() - 4, 200)  # the column's width (the area may not be laid out yet)
        self.flags_area.setFixedHeight(min(self.flags.heightForWidth(width) + 4, FLAGS_EXPANDED_MAX_PX))


def _fmt(background: str = "", underline: str = "") -> QTextCharFormat:
    fmt = QTextCharFormat()
    if background:
        fmt.setBackground(QColor(background))
    if underline:
        fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        fmt.setUnderlineColor(QColor(underline))
    return fmt


def answer_marks(report: GroundingReport) -> list[tuple[int, int, QTextCharFormat]]:
    """Answer ranges to mark: supported claims green, partly ones amber with their missing parts underlined,
    claims not found red (wavy), items found green and items not in the note red; unchecked claims plain."""
    marks: list[tuple[int, int, QTextCharFormat]] = []
    for c in report.claims:
        colour = CLAIM_COLOURS.get(c.status)
        if colour is None:
            continue
        marks.append((c.answer_start, c.answer_end, _fmt(colour, RED if c.status == ClaimStatus.NOT_FOUND else "")))
        if c.status == ClaimStatus.PARTLY:
            marks += [(p.answer_start, p.answer_end, _fmt(colour, AMBER)) for p in c.parts if not p.found]
    for i in report.items:
        marks.append((i.answer_start, i.answer_end, _fmt(GREEN) if i.match != "none" else _fmt(PINK, RED)))
    return marks


def _claim_line(index: int, c: Claim) -> str:
    colour = RED if c.status == ClaimStatus.NOT_FOUND else AMBER
    label = "Not found" if c.status == ClaimStatus.NOT_FOUND else "Partly supported"
    reason = f": {esc(c.reason)}" if c.reason else ""
    return f"<a href='#claim-{index}' style='color:{colour}'><b>{label}</b></a> {esc(c.text)}{reason}"


def _once(lines: list[tuple[object, str]]) -> list[str]:
    """Each flag once: a term the answer repeats (or the note names twice) is one line, counted, not a list
    of the same word. Keys compare case-insensitively; the first occurrence's line (and link) is kept."""
    seen: dict[object, int] = {}
    out: list[list] = []
    for key, line in lines:
        k = (
            tuple(x.casefold() if isinstance(x, str) else x for x in key)
            if isinstance(key, tuple)
            else str(key).casefold()
        )
        if k in seen:
            out[seen[k]][1] += 1
        else:
            seen[k] = len(out)
            out.append([line, 1])
    return [line if n == 1 else f"{line} <span style='color:#555'>(×{n})</span>" for line, n in out]


def flags_html(report: GroundingReport, expanded: bool, unchecked_expanded: bool) -> str:
    """The grounding panel under the answer: the summary line, then each flagged claim (a link that shows
    where it is), items not in the note, possible omissions, and the unchecked claims (counted; listed
    on demand)."""
    line = esc(report.headline())
    if not report.claims and not report.items:
        return "<span style='color:#555'>No claims or items to check.</span>"
    claims = [(i, c) for i, c in enumerate(report.claims) if c.status in (ClaimStatus.PARTLY, ClaimStatus.NOT_FOUND)]
    flagged = _once([((c.status, c.text), _claim_line(i, c)) for i, c in claims])
    flagged += _once([(i.text, f"<b style='color:{RED}'>Not in the note</b> {esc(i.text)}") for i in report.unaligned])
    flagged += _once(
        [
            (o.text, f"<b style='color:{AMBER}'>Possibly omitted</b> {esc(o.text)} (named in the note)")
            for o in report.omissions
        ]
    )
    shown = flagged if expanded else flagged[:FLAGS_SHOWN]
    more = ""
    if len(flagged) > FLAGS_SHOWN:
        more = " <a href='#less'>show fewer</a>" if expanded else f"<br>… <a href='#all'>show all {len(flagged)}</a>"
    head = (
        f"<span style='color:{RED}'>⚠ Check ({len(flagged)}):</span> <span style='color:#555'>{line}.</span>"
        if flagged
        else f"<span style='color:#1e6b2a'>✓ {line} (highlighted green).</span>"
    )
    body = "".join(f"<br>{x}" for x in shown) + more
    unchecked = report.by_status(ClaimStatus.UNCHECKED)
    if unchecked:
        toggle = "hide" if unchecked_expanded else "show"
        body += f"<br><span style='color:#555'>{len(unchecked)} not checked</span> <a href='#unchecked'>{toggle}</a>"
        if unchecked_expanded:
            body += "".join(
                f"<br><span style='color:#555'>· {esc(c.text)}{': ' + esc(c.reason) if c.reason else ''}</span>"
                for c in unchecked
            )
    body += "".join(f"<br><span style='color:#555'>ⓘ {esc(n)}</span>" for n in report.notes)
    return head + body


def note_highlights(report: GroundingReport) -> list[tuple[int, int]]:
    """Note ranges to highlight green: the parts of each supported claim where the note supports them, and
    each aligned item's mentions (note offsets)."""
    spans = [sp for c in report.by_status(ClaimStatus.SUPPORTED) for p in c.parts if p.found for sp in p.note_spans]
    return spans + [sp for i in report.items for sp in i.note_spans]


def claim_note_spans(c: Claim) -> list[tuple[int, int]]:
    """Where to show a claim in the note, best first: the note's unit that supports it best (the sentence or
    line to compare with), its found parts, then where its other parts occur elsewhere; [] if nowhere."""
    found = sorted(sp for p in c.parts if p.found for sp in p.note_spans)
    elsewhere = sorted(sp for p in c.parts if not p.found for sp in p.note_spans)
    return ([c.note_unit] if c.note_unit else []) + found + elsewhere

"""Texts split into the units grounding compares: an answer into claims, a note into sentences and list lines.

Both splits keep exact character offsets into the text they were given. A line is split into sentences at
".", "!" or "?" followed by a space and a capital, a digit or an opening bracket, except after a title or a
Latin abbreviation ("Dr.", "e.g."), a single letter ("b.i.d.", "Vitamin D.") or a list number ("1.").
A claim's list marker ("1.", "2)", "(3)", "-", "*", "•") is left out of its text; a line ending in ":" is a
heading ("Medications:", "Here are her medications:"), not a claim.
"""

from __future__ import annotations

import re

Span = tuple[int, int]

_LINE = re.compile(r"[^\n\r]+")
_MARKER = re.compile(r"[ \t]*(?:\(\d{1,3}\)|\d{1,3}[.)]|[-*•–·▪◦>]+)[ \t]+")
_SENTENCE_END = re.compile(r"(?<![.!?])[.!?]++[\"”')\]]*+[ \t]+(?=[\"“(\[]?[A-Z0-9])")
"""Starts only at the first of a run of stops, and never backtracks into it: linear on "....." x 50,000."""
_NO_SPLIT_AFTER = re.compile(
    r"(?:\b(?:dr|mr|mrs|ms|st|vs|no|approx|e\.g|i\.e|etc|fig|pt|pts|wk|yr|yrs|hr|hrs|min|max)|\b[A-Za-z])\.$",
    re.IGNORECASE,
)
_LONE_MARKER = re.compile(r"\s*\(?\d{1,3}[.)]$")
"""A note's own list number ("1. Metformin ...") is not a sentence."""
_HEADING_WORDS = 12


def _sentences(text: str, start: int, end: int) -> list[Span]:
    """Sentences of ``text[start:end]`` with outer whitespace trimmed."""
    out: list[Span] = []
    cur = start
    for m in _SENTENCE_END.finditer(text, start, end):
        stop = m.start() + len(m.group(0).rstrip())
        if _NO_SPLIT_AFTER.search(text, max(cur, stop - 8), stop) or _LONE_MARKER.match(text[cur:stop]):
            continue
        out.append((cur, stop))
        cur = m.end()
    out.append((cur, end))
    return [s for s in (_trim(text, a, b) for a, b in out) if s is not None]


def _trim(text: str, a: int, b: int) -> Span | None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if a < b else None


def note_units(note: str) -> list[Span]:
    """Each sentence of each line of ``note``, in order (list markers kept: they are part of the line)."""
    out: list[Span] = []
    for line in _LINE.finditer(note):
        out += _sentences(note, line.start(), line.end())
    return out


def claim_spans(answer: str) -> list[Span]:
    """Each list item or sentence of ``answer`` (list markers and headings left out)."""
    out: list[Span] = []
    for line in _LINE.finditer(answer):
        start, end = line.start(), line.end()
        marker = _MARKER.match(answer, start, end)
        if marker:
            start = marker.end()
        span = _trim(answer, start, end)
        if span is None:
            continue
        body = answer[span[0] : span[1]]
        if body.endswith(":") and len(body.split()) <= _HEADING_WORDS:  # a heading introduces, it claims nothing
            continue
        out += _sentences(answer, *span)
    return out

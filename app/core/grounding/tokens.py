"""Word-level grounding (before claims): which facts in an answer can be found anywhere in its note.

Kept for the benchmark's side-by-side comparison with the claim checker, and for its fact patterns
(numbers with units, dates, number pairs) which the claim parser uses. Not used to report to a user: a
fact found *somewhere* in the note says nothing about whether it belongs to what the answer ties it to.


An answer is scanned for quoted phrases, dates, doses and lab values (a number with a unit), number pairs
(blood pressures, scores, month/year), bare numbers, drug names, abbreviations and capitalised terms. Each is
searched for in the note (case-insensitively, tolerant of spacing and digit grouping) and reported with its
character offsets in both texts. Anything not found is a possible hallucination for the reader to check;
finding it proves nothing about the answer's logic.

What is *not* a fact, in the answer or in the note: list numbers ("1.", "2)", "(3)" opening a line, "1) ...
2) ..." inline), section numbers ("4.2 Medications"), and numbers that name a part of a document ("step 2",
"problem #3", "page 4"). Drug names come from a curated lexicon (``app.core.druglex``), never from word
endings. Each answer span is reported once, and each note offset once per span.

Measured on a labelled check set built from the shared notes (``tests/bench/bench_grounding.py``): see the
benchmarks for precision and recall of the "not in the note" flags.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from app.core.druglex import is_drug


@dataclass(frozen=True)
class TokenFact:
    kind: str
    """``quote``, ``date``, ``dose``, ``value``, ``number``, ``abbreviation``, ``drug``, ``term``."""
    text: str
    answer_start: int
    answer_end: int
    found: bool
    note_spans: tuple[tuple[int, int], ...] = ()
    """Character offsets in the note where it occurs (empty when not found)."""


@dataclass(frozen=True)
class TokenReport:
    spans: tuple[TokenFact, ...]

    @property
    def supported(self) -> list[TokenFact]:
        return [s for s in self.spans if s.found]

    @property
    def unsupported(self) -> list[TokenFact]:
        return [s for s in self.spans if not s.found]


_MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for m in names
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))

# Units that make a number a dose or a measurement; longest first so "mg/dL" wins over "mg".
_UNITS = [
    "mg/dL", "mmol/L", "mEq/L", "g/dL", "ng/mL", "pg/mL", "U/L", "mL/min", "mcg/kg", "mg/kg", "x10^9/L",
    "mcg", "µg", "mg", "g", "kg", "mL", "ml", "L", "units", "unit", "IU", "mmHg", "bpm", "%",
    "C", "F", "cm", "mm", "puffs", "puff", "tablets", "tablet", "tabs", "tab", "hours", "hrs", "days",
    "weeks", "months", "years",
]  # fmt: skip
_DOSE_UNITS = {"mcg", "µg", "mg", "g", "ml", "l", "units", "unit", "iu", "puffs", "puff", "tablets",
               "tablet", "tabs", "tab", "mcg/kg", "mg/kg"}  # fmt: skip
_UNIT_RE = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"

_DATE_NUMERIC = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{2,4})\b|\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_DATE_WORDS = re.compile(
    rf"\b(?:(\d{{1,2}})\s+({_MONTH_RE})\.?,?\s+(\d{{4}})|({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}}))\b",
    re.IGNORECASE,
)
_MEASURE = re.compile(rf"(?<![\w.])({_NUM})(?:/({_NUM}))?\s?({_UNIT_RE})(?![A-Za-z])")
_NUMBER = re.compile(rf"(?<![\w.,/])({_NUM})(?![\w/]|[.,]\d)")
_QUOTED = re.compile(r"[\"“”]([^\"“”\n]{3,200})[\"“”]|(?<!\w)['‘]([^'‘’\n]{2,120})['’](?!\w)")
_ABBREV = re.compile(r"\b[A-Z][A-Z0-9]{1,9}s?\b")
_CAPWORD = re.compile(r"(?<![.!?:]\s)(?<!^)\b[A-Z][a-z]{3,}(?:[- ][A-Z][a-z]{3,})*\b", re.MULTILINE)

_WORD = re.compile(r"[A-Za-z][a-z]+|[A-Z][A-Za-z]+")
_RATIO = re.compile(r"(?<![\w/.,])(\d{1,3})/(\d{1,4})(?![\w/]|[.,]\d)")
"""Number pairs: blood pressures (120/80), scores (7/10), month/year dates (6/92), fractions (1/2); compared
as pairs of values (04/10 is 4/10). A full date has three parts and never matches here."""

_STRUCTURAL = re.compile(
    r"^[ \t>*•-]*(?:\(\d{1,2}\)|\d{1,2}[.)])(?=[ \t]+\S)"  # "1. ", "2) ", "(3) " opening a line
    r"|^[ \t]*\d{1,2}(?:\.\d{1,2})+\.?(?=[ \t]+[A-Z])"  # "4.2 Medications", "1.3. Plan"
    r"|(?<![\w(/.,])\d{1,2}\)(?=[ \t]+\S)"  # inline "1) aspirin 2) metformin"
    r"|(?<![\w])\(\d{1,2}\)(?=[ \t]+[A-Za-z])"  # inline "(1) aspirin (2) metformin"
    r"|#\s?\d{1,3}\b"  # "problem #2"
    r"|\b(?:section|step|item|question|part|point|option|table|figure|page|line|chapter|appendix|problem|"
    r"issue|no\.)\s+\d{1,3}\b",  # "step 2", "problem 3"
    re.IGNORECASE | re.MULTILINE,
)
"""Numbers that order or label a document's parts, not facts about the patient."""

# Capitalised words that say nothing about the note.
_COMMON = {
    "The", "This", "That", "These", "Those", "There", "They", "Their", "Patient", "Answer", "None",
    "Yes", "Also", "However", "With", "Without", "After", "Before", "During", "From", "Since", "When",
    "What", "Which", "Where", "While", "Summary", "Discharge", "History", "Hospital", "Course", "Note",
    "Based", "According", "Instruction", "Response", "Question",
}  # fmt: skip


@dataclass(frozen=True)
class _Candidate:
    kind: str
    text: str
    start: int
    end: int
    finder: Callable[[str], list[tuple[int, int]]]


def _norm_num(s: str) -> float:
    return float(s.replace(",", ""))


def _year(y: str) -> int:
    v = int(y)
    return v + 2000 if v < 100 else v


def _dates_in(text: str) -> Iterator[tuple[int, int, tuple[int, int, int]]]:
    for m in _DATE_NUMERIC.finditer(text):
        if m.group(1):
            key = (_year(m.group(3)), int(m.group(1)), int(m.group(2)))
        else:
            key = (int(m.group(4)), int(m.group(5)), int(m.group(6)))
        yield m.start(), m.end(), key
    for m in _DATE_WORDS.finditer(text):
        if m.group(1):
            key = (int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1)))
        else:
            key = (int(m.group(6)), _MONTHS[m.group(4).lower()], int(m.group(5)))
        yield m.start(), m.end(), key


def _structural(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _STRUCTURAL.finditer(text)]


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def _numbers_in(text: str) -> Iterator[re.Match[str]]:
    """Bare-number matches that are facts (structural numbers left out)."""
    skip = _structural(text)
    return (m for m in _NUMBER.finditer(text) if not _inside(skip, m.start(1), m.end(1)))


def _find_literal(phrase: str) -> Callable[[str], list[tuple[int, int]]]:
    words = phrase.split()
    pattern = re.compile(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)", re.IGNORECASE)
    return lambda note: [(m.start(), m.end()) for m in pattern.finditer(note)]


def _find_number(value: float) -> Callable[[str], list[tuple[int, int]]]:
    def find(note: str) -> list[tuple[int, int]]:
        hits = {(m.start(1), m.end(1)) for m in _numbers_in(note) if _norm_num(m.group(1)) == value}
        hits |= {(m.start(1), m.end(1)) for m in _MEASURE.finditer(note) if _norm_num(m.group(1)) == value}
        return sorted(hits)

    return find


def _find_ratio(a: str, b: str) -> Callable[[str], list[tuple[int, int]]]:
    key = (int(a), int(b))
    return lambda note: [(m.start(), m.end()) for m in _RATIO.finditer(note) if (int(m[1]), int(m[2])) == key]


def _find_measure(value: str, unit: str) -> Callable[[str], list[tuple[int, int]]]:
    v = _norm_num(value)
    u = unit.lower()

    def find(note: str) -> list[tuple[int, int]]:
        return [
            (m.start(), m.end())
            for m in _MEASURE.finditer(note)
            if _norm_num(m.group(1)) == v and m.group(3).lower() == u
        ]

    return find


def _find_date(key: tuple[int, int, int]) -> Callable[[str], list[tuple[int, int]]]:
    return lambda note: [(s, e) for s, e, k in _dates_in(note) if k == key]


def _candidates(answer: str) -> list[_Candidate]:
    out: list[_Candidate] = []
    for m in _QUOTED.finditer(answer):
        g = 1 if m.group(1) is not None else 2
        text = m.group(g).strip()
        if text:
            out.append(_Candidate("quote", text, m.start(g), m.end(g), _find_literal(text)))
    for s, e, key in _dates_in(answer):
        out.append(_Candidate("date", answer[s:e], s, e, _find_date(key)))
    for m in _MEASURE.finditer(answer):
        unit = m.group(3)
        kind = "dose" if unit.lower() in _DOSE_UNITS else "value"
        out.append(_Candidate(kind, m.group(0), m.start(), m.end(), _find_measure(m.group(1), unit)))
    for m in _RATIO.finditer(answer):
        out.append(_Candidate("value", m.group(0), m.start(), m.end(), _find_ratio(m.group(1), m.group(2))))
    for m in _numbers_in(answer):
        out.append(_Candidate("number", m.group(1), m.start(1), m.end(1), _find_number(_norm_num(m.group(1)))))
    for m in _ABBREV.finditer(answer):
        out.append(_Candidate("abbreviation", m.group(0), m.start(), m.end(), _find_literal(m.group(0))))
    for m in _WORD.finditer(answer):
        if is_drug(m.group(0)):
            out.append(_Candidate("drug", m.group(0), m.start(), m.end(), _find_literal(m.group(0))))
    markers = _structural(answer)
    for m in _CAPWORD.finditer(answer):
        # A list item's first word is capitalised like a sentence's: "2) Stop warfarin".
        after_marker = any(e <= m.start() and not answer[e : m.start()].strip() for _, e in markers)
        if m.group(0) not in _COMMON and not after_marker:
            out.append(_Candidate("term", m.group(0), m.start(), m.end(), _find_literal(m.group(0))))
    return out


def _drop_overlaps(cands: list[_Candidate]) -> list[_Candidate]:
    """Keep the most specific candidate where they overlap (quote > date > dose/value > number > term)."""
    rank = {
        "quote": 0,
        "date": 1,
        "dose": 2,
        "value": 2,
        "abbreviation": 3,
        "drug": 3,
        "number": 4,
        "term": 5,
    }
    kept: list[_Candidate] = []
    seen: set[tuple[int, int]] = set()
    for c in sorted(cands, key=lambda c: (rank[c.kind], c.start)):
        if (c.start, c.end) in seen:
            continue  # one report per answer span
        if c.kind == "quote" or not any(k.start < c.end and c.start < k.end for k in kept):
            kept.append(c)
            seen.add((c.start, c.end))
    return sorted(kept, key=lambda c: (c.start, c.end))


def check_tokens(answer: str, note: str) -> TokenReport:
    """Report which facts of ``answer`` occur in ``note``, with offsets for highlighting."""
    spans = []
    for c in _drop_overlaps(_candidates(answer)):
        found = tuple(sorted(set(c.finder(note))))
        spans.append(TokenFact(c.kind, c.text, c.start, c.end, bool(found), found))
    return TokenReport(tuple(spans))

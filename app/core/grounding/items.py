"""An extraction task's answer split into the phrases to align, per task (pure text work, no note).

Every answer is read line by line; a line's bullet or number ("- ", "* ", "1. ", "2) ", "a) "), markdown
bold and a trailing full stop are dropped. Then, per task:

* **ner**: a leading label of at most three words ("Medications: a, b", "Problem: x") is dropped and kept as
  the items' ``label``; the rest is split at commas and semicolons outside parentheses; a trailing category
  ("diabetes (Problem)", "aspirin - Drug") becomes the label. An item is aligned by its entity: the whole
  phrase first, then without a trailing parenthetical, then the words before its first number ("metformin
  500 mg BID" aligns by "metformin"; whether the dose is right is the claim checker's question).
* **abbrev**: "SOB: shortness of breath", "SOB - ...", "SOB = ...", "SOB stands for/means ...",
  "SOB (shortness of breath)" and "shortness of breath (SOB)"; several per line split at semicolons.
* **relation**: "(X, relation, Y)", "X -> Y", "X -> relation -> Y", "X: treats Y", "X for Y", "X treats Y"
  and other linking verbs: the two arguments, tied by ``group``, the relation as ``label``.
* **temporal**: a time expression (a date in any format ``grounding.tokens`` reads, "Day 2", "POD 1", a clock
  time, "3 days ago", "yesterday", a year) and the event: the rest of the line without linking words.
* **coref**: the mentions of a chain, split at "refers to", "=", "->", commas, semicolons and "and";
  a leading "Chain 1:" label dropped.

A line that does not read as an item of its task is counted as unread, not guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from app.core.grounding.tokens import _DATE_NUMERIC, _DATE_WORDS, _MONTH_RE


@dataclass(frozen=True)
class Piece:
    """One phrase of the answer to align."""

    start: int
    end: int
    """Answer offsets of the phrase."""
    role: str
    """``entity``, ``abbreviation``, ``arg1``, ``arg2``, ``time``, ``event`` or ``mention``."""
    group: int
    """The answer item it belongs to (1-based): a relation's arguments, a chain's mentions share one."""
    label: str = ""
    """A category the answer gave ("Problem", "Medications") or a relation's name ("treats")."""
    expansion: str = ""
    """For an abbreviation: the expansion the answer gave."""
    fallbacks: tuple[tuple[int, int], ...] = ()
    """Shorter answer spans to try when the whole phrase does not align (the entity without a dose)."""
    parts: tuple[Piece, ...] = ()
    """For a line that may be one item or a list ("brain, breast, and prostate cancer" is one NER mention):
    the items it splits into, used when the whole line does not occur in the note."""


Span = tuple[int, int]

_BULLET = re.compile(r"^\s*(?:[-*•·–—>]+|\(?\d{1,3}[.):]|\(?[a-zA-Z][.)])?\s*")
_MEASURED = re.compile(r"[A-Za-z]\d|\d[A-Za-z]|[a-z][A-Z]|\b[A-Z]{2,}\b")
"""A name with a digit inside it or an all-capitals abbreviation (PaO2, PaO 2, A1c, BP, WBC): a lab or vital, never a
category label ("Chain 2:", "Problems:" are labels)."""
_LABEL = re.compile(r"([A-Za-z][\w /&'-]{0,40}?)\s*:\s+(?=\S)")
_CATEGORIES = (
    "problem|problems|disease|diseases|diagnosis|condition|symptom|symptoms|finding|drug|drugs|medication|"
    "medications|treatment|treatments|test|tests|lab|labs|procedure|procedures|entity|anatomy"
)
_TRAILING_CATEGORY = re.compile(rf"\s*(?:\(\s*(?:{_CATEGORIES})\s*\)|[-–—:]\s*(?:{_CATEGORIES}))$", re.IGNORECASE)
_NOTHING = re.compile(
    r"^(?:none|n/?a|nil|not (?:mentioned|stated|documented|applicable)"
    r"|no (?:other |further )?(?:entit(?:y|ies)|medications?|drugs?|abbreviations?|relations?|items?|events?"
    r"|findings|diagnos[ie]s|problems|tests|procedures|mentions?)"
    r"(?: (?:were |are |was |is )?(?:found|mentioned|identified|listed|documented|stated))?)\.?$",
    re.I,
)
"""An answer line that says nothing was found. A negated finding ("no malignant cells", "no fever") is an
entity of the note, not "nothing": only these stock phrases are."""
_TRAILING_PAREN = re.compile(r"\s*\([^()]*\)$")
_FIRST_NUMBER = re.compile(r"\s+\d")
_TRIM = " \t\"'`*_.,;:"


def trim(answer: str, start: int, end: int) -> Span:
    """A span narrowed past surrounding spaces, quotes, emphasis and punctuation (a closing parenthesis is
    kept when the span opens one)."""
    while start < end and answer[start] in _TRIM:
        start += 1
    while end > start and (answer[end - 1] in _TRIM or (answer[end - 1] == ")" and "(" not in answer[start:end])):
        end -= 1
    return start, end


def lines(answer: str) -> list[Span]:
    """Each non-empty line's content, without its bullet or number."""
    out = []
    pos = 0
    for raw in answer.splitlines(keepends=True):
        line = raw.rstrip("\r\n")
        bullet = _BULLET.match(line)
        s, e = trim(answer, pos + (bullet.end() if bullet else 0), pos + len(line))
        if e > s:
            out.append((s, e))
        pos += len(raw)
    return out


def _split(answer: str, start: int, end: int, separators: str) -> list[Span]:
    """Split at single-character separators outside parentheses."""
    out, depth, at = [], 0, start
    for i in range(start, end):
        ch = answer[i]
        depth += ch == "("
        depth -= ch == ")" and depth > 0
        if ch in separators and depth == 0:
            out.append(trim(answer, at, i))
            at = i + 1
    out.append(trim(answer, at, end))
    return [(s, e) for s, e in out if e > s]


def _between(answer: str, start: int, end: int, cuts: list[Span]) -> list[Span]:
    """The trimmed stretches of ``answer[start:end]`` between separator matches ``cuts`` (absolute)."""
    bounds = zip([start] + [c[1] for c in cuts], [c[0] for c in cuts] + [end], strict=True)
    return [trim(answer, a, b) for a, b in bounds]


def _per_line(answer: str, read: Callable[[str, int, int, int], list[Piece] | None]) -> tuple[list[Piece], int]:
    """``read(answer, start, end, group)`` on each line: its pieces, or None for a line it cannot read
    (counted). Groups number the lines read, from 1."""
    out: list[Piece] = []
    unread = 0
    for s, e in lines(answer):
        got = read(answer, s, e, len({p.group for p in out}) + 1)
        if got is None:
            unread += 1
        else:
            out += got
    return out, unread


def _entity(answer: str, s: int, e: int, role: str, group: int, label: str = "") -> Piece | None:
    """An entity phrase with its category and its shorter forms to fall back on."""
    cat = _TRAILING_CATEGORY.search(answer, s, e)
    if cat and cat.start() > s:
        label = label or cat.group(0).strip(" ()-–—:").capitalize()
        s, e = trim(answer, s, cat.start())
    if e <= s or _NOTHING.match(answer[s:e]):
        return None
    fallbacks = []
    paren = _TRAILING_PAREN.search(answer, s, e)
    if paren and paren.start() > s:
        fallbacks.append(trim(answer, s, paren.start()))
    number = _FIRST_NUMBER.search(answer, s, e)
    if number and number.start() > s:
        fallbacks.append(trim(answer, s, number.start()))
    return Piece(s, e, role, group, label, fallbacks=tuple(f for f in fallbacks if f[1] > f[0]))


def _label(answer: str, s: int, e: int, max_words: int = 3) -> tuple[int, str]:
    """A leading "Category:" label; a measurement's name ("PaO2: 58 mm Hg", "BP: 132/84") is not one."""
    m = _LABEL.match(answer, s, e)
    if m and len(m.group(1).split()) <= max_words and not _MEASURED.search(m.group(1)):
        return m.end(), m.group(1).strip()
    return s, ""


def ner(answer: str) -> tuple[list[Piece], int]:
    out: list[Piece] = []
    for s, e in lines(answer):
        s, label = _label(answer, s, e)
        split = _split(answer, s, e, ",;")
        parts = [p for ps, pe in split if (p := _entity(answer, ps, pe, "entity", 0, label))]
        if len(parts) > 1:
            out.append(Piece(s, e, "entity", 0, label, parts=tuple(parts)))
        elif parts:
            out.append(parts[0])
    return out, 0


_ABBR_FORMS = [
    re.compile(
        r"^(?P<a>[^\s:=()]{1,15})\s*(?::|=|\s[-–—]|\s(?:stands for|means|is short for|expands to))\s*(?P<x>.+)$"
    ),
    re.compile(r"^(?P<a>[^\s()]{1,15})\s*\((?P<x>[^()]+)\)$"),
    re.compile(r"^(?P<x>[^()]+?)\s*\((?P<a>[^\s()]{1,15})\)$"),
]


def _looks_abbreviation(text: str) -> bool:
    return " " not in text and len(text) <= 15 and (any(c.isupper() for c in text) or len(text) <= 4)


def abbreviations(answer: str) -> tuple[list[Piece], int]:
    out: list[Piece] = []
    unread = 0
    for ls, le in lines(answer):
        for s, e in _split(answer, ls, le, ";"):
            m = next((m for f in _ABBR_FORMS if (m := f.match(answer[s:e]))), None)
            if m is None:
                unread += 1
                continue
            a, x = (m.span("a"), m.span("x"))
            if m.re is _ABBR_FORMS[1] and not _looks_abbreviation(m.group("a")) and _looks_abbreviation(m.group("x")):
                a, x = x, a  # "hypertension (HTN)" written the other way round
            a_s, a_e = trim(answer, s + a[0], s + a[1])
            x_s, x_e = trim(answer, s + x[0], s + x[1])
            out.append(Piece(a_s, a_e, "abbreviation", len(out) + 1, expansion=answer[x_s:x_e]))
    return out, unread


_ARROW = re.compile(r"\s*(?:-+>|→|=>|⟶|—>)\s*")
_VERB = re.compile(
    r"\s+(?:is |was |were )?(treats|treated with|given for|prescribed for|started for|used for|indicated for|"
    r"to treat|for|causes|caused by|causing|due to|secondary to|associated with|complicated by|leads? to|led to|"
    r"indicates|improves|improved|worsens|worsened|reveals?|revealed|shows?|showed|diagnosed with|has)\s+",
    re.IGNORECASE,
)


def _relation_parts(answer: str, s: int, e: int) -> tuple[Span, str, Span] | None:
    text = answer[s:e]
    if text.startswith("(") and text.endswith(")"):
        parts = _split(answer, s + 1, e - 1, ",")
        if len(parts) == 3:
            return parts[0], answer[parts[1][0] : parts[1][1]], parts[2]
    cuts = [m.span() for m in _ARROW.finditer(answer, s, e)]
    if cuts:
        parts = _between(answer, s, e, cuts)
        if len(parts) == 2:
            return parts[0], "", parts[1]
        if len(parts) == 3:
            return parts[0], answer[parts[1][0] : parts[1][1]].strip("[]"), parts[2]
        return None
    colon = text.find(":")
    head_end = s + colon if colon > 0 else None
    m = _VERB.search(text, colon + 1 if colon > 0 else 0)
    if m is None:
        return None
    left = trim(answer, s, head_end if head_end is not None else s + m.start())
    if head_end is not None and text[colon + 1 : m.start()].strip():
        return None  # "X: something Y" where the verb is not right after the colon
    return left, m.group(1).lower(), trim(answer, s + m.end(), e)


def _relation(answer: str, s: int, e: int, group: int) -> list[Piece] | None:
    parts = _relation_parts(answer, s, e)
    if parts is None:
        return None
    first, rel, second = parts
    out = []
    for (ps, pe), role in ((first, "arg1"), (second, "arg2")):
        piece = _entity(answer, ps, pe, role, group)
        if piece:
            out.append(Piece(piece.start, piece.end, role, group, rel, fallbacks=piece.fallbacks))
    return out


def relations(answer: str) -> tuple[list[Piece], int]:
    return _per_line(answer, _relation)


_TIME = re.compile(
    rf"{_DATE_NUMERIC.pattern}|{_DATE_WORDS.pattern}"
    r"|\b(?:hospital |post-?operative |postop )?day\s+#?\d{1,3}\b|\bPOD\s*#?\s*\d{1,3}\b"
    r"|\b\d{1,2}:\d{2}(?:\s*[ap]\.?m\.?)?|\b\d+\s+(?:hours?|days?|weeks?|months?|years?)\s+(?:ago|earlier|later|prior)\b"
    r"|\b(?:yesterday|today|tomorrow|tonight|this morning|last night|last week)\b"
    rf"|\b(?:{_MONTH_RE})\.?\s+\d{{4}}\b|\b(?:19|20)\d{{2}}\b",
    re.IGNORECASE,
)
_LINKING = re.compile(
    r"^(?:(?:on|at|in|by|from|since|until|as of|was|were|is|and|then|the patient was|patient was)\b\s*|[-–—:,]\s*)+"
    r"|(?:\s*\b(?:on|at|in|by|from|since|until|as of|was|were|and)|\s*[-–—:,])+\s*$",
    re.IGNORECASE,
)


def _temporal(answer: str, s: int, e: int, group: int) -> list[Piece] | None:
    m = _TIME.search(answer, s, e)
    if m is None:
        return None
    out = [Piece(m.start(), m.end(), "time", group)]
    before, after = (s, m.start()), (m.end(), e)
    es, ee = max(before, after, key=lambda p: len(answer[p[0] : p[1]].strip()))
    text = answer[es:ee]
    cut = _LINKING.sub(lambda x: " " * len(x.group(0)), text)  # blanked, so offsets stay
    es, ee = trim(answer, es + len(cut) - len(cut.lstrip()), es + len(cut.rstrip()))
    event = _entity(answer, es, ee, "event", group) if ee > es else None
    return [*out, event] if event else out


def temporal(answer: str) -> tuple[list[Piece], int]:
    return _per_line(answer, _temporal)


_COREF_SEP = re.compile(
    r"\s*(?:\brefers? to\b|\bis the same (?:person |entity )?as\b|\bcorefers? with\b|=|-+>|→|,|;|\band\b)\s*",
    re.IGNORECASE,
)


def _chain(answer: str, ls: int, le: int, group: int) -> list[Piece] | None:
    s, _ = _label(answer, ls, le, max_words=2)
    cuts = [m.span() for m in _COREF_SEP.finditer(answer, s, le)]
    if not cuts:
        return None
    return [Piece(ps, pe, "mention", group) for ps, pe in _between(answer, s, le, cuts) if pe > ps]


def coreference(answer: str) -> tuple[list[Piece], int]:
    return _per_line(answer, _chain)


SPLITTERS = {"ner": ner, "abbrev": abbreviations, "relation": relations, "temporal": temporal, "coref": coreference}
"""Task slug -> the function that splits its answers into pieces (and counts unread lines)."""

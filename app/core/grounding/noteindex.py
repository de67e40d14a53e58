"""A note indexed once per check: its units and where each drug, test, dose, frequency, route, value, date
and word occurs, so that every claim is judged by dictionary look-ups rather than by scanning the note.

Building the index is a handful of linear regex passes over the note; a claim then costs a few look-ups and
a bisection per occurrence (``unit_of``), so a 60-item answer against a long note is never note x answer.

**Negated mentions.** A drug mention is *negated* when its unit says the patient is not taking it: one of
"no", "not", "denies", "without", "never", "off", "stopped", "discontinued", "held", "allergic/allergy to",
"intolerant of" among the four words before it (not across a comma or semicolon, so "denies chest pain,
takes aspirin" is not a negation of aspirin), or "was stopped/discontinued/held" right after it. A negated
mention never supports a medication claim (a claim that the patient takes warfarin is not supported by
"warfarin was stopped"); it is reported instead, and it is not a possible omission.

**Regimen scopes.** A unit naming several drugs ("aspirin 81 mg daily, Brilinta 90 mg twice a day, Lipitor
80 mg daily") is cut into one scope per drug, from its mention to the next drug's (the first from the unit's
start; a "50 mg of" right before a drug is its own), and a dose, frequency or route supports a drug only
inside that drug's scope: otherwise any dose of the list would support any drug of it. A frequency or route
written once after the last drug of a unit and in no other scope ("Tylenol 500 mg and ibuprofen 200 mg,
3 times daily") is shared by every drug of the unit.

**A sentence that refers back.** A unit naming no drug that continues a paragraph after one naming exactly
one drug (at most two sentences back), and refers to it ("dose", "dosage", "it"), is read as about that
drug: "...treated with methotrexate. Her dosage was increased to 22.5 mg per week." Measured on the 1,388
shared notes: 4 units name a dose but no drug right after a sentence naming one drug in the same paragraph;
the 3 that refer back give that drug's dose (Lexapro 10 mg, methotrexate twice), the one that does not
("Limit salt intake to 2300 mg daily" after Norvasc) is not the drug's. No window across lines (see claims).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field

from app.core.druglex import BRAND_GENERIC, DRUG_NAMES, generic_of, is_drug
from app.core.grounding.lablex import labs_in
from app.core.grounding.segments import Span, note_units
from app.core.grounding.tokens import _MEASURE, _MONTH_RE, _MONTHS, _RATIO, _dates_in, _norm_num, _numbers_in
from app.core.grounding.units import DOSE, doses_in, frequencies_in, routes_in

WORD = re.compile(r"[^\W_]+")
_NEG_BEFORE = re.compile(
    r"\b(?:no|not|denies|denied|without|never|off|stopped|stop|discontinued|discontinue|held|holding|hold|"
    r"allergic|allergy|allergies|intolerant|intolerance)\b",
    re.IGNORECASE,
)
_NEG_AFTER = re.compile(
    r"^\W{0,3}(?:(?:was|were|has been|had been|is|are|being)\s+)?(?:stopped|discontinued|held)\b", re.I
)
_CLAUSE = re.compile(r"[,;:]")
_DOSE_OF = re.compile(rf"(?:{DOSE.pattern})\s+of\s+(?:the\s+)?$", re.IGNORECASE)
"""A dose written before its drug ("50 mg of Benadryl")."""
_REFERS_BACK = re.compile(r"\b(?:dose|doses|dosage|dosing|it)\b", re.IGNORECASE)
_REFER_HOPS = 2
"""How many sentences back a referring sentence may find its drug (the measured cases need 1 and 2)."""
_SAME_DRUG_GAP = re.compile(r"[\W_]{0,3}")
"""What may separate two mentions that name one product ("amoxicillin-clavulanate", "Tylenol (acetaminophen")."""
_MONTH_YEAR = re.compile(rf"(?<![\d/])\b({_MONTH_RE})\.?,?\s+(\d{{4}})\b", re.IGNORECASE)
_STOP_WORDS = (
    "the and with was were has had have for that this from into onto then than she her his him they them "
    "their patient patients also been being which when while will would there here about after before "
    "during over under other some such only very well more most less same each date dated"
)
_STOP = frozenset(_STOP_WORDS.split())
"""Words too common to be an event of a date claim."""


@dataclass(frozen=True)
class DrugMention:
    start: int
    end: int
    text: str
    generic: str
    negated: bool


_DRUG_WORDS = frozenset(w for w in DRUG_NAMES if is_drug(w)) | frozenset(BRAND_GENERIC)


def is_drug_word(word: str) -> bool:
    """A lexicon drug (``druglex.is_drug``) or a mapped brand."""
    return word.lower() in _DRUG_WORDS


def stem(word: str) -> str:
    """A loose stem for event words: "admitted" ~ "admission", "discharged" ~ "discharge" (``build`` inlines
    it for speed)."""
    return word.lower()[:4]


def content_words(text: str) -> list[re.Match[str]]:
    return [
        m
        for m in WORD.finditer(text)
        if len(m.group(0)) >= 4 and not m.group(0).isdigit() and m.group(0).lower() not in _STOP
    ]


def dates_in(text: str) -> list[tuple[int, int, tuple[int, int, int]]]:
    """Full dates (``tokens``' formats) and month-year dates ("March 2026", day 0)."""
    full = list(_dates_in(text))
    out = list(full)
    for m in _MONTH_YEAR.finditer(text):
        if not any(s <= m.start() < e for s, e, _ in full):
            out.append((m.start(), m.end(), (int(m.group(2)), _MONTHS[m.group(1).lower()], 0)))
    return out


_DURATIONS = frozenset({"hours", "hrs", "days", "weeks", "months", "years"})
"""A number of days is how long, not a value a test gave."""


def values_in(text: str) -> list[tuple[int, int, tuple]]:
    """Lab values: number pairs ``("r", a, b)`` and numbers ``("n", v)`` (with a unit or bare; durations
    and structural numbers are not values)."""
    out: list[tuple[int, int, tuple]] = []
    for m in _RATIO.finditer(text):
        out.append((m.start(), m.end(), ("r", int(m.group(1)), int(m.group(2)))))
    seen: set[int] = set()
    for m in _MEASURE.finditer(text):
        seen.add(m.start(1))
        if m.group(2) is None and m.group(3).lower() not in _DURATIONS:
            out.append((m.start(), m.end(), ("n", _norm_num(m.group(1)))))
    for m in _numbers_in(text):
        if m.start(1) not in seen:
            out.append((m.start(1), m.end(1), ("n", _norm_num(m.group(1)))))
    return out


def drug_mentions(note: str, units: list[Span] | None = None) -> list[DrugMention]:
    """Every drug the note names, in order, each with whether its unit negates it."""
    units = note_units(note) if units is None else units
    starts = [s for s, _ in units]
    out = []
    for m in WORD.finditer(note):
        w = m.group(0)
        if not is_drug_word(w):
            continue
        i = bisect_right(starts, m.start()) - 1
        lo, hi = units[i] if i >= 0 else (0, len(note))
        out.append(DrugMention(m.start(), m.end(), w, generic_of(w), _negated(note, lo, hi, m.start(), m.end())))
    return out


def _negated(text: str, lo: int, hi: int, start: int, end: int) -> bool:
    before = _CLAUSE.split(text[max(lo, start - 60) : start])[-1].split()[-4:]
    return bool(_NEG_BEFORE.search(" ".join(before)) or _NEG_AFTER.search(text[end : min(hi, end + 40)]))


@dataclass(frozen=True)
class Scope:
    start: int
    end: int
    generics: frozenset[str]
    """The drug(s) this stretch of a unit is about (two when mentions are adjacent: "Tylenol (acetaminophen)")."""


@dataclass
class NoteIndex:
    note: str
    units: list[Span]
    drugs: dict[str, list[DrugMention]] = field(default_factory=lambda: defaultdict(list))
    drugs_by_unit: dict[int, list[DrugMention]] = field(default_factory=lambda: defaultdict(list))
    labs: dict[str, list[Span]] = field(default_factory=lambda: defaultdict(list))
    labs_by_unit: dict[int, list[tuple[int, int, str]]] = field(default_factory=lambda: defaultdict(list))
    doses: dict[object, list[Span]] = field(default_factory=lambda: defaultdict(list))
    freqs: dict[object, list[Span]] = field(default_factory=lambda: defaultdict(list))
    routes: dict[object, list[Span]] = field(default_factory=lambda: defaultdict(list))
    values: dict[tuple, list[Span]] = field(default_factory=lambda: defaultdict(list))
    dates: dict[tuple[int, int, int], list[Span]] = field(default_factory=lambda: defaultdict(list))
    words: dict[str, list[Span]] = field(default_factory=lambda: defaultdict(list))
    stems: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    _starts: list[int] = field(default_factory=list)
    _memo: dict[object, dict[int, list[Span]]] = field(default_factory=dict)
    """``units_of`` results by look-up key: a 60-item answer asks for the same dose or drug many times."""
    _taken: dict[str, list[Span]] = field(default_factory=dict)
    scopes: dict[int, list[Scope]] = field(default_factory=dict)
    """Units naming two or more drugs -> one scope per drug, in order (see the module docstring)."""
    shared_tail: dict[int, set[str]] = field(default_factory=dict)
    """Per unit of ``scopes``: the roles ("frequency", "route") written only in its last scope."""
    refers: dict[int, tuple[str, int, Span]] = field(default_factory=dict)
    """A unit naming no drug that refers back -> (the drug's generic, the unit naming it, the referring word)."""

    @classmethod
    def build(cls, note: str) -> NoteIndex:
        idx = cls(note, note_units(note))
        idx._starts = [s for s, _ in idx.units]
        for d in drug_mentions(note, idx.units):
            idx.drugs[d.generic].append(d)
            idx.drugs_by_unit[idx.unit_of(d.start)].append(d)
        for s, e, name in labs_in(note):
            idx.labs[name].append((s, e))
            idx.labs_by_unit[idx.unit_of(s)].append((s, e, name))
        for table, hits in (
            (idx.doses, doses_in(note)),
            (idx.freqs, frequencies_in(note)),
            (idx.routes, routes_in(note)),
            (idx.values, values_in(note)),
            (idx.dates, dates_in(note)),
        ):
            for s, e, key in hits:
                table[key].append((s, e))
        # One pass over the words, walking the units alongside (both are in text order).
        u, n = 0, len(idx.units)
        for m in WORD.finditer(note):
            w = m.group(0).lower()
            idx.words[w].append((m.start(), m.end()))
            if len(w) >= 4 and w not in _STOP and not w.isdigit():
                while u < n and idx.units[u][1] <= m.start():
                    u += 1
                if u < n and idx.units[u][0] <= m.start():
                    idx.stems[w[:4]].add(u)
        idx._build_scopes()
        idx._build_refers()
        return idx

    def _build_refers(self) -> None:
        for u in range(1, len(self.units)):
            if u in self.drugs_by_unit:
                continue
            word = _REFERS_BACK.search(self.note, *self.units[u])
            if word is None:
                continue
            v = u - 1
            while v > u - _REFER_HOPS and v not in self.drugs_by_unit and self._same_line(v):
                v -= 1
            mentions = self.drugs_by_unit.get(v, ())
            named = {m.generic for m in mentions}
            if self._same_line(v) and len(named) == 1 and not any(m.negated for m in mentions):
                self.refers[u] = (named.pop(), v, word.span())

    def _same_line(self, v: int) -> bool:
        """Unit ``v`` and the next one are sentences of one line (one paragraph)."""
        return v >= 0 and v + 1 < len(self.units) and "\n" not in self.note[self.units[v][1] : self.units[v + 1][0]]

    def _build_scopes(self) -> None:
        for u, mentions in self.drugs_by_unit.items():
            if u < 0 or len({m.generic for m in mentions}) < 2:
                continue
            lo, hi = self.units[u]
            groups: list[list[DrugMention]] = []
            for m in sorted(mentions, key=lambda d: d.start):
                if groups and _SAME_DRUG_GAP.fullmatch(self.note, groups[-1][-1].end, m.start):
                    groups[-1].append(m)
                else:
                    groups.append([m])
            starts = [lo] + [self._scope_start(g[0].start, lo) for g in groups[1:]]
            ends = [*starts[1:], hi]
            self.scopes[u] = [
                Scope(a, b, frozenset(m.generic for m in g)) for a, b, g in zip(starts, ends, groups, strict=True)
            ]
        if not self.scopes:
            return
        seen: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        for role, table in (("frequency", self.freqs), ("route", self.routes)):
            for spans in table.values():
                for s, _ in spans:
                    u = self.unit_of(s)
                    if u in self.scopes:
                        seen[u][role].add(self._scope_index(u, s))
        for u, roles in seen.items():
            last = len(self.scopes[u]) - 1
            self.shared_tail[u] = {role for role, where in roles.items() if where == {last}}

    def _scope_start(self, start: int, lo: int) -> int:
        m = _DOSE_OF.search(self.note, max(lo, start - 40), start)
        return m.start() if m else start

    def _scope_index(self, unit: int, pos: int) -> int:
        return bisect_right([sc.start for sc in self.scopes[unit]], pos) - 1

    def in_scope(self, unit: int, role: str, spans: list[Span], generics: frozenset[str]) -> list[Span]:
        """The spans of a claim's attribute that lie where the note gives the claim's drug(s) that attribute:
        all of them in a unit naming one drug; in a unit naming several, those in the drug's own scope (or in
        a shared tail, for a frequency or route)."""
        scopes = self.scopes.get(unit)
        if scopes is None:
            return spans
        mine = [i for i, sc in enumerate(scopes) if sc.generics & generics]
        if role in self.shared_tail.get(unit, ()):
            mine.append(len(scopes) - 1)
        return [sp for sp in spans if max(0, self._scope_index(unit, sp[0])) in mine]

    def unit_of(self, offset: int) -> int:
        """Index of the unit holding ``offset``, or -1 (between units: whitespace, a list marker)."""
        i = bisect_right(self._starts, offset) - 1
        return i if i >= 0 and offset < self.units[i][1] else -1

    def in_unit(self, spans: list[Span], unit: int) -> list[Span]:
        return [s for s in spans if self.unit_of(s[0]) == unit]

    def units_of(self, spans: list[Span], key: object = None) -> dict[int, list[Span]]:
        """The spans grouped by the unit holding them; ``key`` names a look-up whose result is kept."""
        if key is not None and key in self._memo:
            return self._memo[key]
        out: dict[int, list[Span]] = defaultdict(list)
        for s in spans:
            out[self.unit_of(s[0])].append(s)
        out.pop(-1, None)
        if key is not None:
            self._memo[key] = out
        return out

    def taken(self, generic: str) -> list[Span]:
        """Where the note names a drug the patient takes (mentions that are not negated), and the words of
        later sentences that refer back to it (``refers``)."""
        if generic not in self._taken:
            spans = [(m.start, m.end) for m in self.drugs.get(generic, ()) if not m.negated]
            spans += [word for g, _, word in self.refers.values() if g == generic]
            self._taken[generic] = sorted(spans)
        return self._taken[generic]

    def phrase(self, text: str) -> list[Span]:
        """Where a phrase of one or more words occurs (case- and spacing-insensitive, whole words)."""
        words = [w.lower() for w in WORD.findall(text)]
        if not words:
            return []
        if len(words) == 1:
            return list(self.words.get(words[0], ()))
        pattern = re.compile(r"\W+".join(re.escape(w) for w in words) + r"(?!\w)", re.IGNORECASE)
        out = []
        for s, _ in self.words.get(words[0], ()):
            m = pattern.match(self.note, s)
            if m:
                out.append((s, m.end()))
        return out

    def nearest_drug(self, unit: int, pos: int, exclude: str = "") -> DrugMention | None:
        """The drug a dose at ``pos`` belongs to in its unit: the last one named before it, else the first after."""
        cands = [d for d in self.drugs_by_unit.get(unit, ()) if d.generic != exclude]
        before = [d for d in cands if d.start <= pos]
        return before[-1] if before else (cands[0] if cands else None)

    def nearest_lab(self, unit: int, pos: int, exclude: str = "") -> str:
        cands = [x for x in self.labs_by_unit.get(unit, ()) if x[2] != exclude]
        before = [x for x in cands if x[0] <= pos]
        return (before[-1] if before else cands[0])[2] if cands else ""

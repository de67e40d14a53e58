"""Claims of an answer checked as units against the note, and the medications an answer leaves out.

An answer is split into claims (``segments.claim_spans``: each list item or sentence); a claim that names
two or more drugs or tests *each with its own attributes* ("metformin 500 mg BID and lisinopril 10 mg
daily") is split again at each of them, so every regimen is judged on its own. Each claim is then one of:

* **medication** (a drug of ``app.core.druglex``, or a capitalised word right before a dose): its parts are
  the drug(s), dose(s), route and frequency (``units`` normalises their spellings). Supported only when
  every part occurs in one note unit (sentence or list line) that names the drug; the best unit wins, so a
  drug given at two doses in two places supports either. A missing part is reported with where it is
  instead ("1000 mg appears with metformin, not ibuprofen") or as absent ("dose 75 mg not in the note").
  A brand and its generic are the same drug only through ``druglex.BRAND_GENERIC``, and the reason then
  says so ("Tylenol (acetaminophen)"). A drug the note names only negated or stopped ("warfarin was
  stopped") does not support a claim that names it: the claim is partly supported, with that reason.
* **lab**: a test or vital sign (``lablex``) with a value (a number, with or without a unit, or a pair such
  as 132/84): supported only when the test and the value share a unit.
* **date**: a date and its event (the claim's other content words, stemmed loosely): supported when the
  date and at least one event word share a unit.
* **fact**: any other sentence with something checkable (numbers, doses, drugs, tests, abbreviations,
  capitalised terms, quoted phrases): supported when all of them share a unit.
* **unchecked**: negations ("no allergies", "denies chest pain", "warfarin was stopped"), reasoning or
  hedging ("likely", "because", "consider") and claims with nothing checkable; ``reason`` says which.

No window beyond one unit: on the shared notes (ACI-bench and MTS-Dialog, 1,388 notes) 355 lines name a
drug, 128 of them with a dose on the same line, and none has its dose opening the next line (a "Metformin:"
heading over "500 mg twice daily"), so a window would only let a neighbour's dose support a drug.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.core.druglex import generic_of
from app.core.grounding.lablex import CANONICAL, labs_in
from app.core.grounding.noteindex import (
    WORD,
    NoteIndex,
    content_words,
    dates_in,
    drug_mentions,
    is_drug_word,
    stem,
    values_in,
)
from app.core.grounding.report import Claim, ClaimPart, ClaimStatus, Omission, Span
from app.core.grounding.segments import claim_spans
from app.core.grounding.tokens import _ABBREV, _CAPWORD, _COMMON, _QUOTED
from app.core.grounding.units import doses_in, frequencies_in, routes_in

_NEGATION = re.compile(
    r"\b(?:no|not|denies|denied|denying|without|negative for|never|none|nor|stopped|discontinued|held|absent)\b"
    r"|n't\b",
    re.IGNORECASE,
)
_REASONING = re.compile(
    r"\b(?:likely|unlikely|probabl[ey]|possibl[ey]|suggests?|suggestive|suggesting|because|therefore|thus|hence|"
    r"consider|considered|considering|may(?!\s*\d)|might|could|due to|consistent with|concern(?:ing)? for|"
    r"suspect(?:ed)?|differential|presumably|appears to|seems)\b",
    re.IGNORECASE,
)
_JOINERS = ("and", "plus", "with", "then")
_TERM_SCAN = 2000
"""Capitalised terms are looked for in a claim's first 2,000 characters: ``tokens``' term pattern is
quadratic on an endless chain of capitalised words, and no sentence a clinician reads is that long."""
_MAX_SPANS = 5
"""Note spans kept per part that is not where the claim needs it (enough to highlight, bounded)."""


@dataclass(frozen=True)
class _Part:
    role: str
    text: str
    start: int
    end: int
    spans: list[Span]
    """Where the part occurs in the note (any unit)."""
    key: object = None
    """The index look-up that gave ``spans`` (None: computed for this claim), so units are grouped once."""


@dataclass(frozen=True)
class _Anchor:
    kind: str  # "drug" or "lab"
    start: int
    end: int
    text: str
    key: str


def check_claims(answer: str, note: str) -> list[Claim]:
    """Each claim of ``answer`` with its status, parts and offsets in both texts."""
    idx = NoteIndex.build(note)
    out: list[Claim] = []
    for a, b in claim_spans(answer):
        out += _check_span(idx, answer, a, b)
    return out


def _check_span(idx: NoteIndex, answer: str, a: int, b: int) -> list[Claim]:
    text = answer[a:b]
    if _NEGATION.search(text):
        return [Claim("fact", text, a, b, ClaimStatus.UNCHECKED, reason="negation")]
    if _REASONING.search(text):
        return [_reasoning(idx, answer, a, b)]
    anchors = _anchors(answer, a, b)
    segments = _split(answer, a, b, anchors)
    out = []
    for s, e, seg_anchors in segments:
        drugs = [x for x in seg_anchors if x.kind == "drug"]
        labs = [x for x in seg_anchors if x.kind == "lab"]
        if drugs:
            out.append(_medication(idx, answer, s, e, drugs))
        elif labs and _values(answer, s, e):
            out.append(_lab(idx, answer, s, e, labs[0]))
        elif dates_in(answer[s:e]):
            out.append(_date(idx, answer, s, e))
        else:
            out.append(_fact(idx, answer, s, e))
    return out


def _reasoning(idx: NoteIndex, answer: str, a: int, b: int) -> Claim:
    """Reasoning is not checked, but a drug it names that the note never names (even negated) is reported:
    "given amoxicillin for a suspected infection" must not pass as reasoning when the note has no amoxicillin.
    A negation is left alone: "not on amoxicillin" agrees with a note that never names it."""
    text = answer[a:b]
    absent = [
        ClaimPart("drug", m.group(0), m.start(), m.end(), False)
        for m in WORD.finditer(answer, a, b)
        if is_drug_word(m.group(0)) and generic_of(m.group(0)) not in idx.drugs
    ]
    if not absent:
        return Claim("fact", text, a, b, ClaimStatus.UNCHECKED, reason="reasoning")
    why = f"{_names(absent)} not in the note (the reasoning itself is not checked)"
    return Claim("fact", text, a, b, ClaimStatus.PARTLY, tuple(absent), None, why)


def _anchors(answer: str, a: int, b: int) -> list[_Anchor]:
    """Drugs (lexicon words, or a capitalised word right before a dose) and tests named in a claim."""
    out = [
        _Anchor("drug", m.start(), m.end(), m.group(0), generic_of(m.group(0)))
        for m in WORD.finditer(answer, a, b)
        if is_drug_word(m.group(0))
    ]
    taken = {x.start for x in out}
    for s, _, _ in doses_in(answer[a:b]):
        prev = list(WORD.finditer(answer, max(a, a + s - 40), a + s))
        if prev and prev[-1].group(0)[0].isupper() and prev[-1].start() not in taken:
            w = prev[-1]
            if w.group(0) not in _COMMON and w.group(0).lower() not in CANONICAL and not w.group(0).isupper():
                out.append(_Anchor("drug", w.start(), w.end(), w.group(0), w.group(0).lower()))
                taken.add(w.start())
    out += [_Anchor("lab", a + s, a + e, answer[a + s : a + e], name) for s, e, name in labs_in(answer[a:b])]
    return sorted(out, key=lambda x: x.start)


def _split(answer: str, a: int, b: int, anchors: list[_Anchor]) -> list[tuple[int, int, list[_Anchor]]]:
    """One segment per anchor that has its own attributes, when two or more do; else the claim whole."""

    def bounds(xs: list[_Anchor]) -> list[tuple[int, int]]:
        return [(x.start, xs[i + 1].start if i + 1 < len(xs) else b) for i, x in enumerate(xs)]

    def has_attrs(x: _Anchor, s: int, e: int) -> bool:
        seg = answer[x.end : e]
        if x.kind == "lab":
            return bool(_values(answer, x.end, e))
        return bool(doses_in(seg) or frequencies_in(seg) or routes_in(seg))

    # A test named without a value ("blood pressure medicine") anchors nothing.
    kept = [x for x, (s, e) in zip(anchors, bounds(anchors), strict=True) if x.kind == "drug" or has_attrs(x, s, e)]
    heads = [x for x, (s, e) in zip(kept, bounds(kept), strict=True) if has_attrs(x, s, e)] if len(kept) > 1 else kept
    if len(heads) < 2:
        return [(a, b, kept)]
    out = []
    for i, (_, (s, e)) in enumerate(zip(heads, bounds(heads), strict=True)):
        s = a if i == 0 else s
        e = s + _without_joiner(answer[s:e]) if i + 1 < len(heads) else e
        out.append((s, e, [y for y in kept if s <= y.start < e]))
    return out


def _without_joiner(text: str) -> int:
    """Length of a segment without the ", and" that leads to the next regimen (string ops: no backtracking
    on a hostile run of spaces)."""
    t = text.rstrip(" \t,;")
    for w in _JOINERS:
        if t.lower().endswith(" " + w):
            return len(t[: -len(w)].rstrip(" \t,;"))
    return len(t)


def _values(answer: str, s: int, e: int) -> list[tuple[int, int, tuple]]:
    """Lab values in ``answer[s:e]`` (absolute offsets), dates and the digits of dates left out."""
    seg = answer[s:e]
    dates = [(x, y) for x, y, _ in dates_in(seg)]
    return [(s + x, s + y, k) for x, y, k in values_in(seg) if not any(p <= x < q for p, q in dates)]


def _medication(idx: NoteIndex, answer: str, s: int, e: int, drugs: list[_Anchor]) -> Claim:
    seg = answer[s:e]
    anchors = [_Part("drug", d.text, d.start, d.end, idx.taken(d.key), ("drug", d.key)) for d in drugs]
    attrs = [_Part("dose", seg[x:y], s + x, s + y, idx.doses.get(k, []), ("dose", k)) for x, y, k in doses_in(seg)]
    attrs += [
        _Part("frequency", seg[x:y], s + x, s + y, idx.freqs.get(k, []), ("freq", k)) for x, y, k in frequencies_in(seg)
    ]
    attrs += [_Part("route", seg[x:y], s + x, s + y, idx.routes.get(k, []), ("route", k)) for x, y, k in routes_in(seg)]
    attrs += [_Part("date", seg[x:y], s + x, s + y, idx.dates.get(k, []), ("date", k)) for x, y, k in dates_in(seg)]
    attrs.sort(key=lambda p: p.start)
    main = drugs[0]
    generics = frozenset(d.key for d in drugs)
    claim = _judge(
        idx, answer, s, e, "medication", anchors, attrs, lambda u, p: _drug_near(idx, u, p, main.key),
        lambda u, role, spans: idx.in_scope(u, role, spans, generics),
    )  # fmt: skip
    unit = idx.unit_of(claim.note_unit[0]) if claim.note_unit else -1
    if unit in idx.refers and claim.status == ClaimStatus.SUPPORTED:
        generic, _, (x, y) = idx.refers[unit]
        why = f'{generic} is named in an earlier sentence; "{idx.note[x:y]}" here refers to it'
        return Claim("medication", claim.text, s, e, claim.status, claim.parts, claim.note_unit, why)
    negated = [m for d in drugs for m in idx.drugs.get(d.key, ()) if m.negated]
    if claim.status == ClaimStatus.NOT_FOUND and negated:
        m = negated[0]
        unit = idx.units[idx.unit_of(m.start)] if idx.unit_of(m.start) >= 0 else (m.start, m.end)
        why = f'{m.text} appears in the note only as stopped or negated ("{idx.note[unit[0] : unit[1]][:80]}")'
        return Claim("medication", claim.text, s, e, ClaimStatus.PARTLY, claim.parts, None, why)
    brands = [
        f"{d.text} ({d.key})"
        for d in drugs
        if d.text.lower() != d.key and d.key in idx.drugs and _named_as_generic(idx, d)
    ]
    if brands:
        reason = "; ".join(brands + ([claim.reason] if claim.reason else []))
        return Claim(claim.kind, claim.text, s, e, claim.status, claim.parts, claim.note_unit, reason)
    return claim


def _named_as_generic(idx: NoteIndex, d: _Anchor) -> bool:
    """The note names the drug under another name than the answer's (the generic of a brand)."""
    return any(m.text.lower() != d.text.lower() for m in idx.drugs.get(d.key, ()))


def _drug_near(idx: NoteIndex, unit: int, pos: int, exclude: str) -> str:
    d = idx.nearest_drug(unit, pos, exclude)
    return d.text.lower() if d else ""


def _lab(idx: NoteIndex, answer: str, s: int, e: int, test: _Anchor) -> Claim:
    anchor = _Part("test", test.text, test.start, test.end, idx.labs.get(test.key, []), ("lab", test.key))
    values = [
        _Part("value", answer[x:y], x, y, idx.values.get(k, []), ("value", k)) for x, y, k in _values(answer, s, e)
    ]
    return _judge(idx, answer, s, e, "lab", [anchor], values, lambda u, p: idx.nearest_lab(u, p, test.key))


def _judge(
    idx: NoteIndex,
    answer: str,
    s: int,
    e: int,
    kind: str,
    anchors: list[_Part],
    attrs: list[_Part],
    owner: Callable[[int, int], str],
    restrict: Callable[[int, str, list[Span]], list[Span]] | None = None,
) -> Claim:
    """The best note unit among those naming an anchor: supported when every part is there. ``restrict``
    keeps, of an attribute's spans in a unit, those where the note gives it to the claim's subject (a
    medication's regimen scope, ``NoteIndex.in_scope``)."""
    parts = anchors + attrs
    by_unit = [idx.units_of(p.spans, p.key) for p in parts]
    if restrict is not None:
        for i, p in enumerate(attrs, len(anchors)):
            by_unit[i] = {u: kept for u, sp in by_unit[i].items() if (kept := restrict(u, p.role, sp))}
    together = set(min(by_unit, key=len))  # units holding every part: the smallest set bounds the work
    for d in by_unit:
        together.intersection_update(d.keys())
    if together:
        best = min(together)
    else:  # the unit naming an anchor that holds the most parts
        cands = sorted({u for d in by_unit[: len(anchors)] for u in d})
        best = max(cands, key=lambda u: sum(u in d for d in by_unit), default=-1)
    subject = anchors[0].text
    out, why = [], []
    for p, d in zip(parts, by_unit, strict=True):
        if best in d:
            out.append(ClaimPart(p.role, p.text, p.start, p.end, True, tuple(d[best][:_MAX_SPANS])))
            continue
        belongs, where = _elsewhere(idx, p, owner) if p.role not in ("drug", "test") else ("", p.spans[:1])
        out.append(ClaimPart(p.role, p.text, p.start, p.end, False, tuple(where[:_MAX_SPANS]), belongs))
        if p.role in ("drug", "test"):
            why.append(f"{p.text} is not in the note" if not p.spans else f"{p.text} is not named with {subject}")
        elif belongs:
            why.append(f"{p.text} appears with {belongs}, not {subject}")
        elif p.spans:
            why.append(f"{p.text} appears in the note, not with {subject}")
        else:
            why.append(f"{p.role} {p.text} not in the note")
    status = (
        ClaimStatus.NOT_FOUND
        if best < 0
        else ClaimStatus.SUPPORTED
        if all(p.found for p in out)
        else ClaimStatus.PARTLY
    )
    unit = idx.units[best] if best >= 0 else None
    return Claim(kind, answer[s:e], s, e, status, tuple(out), unit, "; ".join(why))


def _elsewhere(idx: NoteIndex, p: _Part, owner: Callable[[int, int], str]) -> tuple[str, list[Span]]:
    """What a part appears with where it does occur (the nearest other drug or test), and those spans."""
    for sp in p.spans:
        name = owner(idx.unit_of(sp[0]), sp[0])
        if name:
            return name, [sp] + [x for x in p.spans if x != sp]
    return "", p.spans


def _date(idx: NoteIndex, answer: str, s: int, e: int) -> Claim:
    seg = answer[s:e]
    dates = [_Part("date", seg[x:y], s + x, s + y, list(idx.dates.get(k, ()))) for x, y, k in dates_in(seg)]
    inside = [(x, y) for x, y, _ in dates_in(seg)]
    events = [m for m in content_words(seg) if not any(x <= m.start() < y for x, y in inside)]
    date_units = {idx.unit_of(sp[0]) for p in dates for sp in p.spans} - {-1}
    event_units = [idx.stems.get(stem(m.group(0)), set()) for m in events]
    together = sorted(u for u in date_units if not events or any(u in us for us in event_units))
    best = together[0] if together else -1
    parts = [
        ClaimPart(p.role, p.text, p.start, p.end, best >= 0 and any(idx.unit_of(x) == best for x, _ in p.spans),
                  tuple(p.spans[:_MAX_SPANS]))
        for p in dates
    ]  # fmt: skip
    for m, us in zip(events, event_units, strict=True):
        found = best in us
        spans = _stem_spans(idx, m.group(0), best if found else (min(us) if us else -1))
        parts.append(ClaimPart("event", m.group(0), s + m.start(), s + m.end(), found, spans))
    if best >= 0:
        return Claim("date", seg, s, e, ClaimStatus.SUPPORTED, tuple(parts), idx.units[best])
    if not date_units:
        status = ClaimStatus.PARTLY if any(event_units) else ClaimStatus.NOT_FOUND
        reason = f"date {', '.join(p.text for p in dates)} not in the note"
    else:
        status = ClaimStatus.PARTLY
        reason = f"{dates[0].text} appears in the note, not with {' / '.join(m.group(0) for m in events[:4])}"
    return Claim("date", seg, s, e, status, tuple(parts), None, reason)


def _stem_spans(idx: NoteIndex, word: str, unit: int) -> tuple[Span, ...]:
    if unit < 0:
        return ()
    lo, hi = idx.units[unit]
    pattern = re.compile(r"\b" + re.escape(stem(word)) + r"\w*", re.IGNORECASE)
    return tuple((m.start(), m.end()) for m in pattern.finditer(idx.note, lo, hi))[:_MAX_SPANS]


def _fact(idx: NoteIndex, answer: str, s: int, e: int) -> Claim:
    parts = _fact_parts(idx, answer, s, e)
    seg = answer[s:e]
    if not parts:
        return Claim("fact", seg, s, e, ClaimStatus.UNCHECKED, reason="nothing checkable")
    claim = _judge(idx, answer, s, e, "fact", parts, [], lambda u, p: "")
    if claim.status == ClaimStatus.NOT_FOUND:
        return Claim("fact", seg, s, e, claim.status, claim.parts, None, f"none of {_names(parts)} is in the note")
    missing = [p for p in claim.parts if not p.found]
    absent = [p for p in missing if not p.note_spans]
    apart = [p for p in missing if p.note_spans]
    why = [f"{_names(absent)} not in the note"] if absent else []
    why += [f"{_names(apart)} not in the same sentence"] if apart else []
    return Claim("fact", seg, s, e, claim.status, claim.parts, claim.note_unit, "; ".join(why))


def _names(parts: Sequence[ClaimPart | _Part]) -> str:
    return ", ".join(p.text for p in parts)


def _fact_parts(idx: NoteIndex, answer: str, s: int, e: int) -> list[_Part]:
    """Checkable things of a sentence, most specific first where they overlap (a quote hides its inside)."""
    seg = answer[s:e]
    shouting = sum(c.isupper() for c in seg) > 0.8 * max(1, sum(c.isalpha() for c in seg))
    cands: list[_Part] = []
    for m in _QUOTED.finditer(seg):
        g = 1 if m.group(1) is not None else 2
        cands.append(_Part("quote", m.group(g), s + m.start(g), s + m.end(g), idx.phrase(m.group(g))))
    cands += [_Part("date", seg[x:y], s + x, s + y, list(idx.dates.get(k, ()))) for x, y, k in dates_in(seg)]
    cands += [_Part("dose", seg[x:y], s + x, s + y, list(idx.doses.get(k, ()))) for x, y, k in doses_in(seg)]
    cands += [_Part("number", answer[x:y], x, y, list(idx.values.get(k, ()))) for x, y, k in _values(answer, s, e)]
    # Frequencies and routes compare by meaning ("TID" is the note's "t.i.d."), before the terms they resemble.
    cands += [_Part("frequency", seg[x:y], s + x, s + y, list(idx.freqs.get(k, ()))) for x, y, k in frequencies_in(seg)]
    cands += [_Part("route", seg[x:y], s + x, s + y, list(idx.routes.get(k, ()))) for x, y, k in routes_in(seg)]
    for m in WORD.finditer(answer, s, e):
        if is_drug_word(m.group(0)):
            spans = [(d.start, d.end) for d in idx.drugs.get(generic_of(m.group(0)), ())]
            cands.append(_Part("drug", m.group(0), m.start(), m.end(), spans))
    cands += [_Part("term", seg[x:y], s + x, s + y, list(idx.labs.get(n, ()))) for x, y, n in labs_in(seg)]
    if not shouting:
        first = WORD.search(seg)
        for pat in (_ABBREV, _CAPWORD):
            for m in pat.finditer(seg, 0, _TERM_SCAN):
                if m.group(0) not in _COMMON and (first is None or m.start() != first.start()):
                    cands.append(_Part("term", m.group(0), s + m.start(), s + m.end(), idx.phrase(m.group(0))))
    kept: list[_Part] = []
    covered = bytearray(e - s)  # characters taken by a kept part: linear however many parts a claim has
    for c in cands:  # the order above is the priority
        a, b = c.start - s, c.end - s
        if c.role == "quote" or covered.find(1, a, b) < 0:
            kept.append(c)
            covered[a:b] = b"\x01" * (b - a)
    return sorted(kept, key=lambda p: p.start)


_ALL_MEDICATIONS = re.compile(
    r"\b(?:all|every|each|complete|full|entire|any)\b[^.?!\n]{0,40}?\b(?:medications?|medicines?|meds|drugs|"
    r"prescriptions)\b"
    r"|\b(?:list|enumerate|name|what are)\b[^.?!\n]{0,30}?\b(?:medications|medicines|meds|drugs)\b"
    r"|\b(?:discharge|home|current|outpatient|admission)\s+(?:medications|medication list|meds)\b"
    r"|\bmedication (?:list|reconciliation)\b",
    re.IGNORECASE,
)
"""An instruction that asks for the whole medication list (not "which medication was changed?")."""


def asks_for_all_medications(instruction: str) -> bool:
    return bool(_ALL_MEDICATIONS.search(instruction or ""))


def find_omissions(answer: str, note: str, instruction: str, claims: Sequence[Claim]) -> list[Omission]:
    """Drugs the note names (not negated) that the answer does not, when the instruction asks for all of
    them. A brand and its generic count as the same drug (``druglex.BRAND_GENERIC``)."""
    if not asks_for_all_medications(instruction):
        return []
    named = {generic_of(m.group(0)) for m in WORD.finditer(answer) if is_drug_word(m.group(0))}
    out: list[Omission] = []
    for d in drug_mentions(note):
        if not d.negated and d.generic not in named:
            named.add(d.generic)  # report each drug once, at its first mention
            out.append(Omission(d.text, d.start, d.end))
    return out

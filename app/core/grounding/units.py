"""Medication attributes written many ways, reduced to one form: doses, frequencies and routes.

A claim and its note rarely spell a regimen alike: "500 milligrams two times a day by mouth" in one is
"500mg PO BID" in the other. Each finder here returns ``(start, end, key)`` triples whose keys compare
equal exactly when the two spellings mean the same thing:

* dose: ``(low, high, unit)``; a single value has ``low == high``; a range ("1-2 tablets", "5 to 10 mg")
  keeps both ends, and a taper ("40 mg then 20 mg") is simply two doses. Units: mg = milligram(s); mcg =
  µg = ug = microgram(s); g = gram(s); mL = ml = cc = milliliter(s); units = unit = IU; tablets, capsules,
  puffs, drops, sprays, mEq.
* frequency: ``bid`` (b.i.d., twice daily, twice a day, two or 2 times a day, q12h, every 12 hours),
  ``tid`` (3 times daily ...), ``qid``, ``daily`` (qd, once daily, once a day, every day, a day, q24h),
  ``qhs`` (at bedtime, at h.s., nightly),
  ``qod``, ``prn`` (as needed), ``weekly``, ``monthly``, and ``qNh`` for other hourly intervals.
* route: ``po`` (by mouth, orally, oral), ``iv`` (intravenous), ``sc`` (SQ, subcut, subcutaneous), ``im``,
  ``inhaled``, ``topical``, ``pr`` (rectal), ``sl`` (sublingual), ``transdermal``, ``nasal``.

Matching is case-insensitive, so an answer written in capitals compares like any other.
"""

from __future__ import annotations

import re

from app.core.grounding.tokens import _NUM, _norm_num

Hit = tuple[int, int, object]

_DOSE_UNITS: dict[str, tuple[str, ...]] = {
    "mg": ("mg", "mgs", "milligram", "milligrams"),
    "mcg": ("mcg", "µg", "ug", "microgram", "micrograms"),
    "g": ("g", "gm", "gram", "grams"),
    "ml": ("ml", "cc", "milliliter", "milliliters", "millilitre", "millilitres"),
    "units": ("units", "unit", "iu", "international units"),
    "meq": ("meq", "milliequivalents"),
    "tab": ("tablets", "tablet", "tabs", "tab"),
    "cap": ("capsules", "capsule", "caps", "cap"),
    "puff": ("puffs", "puff"),
    "drop": ("drops", "drop", "gtt", "gtts"),
    "spray": ("sprays", "spray"),
}
_UNIT_OF = {alias: canon for canon, aliases in _DOSE_UNITS.items() for alias in aliases}
_DOSE_UNIT_RE = "|".join(re.escape(a) for a in sorted(_UNIT_OF, key=len, reverse=True))
DOSE = re.compile(
    rf"(?<![\w.,/])({_NUM})(?:\s*(?:-|–|to)\s*({_NUM}))?\s?({_DOSE_UNIT_RE})(?![\w/])",
    re.IGNORECASE,
)
"""A dose or a dose range with its unit; "/" after the unit is refused, so 1.9 mg/dL is a lab value."""

# Frequencies: (canonical, pattern), tried as one alternation, longest forms first within each.
_FREQUENCIES: tuple[tuple[str, str], ...] = (
    ("bid", r"b\.?i\.?d\.?|twice (?:a |per |each )?day|twice daily|(?:two|2) times (?:a |per |each )?day"
     r"|(?:two|2) times daily"
     r"|q\.?\s?12\s?h(?:ours?|rs?)?\.?|every 12 hours"),
    ("tid", r"t\.?i\.?d\.?|(?:three|3) times (?:a |per |each )?day|(?:three|3) times daily|thrice daily"
     r"|q\.?\s?8\s?h(?:ours?|rs?)?\.?|every 8 hours"),
    ("qid", r"q\.?i\.?d\.?|(?:four|4) times (?:a |per |each )?day|(?:four|4) times daily"
     r"|q\.?\s?6\s?h(?:ours?|rs?)?\.?"
     r"|every 6 hours"),
    ("qhs", r"q\.?h\.?s\.?|(?:at )?h\.s\.|at bedtime|before bed(?:time)?|nightly|at night|every night|each night"),
    ("qod", r"q\.?o\.?d\.?|every other day|on alternate days"),
    ("daily", r"once (?:a |per |each )?day|once daily|q\.?d\.?|every day|each day|daily|a day|per day"
     r"|q\.?\s?24\s?h(?:ours?|rs?)?\.?|every 24 hours|every morning|each morning|q\.?a\.?m\.?"),
    ("prn", r"p\.?r\.?n\.?|as needed|as necessary|when needed|if needed"),
    ("weekly", r"weekly|once (?:a|per|each) week|every week|q\.?\s?w(?:ee)?k"),
    ("monthly", r"monthly|once (?:a|per|each) month|every month"),
)  # fmt: skip
_FREQ_RE = re.compile(
    r"(?<![\w.])(?:" + "|".join(f"(?P<{c}>{p})" for c, p in _FREQUENCIES) + r"|q\.?\s?(?P<qh>\d{1,2})\s?h(?:ours?|rs?)?"
    r"|every (?P<eh>\d{1,2}) hours?)(?!\w)",
    re.IGNORECASE,
)
_HOURLY = {"12": "bid", "8": "tid", "6": "qid", "24": "daily"}

_ROUTES: tuple[tuple[str, str], ...] = (
    ("po", r"p\.?o\.?|by mouth|orally|oral|per os"),
    ("iv", r"i\.?v\.?|intravenous(?:ly)?|iv push|ivpb"),
    ("sc", r"s\.?c\.?|s\.?q\.?|subq|sub-q|subcut(?:aneous(?:ly)?)?"),
    ("im", r"i\.?m\.?|intramuscular(?:ly)?"),
    ("inhaled", r"inhaled|inhalation|inh|nebuli[sz]ed|via nebuli[sz]er"),
    ("topical", r"topical(?:ly)?"),
    ("pr", r"p\.?r\.?|rectal(?:ly)?|per rectum"),
    ("sl", r"s\.?l\.?|sublingual(?:ly)?"),
    ("transdermal", r"transdermal(?:ly)?|patch"),
    ("nasal", r"intranasal(?:ly)?|nasal(?:ly)?"),
)
_ROUTE_RE = re.compile(
    r"(?<![\w.])(?:" + "|".join(f"(?P<{c}>{p})" for c, p in _ROUTES) + r")(?!\w)",
    re.IGNORECASE,
)


def doses_in(text: str) -> list[Hit]:
    """Doses with their keys ``(low, high, unit)``; a number too long to be a dose is skipped, not parsed."""
    out: list[Hit] = []
    for m in DOSE.finditer(text):
        try:
            low = _norm_num(m.group(1))
            high = _norm_num(m.group(2)) if m.group(2) else low
        except ValueError:
            continue
        out.append((m.start(), m.end(), (low, high, _UNIT_OF[m.group(3).lower()])))
    return out


def frequencies_in(text: str) -> list[Hit]:
    out: list[Hit] = []
    for m in _FREQ_RE.finditer(text):
        hours = m.group("qh") or m.group("eh")
        key = (_HOURLY.get(hours.lstrip("0"), f"q{int(hours)}h") if hours else m.lastgroup) or ""
        out.append((m.start(), m.end(), key))
    return out


def routes_in(text: str) -> list[Hit]:
    return [(m.start(), m.end(), m.lastgroup) for m in _ROUTE_RE.finditer(text)]


def describe_dose(key: object) -> str:
    low, high, unit = key  # type: ignore[misc]
    fmt = "{:g}".format
    return f"{fmt(low)} {unit}" if low == high else f"{fmt(low)}-{fmt(high)} {unit}"

"""Lab tests and vital signs a claim can state a value for, each under one canonical name.

Written for this project: the tests and vitals that visit notes and discharge summaries report most, with
the spellings they use ("Hgb", "hemoglobin A1c", "O2 sat", "BP"). A lab claim names one of these and a
value; it is supported only where the note gives that test that value. Add spellings here (lower case).
"""

from __future__ import annotations

import re

_ALIASES: dict[str, tuple[str, ...]] = {
    "creatinine": ("creatinine", "creat", "cr"),
    "hemoglobin a1c": ("hemoglobin a1c", "haemoglobin a1c", "a1c", "hba1c", "glycated hemoglobin"),
    "hemoglobin": ("hemoglobin", "haemoglobin", "hgb", "hb"),
    "hematocrit": ("hematocrit", "hct"),
    "potassium": ("potassium",),
    "sodium": ("sodium",),
    "chloride": ("chloride",),
    "bicarbonate": ("bicarbonate", "bicarb", "co2"),
    "bun": ("bun", "blood urea nitrogen", "urea"),
    "glucose": ("glucose", "blood sugar", "blood sugars", "sugar", "sugars", "fasting glucose"),
    "wbc": ("wbc", "white blood cell count", "white blood cells", "white count", "white cell count"),
    "platelets": ("platelets", "platelet count", "plt"),
    "inr": ("inr",),
    "troponin": ("troponin", "trop"),
    "bnp": ("bnp", "nt-probnp", "probnp"),
    "ldl": ("ldl", "ldl cholesterol"),
    "hdl": ("hdl",),
    "cholesterol": ("total cholesterol", "cholesterol"),
    "triglycerides": ("triglycerides",),
    "tsh": ("tsh",),
    "psa": ("psa",),
    "egfr": ("egfr", "gfr"),
    "alt": ("alt",),
    "ast": ("ast",),
    "alkaline phosphatase": ("alkaline phosphatase", "alk phos"),
    "bilirubin": ("bilirubin", "total bilirubin"),
    "albumin": ("albumin",),
    "lactate": ("lactate", "lactic acid"),
    "magnesium": ("magnesium",),
    "calcium": ("calcium",),
    "ejection fraction": ("ejection fraction", "ef", "lvef"),
    "blood pressure": ("blood pressure", "blood pressures", "bp"),
    "heart rate": ("heart rate", "pulse", "hr", "pulse rate"),
    "respiratory rate": ("respiratory rate", "rr", "respirations", "respiration", "resp rate", "resp"),
    "temperature": ("temperature", "temp", "fever"),
    "oxygen saturation": (
        "oxygen saturation", "o2 saturation", "o2 sat", "o2 sats", "spo2", "sao2", "sats", "pulse ox",
        "pulse oximetry", "oxygenating", "satting",
    ),
    "weight": ("weight", "weighs", "wt"),
    "height": ("height",),
    "bmi": ("bmi", "body mass index"),
    "pain": ("pain score", "pain scale", "pain level"),
}  # fmt: skip

CANONICAL: dict[str, str] = {alias: canon for canon, aliases in _ALIASES.items() for alias in aliases}
"""Each spelling (lower case) -> its test's canonical name."""

_BY_FIRST: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _alias in sorted(CANONICAL, key=len, reverse=True):  # longest first: "hemoglobin a1c" before "hemoglobin"
    _BY_FIRST.setdefault(_alias.split()[0].split("-")[0], []).append(
        (CANONICAL[_alias], re.compile(r"\s+".join(re.escape(w) for w in _alias.split()) + r"(?![\w-])", re.I))
    )
_WORD = re.compile(r"[^\W_]+")


def labs_in(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, canonical name)`` for each test named in ``text``: a dictionary look-up per word, then
    the longest spelling that starts there (much cheaper than one alternation of every spelling)."""
    out: list[tuple[int, int, str]] = []
    end = 0
    for m in _WORD.finditer(text):
        if m.start() < end or (m.start() and text[m.start() - 1] == "-"):
            continue
        for name, pattern in _BY_FIRST.get(m.group(0).lower(), ()):
            hit = pattern.match(text, m.start())
            if hit:
                out.append((m.start(), hit.end(), name))
                end = hit.end()
                break
    return out

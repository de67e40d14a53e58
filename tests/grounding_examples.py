"""A hand-built claim-level grounding report (the issue's metformin/ibuprofen/Tylenol example) for display,
store and export tests: every status at once, independent of how the checker words or splits things."""

from __future__ import annotations

from app.core.grounding import Claim, ClaimPart, ClaimStatus, GroundingReport, ItemSpan, Omission

NOTE = (
    "Medications on discharge: metformin 1000 mg by mouth twice daily.\n"
    "Lisinopril 10 mg daily.\n"
    "Robitussin 10 mL every 6 hours as needed for cough."
)
ANSWER = (
    "1. Metformin 1000 mg twice daily\n"
    "2. Lisinopril 1000 mg daily\n"
    "3. Ibuprofen 1000 mg twice daily\n"
    "4. Tylenol 1000 mg twice daily\n"
    "5. No known allergies"
)


def _span(text: str, s: str, start: int = 0) -> tuple[int, int]:
    i = text.index(s, start)
    return i, i + len(s)


def _part(role: str, text: str, line_start: int, found: bool, note: str = "", belongs_to: str = "") -> ClaimPart:
    a, b = _span(ANSWER, text, line_start)
    spans = (_span(NOTE, note),) if note else ()
    return ClaimPart(role, text, a, b, found, spans, belongs_to)


def _claim(line: int, status: ClaimStatus, parts: tuple[ClaimPart, ...], unit: str = "", reason: str = "") -> Claim:
    text = ANSWER.splitlines()[line]
    a, b = _span(ANSWER, text)
    return Claim("medication", text, a, b, status, parts, _span(NOTE, unit) if unit else None, reason)


def example_report() -> GroundingReport:
    """Supported, partly, two not found, one unchecked, one aligned item, one unaligned, one omission."""
    lines = [_span(ANSWER, line)[0] for line in ANSWER.splitlines()]
    first = NOTE.splitlines()[0]
    supported = _claim(
        0,
        ClaimStatus.SUPPORTED,
        (
            _part("drug", "Metformin", lines[0], True, "metformin"),
            _part("dose", "1000 mg", lines[0], True, "1000 mg"),
            _part("frequency", "twice daily", lines[0], True, "twice daily"),
        ),
        unit=first,
    )
    partly = _claim(
        1,
        ClaimStatus.PARTLY,
        (
            _part("drug", "Lisinopril", lines[1], True, "Lisinopril"),
            _part("dose", "1000 mg", lines[1], False, "1000 mg", belongs_to="metformin"),
            _part("frequency", "daily", lines[1], True, "daily."),
        ),
        unit="Lisinopril 10 mg daily.",
        reason="1000 mg appears with metformin, not lisinopril",
    )
    ibuprofen = _claim(
        2, ClaimStatus.NOT_FOUND, (_part("drug", "Ibuprofen", lines[2], False),), reason="ibuprofen is not in the note"
    )
    tylenol = _claim(
        3, ClaimStatus.NOT_FOUND, (_part("drug", "Tylenol", lines[3], False),), reason="Tylenol is not in the note"
    )
    unchecked = _claim(4, ClaimStatus.UNCHECKED, (), reason="a negation: not checked")
    a, b = _span(ANSWER, "Metformin")
    item = ItemSpan("Metformin", a, b, "normalized", 1.0, (_span(NOTE, "metformin"),))
    a, b = _span(ANSWER, "Tylenol")
    missing = ItemSpan("Tylenol", a, b, "none", 0.0)
    r0, r1 = _span(NOTE, "Robitussin")
    return GroundingReport(
        (supported, partly, ibuprofen, tylenol, unchecked),
        (item, missing),
        (Omission("Robitussin", r0, r1),),
        ("no abbreviation sense inventory is configured",),
    )

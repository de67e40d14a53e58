"""The grounding report without words taken from the note, for a log that keeps note hashes only.

A report quotes the note in three places: an omission's ``text`` (a drug the note names), a part's
``belongs_to`` (what a dose appears with in the note: "metformin") and a claim's ``reason``, which the claim
checker words freely and may quote the note. Everything else is the answer's own text, statuses and offsets
(numbers, not words), which a hash-only log may keep. ``EvalLog.finish_run`` applies this when
``store_note_text`` is false, so the stored summary can never carry note text the user chose not to keep.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.core.grounding.report import SCHEMA, Claim, ClaimStatus, GroundingReport

KEPT_OUT = "not kept: hash-only log"


def _reason(c: Claim) -> str:
    """A reason built from the answer's side of the claim only (roles and the answer's words)."""
    if c.status == ClaimStatus.SUPPORTED:
        return ""
    if c.status == ClaimStatus.NOT_FOUND:
        return "not found in the note"
    if c.status == ClaimStatus.UNCHECKED:
        return f"not checked (reason {KEPT_OUT})"
    missing = [p for p in c.parts if not p.found]
    if not missing:
        return "partly supported"
    bits = [f"{p.role} {p.text}" + (" is with something else in the note" if p.belongs_to else "") for p in missing]
    return "not with the rest in the note: " + "; ".join(bits)


def redact_report(report: GroundingReport) -> GroundingReport:
    claims = tuple(
        replace(c, reason=_reason(c), parts=tuple(replace(p, belongs_to="") for p in c.parts)) for c in report.claims
    )
    omissions = tuple(replace(o, text=f"a {o.kind} named in the note (name {KEPT_OUT})") for o in report.omissions)
    return replace(report, claims=claims, omissions=omissions)


def redact_summary(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """``summary`` (a stored ``GroundingReport.summary()``) without note words; older forms have none."""
    if not summary or summary.get("schema") != SCHEMA:
        return summary  # schema 1 stored counts only
    return redact_report(GroundingReport.from_dict(summary)).summary()

"""PLACEHOLDER (being written): claims of an answer checked as units against the note."""

from __future__ import annotations

from collections.abc import Sequence

from app.core.grounding.report import Claim, ClaimPart, ClaimStatus, Omission
from app.core.grounding.tokens import check_tokens


def check_claims(answer: str, note: str) -> list[Claim]:
    """Placeholder: one claim per token-level fact, until the claim checker lands."""
    out = []
    for f in check_tokens(answer, note).spans:
        part = ClaimPart(f.kind, f.text, f.answer_start, f.answer_end, f.found, f.note_spans)
        status = ClaimStatus.SUPPORTED if f.found else ClaimStatus.NOT_FOUND
        out.append(Claim("fact", f.text, f.answer_start, f.answer_end, status, (part,)))
    return out


def find_omissions(answer: str, note: str, instruction: str, claims: Sequence[Claim]) -> list[Omission]:
    return []

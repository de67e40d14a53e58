"""Grounding: each claim of an answer checked against its note, extraction items aligned to their mentions.

One checker for the whole project (the app, ``ask``, batch, the exports, ``asclepius ground`` and the
evaluation scorers): ``check_answer``. Qt-free, stdlib only, run after the answer has streamed.

* ``claims``: the answer split into claims (list items, sentences), each checked as a unit against the
  note's sentences and list lines (medication: drug + dose + route + frequency together; lab: test + value;
  date: date + event).
* ``align``: extraction items aligned to their mentions (exact, then case/spacing-insensitive, then a
  bounded fuzzy match); ``senses``: abbreviation expansions against sense inventories.
* ``standoff``: aligned spans as BioC JSON or brat for clinical NLP tools.
* ``tokens``: the older word-level fact finder, kept for the benchmark's side-by-side comparison and
  as a source of the fact patterns (numbers, units, dates) the claim parser uses.
"""

from __future__ import annotations

from app.core.grounding.align import EXTRACTION_TASKS, align_items
from app.core.grounding.claims import check_claims, find_omissions
from app.core.grounding.report import (
    SCHEMA,
    Claim,
    ClaimPart,
    ClaimStatus,
    GroundingReport,
    ItemSpan,
    Omission,
    describe_summary,
)
from app.core.grounding.senses import SenseInventory

__all__ = [
    "EXTRACTION_TASKS",
    "SCHEMA",
    "Claim",
    "ClaimPart",
    "ClaimStatus",
    "GroundingReport",
    "ItemSpan",
    "Omission",
    "SenseInventory",
    "check_answer",
    "describe_summary",
]


def check_answer(
    answer: str,
    note: str,
    task: str | None = None,
    instruction: str = "",
    senses: SenseInventory | None = None,
) -> GroundingReport:
    """Check ``answer`` against ``note``. ``task`` is a task name or slug (``resources.tasks``); for the
    extraction tasks the answer's items are also aligned to the note. ``instruction`` decides whether an
    omission is worth reporting ("list every medication"). ``senses``: abbreviation sense inventories
    (None: expansions are aligned but their senses not checked, and the report says so)."""
    if not answer.strip():
        return GroundingReport()
    claims = check_claims(answer, note)
    items, notes = align_items(answer, note, task, senses) if task else ((), ())
    omissions = find_omissions(answer, note, instruction, claims)
    return GroundingReport(tuple(claims), tuple(items), tuple(omissions), tuple(notes))

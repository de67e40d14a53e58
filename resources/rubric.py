"""The 4-point rubric used by the Asclepius clinician evaluation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RubricLevel:
    score: int
    label: str
    definition: str


RUBRIC: tuple[RubricLevel, ...] = (
    RubricLevel(
        1,
        "Unacceptable",
        "Any incorrect or irrelevant content, or did not acknowledge an unanswerable instruction.",
    ),
    RubricLevel(2, "Poor", "No incorrect content, but omits crucial content."),
    RubricLevel(3, "Satisfactory", "Omits only minor content."),
    RubricLevel(
        4,
        "Excellent",
        "All necessary information, or correctly says the instruction is unanswerable.",
    ),
)

RUBRIC_VERSION = "1"


def level(score: int) -> RubricLevel:
    for lv in RUBRIC:
        if lv.score == score:
            return lv
    raise ValueError(f"rubric score must be 1, 2, 3 or 4, not {score!r}")


def flag_contradiction(score: int, hallucination: bool) -> str | None:
    """Why ``score`` contradicts a ticked Hallucination flag on this rubric, or None.

    Level 1 is "any incorrect ... content"; level 2 says "no incorrect content", and 3 and 4 rank above it.
    An answer flagged as stating what the note does not support holds incorrect content, so on the rubric it
    scores 1: a higher score with the flag says two opposite things, and the statistics (means, counts of
    score-1 answers, hallucination counts) would disagree about the same answer.
    """
    if not hallucination or score == 1:
        return None
    lv = level(score)
    return (
        f"score {score} ({lv.label}) ranks the answer above 'any incorrect content' (score 1), but Hallucination "
        "says it states something the note does not support"
    )

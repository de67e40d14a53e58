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

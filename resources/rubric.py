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


def is_score(value: object) -> bool:
    """A rubric score: an int 1-4 (a bool is none, though ``True == 1`` in Python)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4


def rating_problem(score: object, hallucination: bool, comment: str | None) -> str | None:
    """Why a rating cannot be stored as given, or None: the score must be 1-4, and a score that contradicts
    the Hallucination flag (``flag_contradiction``) needs a comment saying why. The store (``add_rating``,
    ``log import-ratings``, study ratings) refuses with this message; ``study rate --from`` (app/core/packets)
    refuses the row; the Rate panel and the Study screen ask for the comment."""
    if not is_score(score):
        return f"a rating is 1, 2, 3 or 4 on the rubric, not {score!r}"
    why = flag_contradiction(score, hallucination)
    if why is not None and not (comment or "").strip():
        return f"{why}: score 1, untick Hallucination, or explain in a comment"
    return None


FLAG_TRUE = frozenset({"1", "true", "yes", "y", "t", "x"})
"""How a spreadsheet or a paper form marks the Hallucination flag ("x" for a ticked box), case-folded."""
FLAG_FALSE = frozenset({"0", "false", "no", "n", "f", ""})
"""How it leaves the flag off (an empty cell is "no")."""

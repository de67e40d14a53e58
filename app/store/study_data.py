"""A study's ratings as plain data: what agreement statistics and the study report are computed from.

Built from the log by the study store (``EvalLog.study_data``) or by a test from a matrix; nothing here
touches the database, so statistics and the report are testable on any data.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RatedAnswer:
    """One current rating of one study answer by one rater."""

    item: str
    """The item's key (one note + task + instruction)."""
    task: str
    arm: str
    """The arm's label (the coordinator's name for the model); the report may show it, raters never."""
    answer: str
    """The study answer's opaque uid."""
    rater: str
    score: int
    """1-4 on the rubric."""
    hallucination: bool = False
    calibration: bool = False
    """The item belongs to the calibration subset (rated by every rater)."""
    failed: bool = False
    """The arm produced no usable answer (error, stopped or empty): rated like any other, typically 1."""


@dataclass(frozen=True)
class JudgeScore:
    """An automated judge's score of a study answer (``asclepius judge`` on the same runs)."""

    answer: str
    judge: str
    score: float


@dataclass(frozen=True)
class Adjudicated:
    answer: str
    adjudicator: str
    score: int
    reason: str


@dataclass(frozen=True)
class StudyData:
    name: str
    seed: int
    overlap: int
    blinding: str
    arms: tuple[str, ...]
    raters: tuple[str, ...]
    tasks: tuple[str, ...]
    ratings: tuple[RatedAnswer, ...]
    judge: tuple[JudgeScore, ...] = ()
    adjudications: tuple[Adjudicated, ...] = ()
    assigned: dict[str, int] = field(default_factory=dict)
    """Rater -> answers assigned (for progress: rated / assigned)."""
    answers_per_arm: dict[str, int] = field(default_factory=dict)

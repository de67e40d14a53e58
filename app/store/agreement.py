"""A study's statistics from its ratings (``StudyData``): what ``study status`` prints, the Statistics screen
shows and the study report tabulates. Plain data in, plain data out (``StudyStats.to_json``); the numbers come
from ``app.store.estimates`` (alpha, bootstrap intervals, correlations) and scipy (Wilcoxon).

Conventions (each stated in the report):
- Agreement uses the raters' own current scores: alpha over answers rated by two or more raters, overall,
  per task and on the calibration subset, each with a bootstrap interval over answers.
- An answer's score for the per-arm figures is its adjudicated score where an adjudicator recorded one, else
  the mean of its raters' scores. Failed answers (no usable answer from the arm) are rated like any other
  and count in the means: dropping them would flatter the arm that fails.
- The paired test compares two arms on the items both have a scored answer for (one answer per item and arm):
  Wilcoxon signed-rank on the item scores, with the mean difference's bootstrap interval.
- A disagreement is an answer whose raters' scores differ by 2 or more points.
- Judge correlations compare a judge's score with the clinicians' answer score (as above) on answers both
  scored.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from app.store.estimates import (
    NOT_ENOUGH,
    SEED,
    AlphaEstimate,
    Correlation,
    alpha_estimate,
    bootstrap_ci,
    correlations,
    finite_or_none,
)
from app.store.study_data import RatedAnswer, StudyData

MIN_PAIRED_ITEMS = 3
"""A signed-rank test on two items cannot reach any usual significance level: no p-value below that."""
DISAGREEMENT_POINTS = 2
"""Raters 2 or more points apart on the 4-point rubric disagree about whether the answer is usable."""
ALL_TASKS = "all tasks"


@dataclass(frozen=True)
class RaterProgress:
    rater: str
    rated: int
    """Answers this rater has a current rating for."""
    assigned: int
    """Answers assigned to this rater (0 when the study data does not say)."""


@dataclass(frozen=True)
class PairAgreement:
    """How often two raters gave the same score to the answers both rated."""

    rater_a: str
    rater_b: str
    n: int
    """Answers both rated."""
    exact: float | None
    """Share with the same score (None when n is 0)."""
    within_one: float | None
    """Share at most one point apart."""


@dataclass(frozen=True)
class Disagreement:
    answer: str
    item: str
    task: str
    arm: str
    scores: dict[str, int]
    """Rater -> score."""
    spread: int
    """Highest minus lowest score."""
    adjudicated: int | None = None
    """The adjudicator's final score, when one was recorded."""
    adjudicator: str | None = None
    reason: str | None = None
    """The adjudicator's reason."""


@dataclass(frozen=True)
class ArmMean:
    """An arm's mean answer score on one task (or on all tasks), with a 95% bootstrap interval over answers."""

    arm: str
    task: str
    answers: int
    """Scored answers (the n of the mean)."""
    adjudicated: int
    """Of those, answers whose score is the adjudicator's."""
    mean: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class ArmComparison:
    """Two arms on the items both answered (scored), for one task or all tasks."""

    arm_a: str
    arm_b: str
    task: str
    items: int
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None
    """Mean of (a - b) over the items."""
    diff_low: float | None
    diff_high: float | None
    wilcoxon_stat: float | None
    wilcoxon_p: float | None
    reason: str | None = None
    """Why the test is missing ("not enough data: ..."), or None."""


@dataclass(frozen=True)
class ArmFlags:
    """Counts per arm that the paper reports beside the means (score-1 answers as a hallucination proxy)."""

    arm: str
    answers: int
    """Rated answers."""
    ratings: int
    score_1: int
    """Ratings of 1 ("unacceptable")."""
    hallucination: int
    """Ratings with the hallucination flag."""
    answers_scored_1: int
    """Answers whose final score (adjudicated, else raters' mean) is 1."""
    failed: int
    """Rated answers where the arm produced no usable answer."""


@dataclass(frozen=True)
class JudgeAgreement:
    judge: str
    n: int
    """Answers scored by the judge and by clinicians."""
    pearson: Correlation
    kendall: Correlation
    spearman: Correlation
    reason: str | None = None


@dataclass(frozen=True)
class StudyStats:
    study: str
    ratings: int
    """Current ratings counted."""
    answers: int
    """Answers with at least one rating."""
    alpha: AlphaEstimate
    """Over all answers rated by two or more raters."""
    per_task: dict[str, AlphaEstimate]
    calibration: AlphaEstimate
    """Over the calibration subset (rated by every rater)."""
    pairwise: tuple[PairAgreement, ...]
    disagreements: tuple[Disagreement, ...]
    progress: tuple[RaterProgress, ...]
    arm_means: tuple[ArmMean, ...]
    """Per arm and task, then per arm over all tasks (task ``ALL_TASKS``)."""
    paired: tuple[ArmComparison, ...]
    flags: tuple[ArmFlags, ...]
    judges: tuple[JudgeAgreement, ...] = ()
    adjudications: int = 0
    """Answers with an adjudicated score."""
    notes: tuple[str, ...] = field(default=())
    """The conventions a reader needs (adjudicated scores replace means, ...)."""

    def to_json(self) -> dict[str, Any]:
        """Plain types only (None for a missing number, never NaN): ``study status --json``."""
        d = _plain(asdict(self))
        d["alpha"] = self.alpha.alpha
        d["alpha_ci"] = None if self.alpha.low is None else [self.alpha.low, self.alpha.high]
        d["alpha_detail"] = _plain(asdict(self.alpha))
        return d


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, float):
        return finite_or_none(v)
    if isinstance(v, np.generic):
        return _plain(v.item())
    return v


def _matrix(ratings: list[RatedAnswer]) -> np.ndarray:
    """Raters x answers (NaN = not rated) of the given ratings."""
    raters = sorted({r.rater for r in ratings})
    answers = sorted({r.answer for r in ratings})
    ri, ai = {r: i for i, r in enumerate(raters)}, {a: i for i, a in enumerate(answers)}
    m = np.full((len(raters), len(answers)), np.nan)
    for r in ratings:
        m[ri[r.rater], ai[r.answer]] = r.score
    return m


def _alpha(ratings: list[RatedAnswer], seed: int) -> AlphaEstimate:
    if not ratings:
        return AlphaEstimate(None, None, None, 0, 0, 0, f"{NOT_ENOUGH}: no ratings")
    return alpha_estimate(_matrix(ratings), seed=seed)


def answer_scores(data: StudyData) -> dict[str, float]:
    """Answer -> final score: the current adjudication, else the mean of the raters' scores."""
    by_answer: dict[str, list[int]] = defaultdict(list)
    for r in data.ratings:
        by_answer[r.answer].append(r.score)
    out = {a: float(np.mean(s)) for a, s in by_answer.items()}
    for adj in data.adjudications:
        out[adj.answer] = float(adj.score)
    return out


def _pairwise(data: StudyData) -> tuple[PairAgreement, ...]:
    by_rater: dict[str, dict[str, int]] = defaultdict(dict)
    for r in data.ratings:
        by_rater[r.rater][r.answer] = r.score
    raters = sorted(set(data.raters) | set(by_rater))
    out = []
    for a, b in combinations(raters, 2):
        both = sorted(set(by_rater[a]) & set(by_rater[b]))
        d = np.array([abs(by_rater[a][x] - by_rater[b][x]) for x in both])
        n = len(both)
        out.append(PairAgreement(a, b, n, float(np.mean(d == 0)) if n else None, float(np.mean(d <= 1)) if n else None))
    return tuple(out)


def _disagreements(data: StudyData) -> tuple[Disagreement, ...]:
    by_answer: dict[str, list[RatedAnswer]] = defaultdict(list)
    for r in data.ratings:
        by_answer[r.answer].append(r)
    adjudicated = {a.answer: a for a in data.adjudications}
    out = []
    for answer, rs in sorted(by_answer.items(), key=lambda kv: (kv[1][0].item, kv[1][0].arm, kv[0])):
        scores = [r.score for r in rs]
        spread = max(scores) - min(scores)
        if spread < DISAGREEMENT_POINTS:
            continue
        adj = adjudicated.get(answer)
        out.append(
            Disagreement(
                answer,
                rs[0].item,
                rs[0].task,
                rs[0].arm,
                {r.rater: r.score for r in sorted(rs, key=lambda r: r.rater)},
                spread,
                adj.score if adj else None,
                adj.adjudicator if adj else None,
                adj.reason if adj else None,
            )
        )
    return tuple(out)


def _progress(data: StudyData) -> tuple[RaterProgress, ...]:
    rated: dict[str, set[str]] = defaultdict(set)
    for r in data.ratings:
        rated[r.rater].add(r.answer)
    raters = list(data.raters) + sorted(set(rated) - set(data.raters))
    return tuple(RaterProgress(r, len(rated[r]), int(data.assigned.get(r, 0))) for r in raters)


def _answer_info(data: StudyData) -> dict[str, RatedAnswer]:
    """Answer -> one of its ratings (for its item, task, arm, failure)."""
    return {r.answer: r for r in data.ratings}


def _arm_means(data: StudyData, scores: dict[str, float]) -> tuple[ArmMean, ...]:
    info = _answer_info(data)
    adjudicated = {a.answer for a in data.adjudications}
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for answer, r in info.items():
        groups[(r.arm, r.task)].append(answer)
        groups[(r.arm, ALL_TASKS)].append(answer)
    out = []
    for arm in _arms(data):
        for task in (*_tasks(data), ALL_TASKS):
            answers = sorted(groups.get((arm, task), []))
            values = [scores[a] for a in answers]
            low, high = bootstrap_ci(values) if values else (math.nan, math.nan)
            mean = float(np.mean(values)) if values else None
            n_adj = sum(a in adjudicated for a in answers)
            out.append(ArmMean(arm, task, len(values), n_adj, mean, finite_or_none(low), finite_or_none(high)))
    return tuple(out)


def _arms(data: StudyData) -> list[str]:
    return list(data.arms) + sorted({r.arm for r in data.ratings} - set(data.arms))


def _tasks(data: StudyData) -> list[str]:
    return list(data.tasks) + sorted({r.task for r in data.ratings} - set(data.tasks))


def _compare(arm_a: str, arm_b: str, task: str, a: np.ndarray, b: np.ndarray) -> ArmComparison:
    from scipy import stats as sps

    n = len(a)
    d = a - b
    ma, mb, md = (float(np.mean(x)) if n else None for x in (a, b, d))
    low, high = bootstrap_ci(d) if n else (math.nan, math.nan)
    stat = p = None
    reason = None
    if n < MIN_PAIRED_ITEMS:
        reason = f"{NOT_ENOUGH}: {n} items scored in both arms (at least {MIN_PAIRED_ITEMS} needed)"
    elif not np.any(d != 0):
        reason = f"{NOT_ENOUGH}: the two arms scored the same on every shared item (no differences to test)"
    else:
        w = sps.wilcoxon(a, b)
        stat, p = float(w.statistic), float(w.pvalue)
    return ArmComparison(arm_a, arm_b, task, n, ma, mb, md, finite_or_none(low), finite_or_none(high), stat, p, reason)


def _paired(data: StudyData, scores: dict[str, float]) -> tuple[ArmComparison, ...]:
    info = _answer_info(data)
    per_arm: dict[str, dict[str, float]] = defaultdict(dict)  # arm -> item -> score
    task_of: dict[str, str] = {}
    for answer, r in info.items():
        per_arm[r.arm][r.item] = scores[answer]
        task_of[r.item] = r.task
    out = []
    for arm_a, arm_b in combinations(_arms(data), 2):
        common = sorted(set(per_arm[arm_a]) & set(per_arm[arm_b]))
        for task in (*_tasks(data), ALL_TASKS):
            items = [i for i in common if task in (ALL_TASKS, task_of[i])]
            a = np.array([per_arm[arm_a][i] for i in items])
            b = np.array([per_arm[arm_b][i] for i in items])
            out.append(_compare(arm_a, arm_b, task, a, b))
    return tuple(out)


def _flags(data: StudyData, scores: dict[str, float]) -> tuple[ArmFlags, ...]:
    out = []
    for arm in _arms(data):
        rs = [r for r in data.ratings if r.arm == arm]
        answers = {r.answer for r in rs}
        failed = {r.answer for r in rs if r.failed}
        out.append(
            ArmFlags(
                arm,
                len(answers),
                len(rs),
                sum(r.score == 1 for r in rs),
                sum(r.hallucination for r in rs),
                sum(scores[a] == 1.0 for a in answers),
                len(failed),
            )
        )
    return tuple(out)


def _judges(data: StudyData, scores: dict[str, float], seed: int) -> tuple[JudgeAgreement, ...]:
    by_judge: dict[str, dict[str, float]] = defaultdict(dict)
    for j in data.judge:
        by_judge[j.judge][j.answer] = float(j.score)
    out = []
    for judge, js in sorted(by_judge.items()):
        both = sorted(set(js) & set(scores))
        coef, reason = correlations([scores[a] for a in both], [js[a] for a in both], seed=seed)
        out.append(JudgeAgreement(judge, len(both), coef["pearson"], coef["kendall"], coef["spearman"], reason))
    return tuple(out)


NOTES = (
    "An answer's score is its adjudicated score where one was recorded, else the mean of its raters' scores; "
    "agreement (alpha, pairwise) uses the raters' own scores.",
    "Intervals are 95% percentile bootstrap intervals (2,000 resamples of answers or items, fixed seed).",
    "Failed answers (the arm gave no usable answer) are rated like any other and count in the means.",
)


def study_stats(data: StudyData, seed: int = SEED) -> StudyStats:
    """Every statistic of one study; the same data and seed give the same numbers."""
    scores = answer_scores(data)
    ratings = list(data.ratings)
    per_task = {t: _alpha([r for r in ratings if r.task == t], seed) for t in _tasks(data)}
    return StudyStats(
        study=data.name,
        ratings=len(ratings),
        answers=len({r.answer for r in ratings}),
        alpha=_alpha(ratings, seed),
        per_task=per_task,
        calibration=_alpha([r for r in ratings if r.calibration], seed),
        pairwise=_pairwise(data),
        disagreements=_disagreements(data),
        progress=_progress(data),
        arm_means=_arm_means(data, scores),
        paired=_paired(data, scores),
        flags=_flags(data, scores),
        judges=_judges(data, scores, seed),
        adjudications=len({a.answer for a in data.adjudications} & {r.answer for r in ratings}),
        notes=NOTES,
    )

"""Statistics over the log: "is model A better than model B on task T?".

Conventions (each is a choice; all are stated in the CLI output and docs):
- A run's human score is the mean of its raters' *current* ratings; superseded ratings are history.
- Only ratings of runs that can be rated count (``app/store/rules.py``): a failed or stopped run, or an
  empty answer, has nothing to score, though a log written before the store refused such ratings may
  hold some; :func:`left_out_ratings` counts them so the output can say so.
- Means come with a 95% percentile bootstrap interval over runs (``scipy.stats.bootstrap``, 2,000
  resamples, fixed seed, so the same log gives the same interval every time); one run has no interval.
- Paired comparisons match items (same note, task and instruction) rated for both models; an item's
  score for a model is the mean over its rated runs. Paired t-test and Wilcoxon signed-rank (scipy).
- Inter-rater agreement: Krippendorff's alpha, ordinal (``app.store.estimates``), over runs with two or more
  human raters, overall and per task, each with a bootstrap interval over runs.
- Hallucination flags and score-1 ratings are counted per model and task (the paper's hallucination proxy).
- Where the data cannot support a number, there is none: fewer than ``MIN_PAIRED_ITEMS`` shared items, no
  differences at all, or differences all equal (zero variance: t is undefined) give NaN statistics and a
  ``reason`` ("not enough data: ..."); so does agreement when every rating is the same value (alpha is
  0/0 there, not 1) or when fewer than two runs were rated twice.
- Win rate from blinded comparisons: (wins + ties / 2) / (wins + losses + ties); "both bad" verdicts are
  counted but left out of the rate (neither answer is usable, so neither model won). The run filters
  apply as elsewhere: ``task``, ``since``/``until`` to both runs of a comparison, ``model`` keeps the
  comparisons that model took part in and reports that model only, ``rater`` the comparisons they made.
- Human vs automated judge: per judge, Spearman and Pearson correlation and exact agreement on runs
  scored by both.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import case, func, or_, select

from app.store.estimates import NOT_ENOUGH, alpha_estimate, bootstrap_ci
from app.store.log import EvalLog
from app.store.models import Comparison, Model, Rater, Rating, Run
from app.store.queries import RunFilter
from app.store.rules import rateable_clause

MIN_PAIRED_ITEMS = 3
"""A paired t-test on two items has one degree of freedom: its p-value says nothing a reader can use."""


@dataclass(frozen=True)
class MeanCI:
    model: str
    task: str
    runs: int
    ratings: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedTest:
    model_a: str
    model_b: str
    task: str | None
    items: int
    mean_a: float
    mean_b: float
    mean_diff: float
    t_stat: float
    t_p: float
    wilcoxon_stat: float
    wilcoxon_p: float
    reason: str | None = None
    """Why a statistic is missing ("not enough data: ..."), or None when both tests ran."""


@dataclass(frozen=True)
class Agreement:
    runs: int
    raters: int
    alpha: float
    reason: str | None = None
    """Why alpha is missing ("not enough data: ..."), or None."""
    low: float = math.nan
    """95% bootstrap interval over runs (NaN without one)."""
    high: float = math.nan
    task: str | None = None
    """The task this agreement is about; None for all tasks."""


@dataclass(frozen=True)
class FlagCount:
    """Per model and task: the hallucination flags and score-1 ratings beside the ratings they are among."""

    model: str
    task: str
    ratings: int
    hallucination: int
    """Current human ratings with the hallucination flag ticked."""
    score_1: int
    """Current human ratings of 1 ("unacceptable")."""


@dataclass(frozen=True)
class WinRate:
    model: str
    comparisons: int
    wins: int
    losses: int
    ties: int
    both_bad: int
    win_rate: float


@dataclass(frozen=True)
class JudgeCorrelation:
    judge: str
    runs: int
    spearman: float
    spearman_p: float
    pearson: float
    exact_agreement: float


def _model_label(sha: str, file_name: str) -> str:
    return f"{file_name} [{sha[:8]}]"


def _human_ratings(log: EvalLog, filters: RunFilter, kind: str = "human") -> list[Any]:
    """Current ratings of matching rateable runs: run id, model, item key, task, rater, score, hallucination.

    A judge's current rating may be its position-averaged score over several candidate orders
    (``training/judge/run.py``): the exact mean is in the comment's ``position_mean`` (the 1-4 column holds
    it rounded), and that mean is the score counted here."""
    score: Any = Rating.score
    if kind == "judge":
        # Nested so that json_extract never sees a free-text comment (it raises on malformed JSON).
        mean = func.coalesce(func.json_extract(Rating.comment, "$.position_mean"), Rating.score)
        score = case((func.json_valid(Rating.comment) == 1, mean), else_=Rating.score)
    stmt = (
        select(
            Rating.run_id,
            Model.sha256,
            Model.file_name,
            Run.note_id,
            Run.task,
            Run.instruction,
            Rater.name.label("rater"),
            score.label("score"),
            Rating.hallucination,
        )
        .join(Run, Rating.run_id == Run.id)
        .join(Model, Run.model_id == Model.id)
        .join(Rater, Rating.rater_id == Rater.id)
        .where(Rating.is_current.is_(True), Rater.kind == kind, rateable_clause())
    )
    if filters.rater is not None:
        stmt = stmt.where(Rater.name == filters.rater)
    stmt = replace(filters, rater=None).apply(stmt)
    with log.read_session() as s:
        return list(s.execute(stmt))


def left_out_ratings(log: EvalLog, filters: RunFilter | None = None) -> int:
    """Current ratings (human or judge) of matching runs that cannot be rated, which the statistics leave
    out: a log written before the store refused them (``app/store/rules.py``) can hold some."""
    f = filters or RunFilter()
    stmt = (
        select(func.count())
        .select_from(Rating)
        .join(Run, Rating.run_id == Run.id)
        .join(Rater, Rating.rater_id == Rater.id)
        .where(Rating.is_current.is_(True), ~rateable_clause())
    )
    if f.rater is not None:
        stmt = stmt.where(Rater.name == f.rater)
    stmt = replace(f, rater=None).apply(stmt)
    with log.read_session() as s:
        return int(s.scalar(stmt) or 0)


def _run_scores(rows: list[Any]) -> dict[int, list[int]]:
    by_run: dict[int, list[int]] = defaultdict(list)
    for r in rows:
        by_run[r.run_id].append(r.score)
    return by_run


def mean_scores(log: EvalLog, filters: RunFilter | None = None) -> list[MeanCI]:
    """Mean human score per model and task, with a bootstrap 95% interval."""
    rows = _human_ratings(log, filters or RunFilter())
    groups: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        groups[(_model_label(r.sha256, r.file_name), r.task)][r.run_id].append(r.score)
    out = []
    for (model, task), runs in sorted(groups.items()):
        per_run = [float(np.mean(v)) for v in runs.values()]
        low, high = bootstrap_ci(per_run)
        out.append(MeanCI(model, task, len(per_run), sum(map(len, runs.values())), float(np.mean(per_run)), low, high))
    return out


def paired_test(log: EvalLog, model_a: str, model_b: str, filters: RunFilter | None = None) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank of two models' human scores on the items both answered."""
    from scipy import stats as sps

    filters = filters or RunFilter()
    per_model: dict[str, dict[tuple[int, str, str], list[float]]] = {}
    for name in (model_a, model_b):
        rows = _human_ratings(log, replace(filters, model=name))
        item_of = {r.run_id: (r.note_id, r.task, r.instruction) for r in rows}
        items: dict[tuple[int, str, str], list[float]] = defaultdict(list)
        for run_id, scores in _run_scores(rows).items():
            items[item_of[run_id]].append(float(np.mean(scores)))
        per_model[name] = items
    common = sorted(set(per_model[model_a]) & set(per_model[model_b]))
    a = np.array([np.mean(per_model[model_a][k]) for k in common])
    b = np.array([np.mean(per_model[model_b][k]) for k in common])
    t_stat = t_p = w_stat = w_p = math.nan
    d = a - b
    reason = None
    if len(common) < MIN_PAIRED_ITEMS:
        reason = f"{NOT_ENOUGH}: {len(common)} shared rated items (at least {MIN_PAIRED_ITEMS} needed)"
    elif not np.any(d != 0):
        reason = f"{NOT_ENOUGH}: the two models scored the same on every shared item (no differences to test)"
    else:
        w = sps.wilcoxon(a, b)
        w_stat, w_p = float(w.statistic), float(w.pvalue)
        if np.all(d == d[0]):
            reason = f"{NOT_ENOUGH} for the t-test: every item differs by the same amount (zero variance)"
        else:
            t = sps.ttest_rel(a, b)
            t_stat, t_p = float(t.statistic), float(t.pvalue)
    return PairedTest(
        model_a,
        model_b,
        filters.task,
        len(common),
        float(a.mean()) if len(a) else math.nan,
        float(b.mean()) if len(b) else math.nan,
        float((a - b).mean()) if len(a) else math.nan,
        t_stat,
        t_p,
        w_stat,
        w_p,
        reason,
    )


def reliability_matrix(log: EvalLog, filters: RunFilter | None = None) -> tuple[list[str], list[int], Any]:
    """Raters x runs matrix (NaN where a rater did not rate) over runs with two or more human raters."""
    by_run: dict[int, dict[str, int]] = defaultdict(dict)
    for r in _human_ratings(log, filters or RunFilter()):
        by_run[r.run_id][r.rater] = r.score
    runs = sorted(k for k, v in by_run.items() if len(v) >= 2)
    raters = sorted({name for k in runs for name in by_run[k]})
    m = np.full((len(raters), len(runs)), np.nan)
    for j, run in enumerate(runs):
        for i, rater in enumerate(raters):
            if rater in by_run[run]:
                m[i, j] = by_run[run][rater]
    return raters, runs, m


def agreement(log: EvalLog, filters: RunFilter | None = None) -> Agreement:
    """Krippendorff's alpha (ordinal) over runs rated by two or more human raters, with its interval."""
    f = filters or RunFilter()
    raters, runs, m = reliability_matrix(log, f)
    est = alpha_estimate(m, unit="runs")
    alpha = math.nan if est.alpha is None else est.alpha
    low, high = (math.nan, math.nan) if est.low is None or est.high is None else (est.low, est.high)
    return Agreement(len(runs), len(raters), alpha, est.reason, low, high, f.task)


def agreement_per_task(log: EvalLog, filters: RunFilter | None = None) -> list[Agreement]:
    """:func:`agreement` for each task that has human ratings (a task filter keeps that task only)."""
    f = filters or RunFilter()
    tasks = sorted({r.task for r in _human_ratings(log, f)})
    return [agreement(log, replace(f, task=t)) for t in tasks]


def flag_counts(log: EvalLog, filters: RunFilter | None = None) -> list[FlagCount]:
    """Hallucination flags and score-1 ratings per model and task, over current human ratings of rateable runs."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for r in _human_ratings(log, filters or RunFilter()):
        groups[(_model_label(r.sha256, r.file_name), r.task)].append(r)
    return [
        FlagCount(model, task, len(rs), sum(bool(r.hallucination) for r in rs), sum(r.score == 1 for r in rs))
        for (model, task), rs in sorted(groups.items())
    ]


def win_rates(log: EvalLog, filters: RunFilter | None = None) -> list[WinRate]:
    """Per model, from blinded comparisons (each comparison counts for both of its models)."""
    ra, rb = Run.__table__.alias("ra"), Run.__table__.alias("rb")
    ma, mb = Model.__table__.alias("ma"), Model.__table__.alias("mb")
    stmt = (
        select(ma.c.sha256.label("sa"), ma.c.file_name.label("fa"), mb.c.sha256.label("sb"))
        .add_columns(mb.c.file_name.label("fb"), Comparison.choice)
        .join(ra, Comparison.run_a_id == ra.c.id)
        .join(rb, Comparison.run_b_id == rb.c.id)
        .join(ma, ra.c.model_id == ma.c.id)
        .join(mb, rb.c.model_id == mb.c.id)
        # Blind votes only: a withdrawn vote, or one cast after the models were shown, is not a blind verdict.
        .where(Comparison.blind.is_(True), Comparison.withdrawn_at.is_(None))
        # An A/A comparison (one model file on both sides) measures position bias: no model wins it.
        .where(ma.c.id != mb.c.id)
    )
    f = filters or RunFilter()
    scope = replace(f, rater=None, model=None)
    if scope != RunFilter():
        runs_in_scope = scope.apply(select(Run.id))
        stmt = stmt.where(ra.c.id.in_(runs_in_scope), rb.c.id.in_(runs_in_scope))
    if f.model is not None:
        mine = replace(scope, model=f.model).apply(select(Run.id))
        a_mine, b_mine = ra.c.id.in_(mine), rb.c.id.in_(mine)
        stmt = stmt.add_columns(a_mine.label("a_mine"), b_mine.label("b_mine")).where(or_(a_mine, b_mine))
    if f.rater is not None:
        stmt = stmt.join(Rater, Comparison.rater_id == Rater.id).where(Rater.name == f.rater)
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # wins, losses, ties, both bad
    shown: set[str] = set()
    with log.read_session() as s:
        for r in s.execute(stmt):
            a, b = _model_label(r.sa, r.fa), _model_label(r.sb, r.fb)
            if f.model is None or r.a_mine:
                shown.add(a)
            if f.model is None or r.b_mine:
                shown.add(b)
            if r.choice == "A":
                tally[a][0] += 1
                tally[b][1] += 1
            elif r.choice == "B":
                tally[b][0] += 1
                tally[a][1] += 1
            else:
                idx = 2 if r.choice == "tie" else 3
                tally[a][idx] += 1
                tally[b][idx] += 1
    out = []
    for model, (w, lo, t, bb) in sorted(tally.items()):
        if model not in shown:
            continue
        decided = w + lo + t
        out.append(WinRate(model, decided + bb, w, lo, t, bb, (w + t / 2) / decided if decided else math.nan))
    return out


def judge_correlation(log: EvalLog, filters: RunFilter | None = None) -> list[JudgeCorrelation]:
    """Per automated judge: agreement of its score with the runs' mean human score."""
    from scipy import stats as sps

    f = filters or RunFilter()
    human = {k: float(np.mean(v)) for k, v in _run_scores(_human_ratings(log, f)).items()}
    judged: dict[str, dict[int, int]] = defaultdict(dict)
    for r in _human_ratings(log, replace(f, rater=None), kind="judge"):
        judged[r.rater][r.run_id] = r.score
    out = []
    for judge, scores in sorted(judged.items()):
        runs = sorted(set(scores) & set(human))
        h = np.array([human[k] for k in runs])
        j = np.array([scores[k] for k in runs], dtype=float)
        rho = rho_p = pr = math.nan
        if len(runs) >= 3 and h.std() > 0 and j.std() > 0:
            sp = sps.spearmanr(h, j)
            rho, rho_p = float(sp.statistic), float(sp.pvalue)
            pr = float(sps.pearsonr(h, j).statistic)
        exact = float(np.mean(np.rint(h) == j)) if runs else math.nan
        out.append(JudgeCorrelation(judge, len(runs), rho, rho_p, pr, exact))
    return out


@dataclass(frozen=True)
class JudgeMean:
    judge: str
    model: str
    task: str
    runs: int
    mean: float
    low: float
    high: float


def judge_mean_scores(log: EvalLog, filters: RunFilter | None = None) -> list[JudgeMean]:
    """Mean score per automated judge, model and task (current judge ratings), with a bootstrap 95% interval."""
    f = filters or RunFilter()
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in _human_ratings(log, replace(f, rater=None), kind="judge"):
        groups[(r.rater, _model_label(r.sha256, r.file_name), r.task)].append(float(r.score))
    out = []
    for (judge, model, task), scores in sorted(groups.items()):
        low, high = bootstrap_ci(scores)
        out.append(JudgeMean(judge, model, task, len(scores), float(np.mean(scores)), low, high))
    return out

"""Statistics over the log: "is model A better than model B on task T?".

Conventions (each is a choice; all are stated in the CLI output and docs):
- A run's human score is the mean of its raters' *current* ratings; superseded ratings are history.
- Means come with a 95% percentile bootstrap interval over runs (2,000 resamples, fixed seed, so the
  same log gives the same interval every time).
- Paired comparisons match items (same note, task and instruction) rated for both models; an item's
  score for a model is the mean over its rated runs. Paired t-test and Wilcoxon signed-rank (scipy).
- Inter-rater agreement: Krippendorff's alpha, ordinal, over runs with two or more human raters.
- Win rate from blinded comparisons: (wins + ties / 2) / (wins + losses + ties); "both bad" verdicts are
  counted but left out of the rate (neither answer is usable, so neither model won).
- Human vs automated judge: per judge, Spearman and Pearson correlation and exact agreement on runs
  scored by both.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import select

from app.store.log import EvalLog
from app.store.models import Comparison, Model, Rater, Rating, Run
from app.store.queries import RunFilter

BOOTSTRAP_RESAMPLES = 2000
"""Enough for a stable 95% percentile interval (the 2.5% tail holds 50 resamples)."""
SEED = 20261124


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


@dataclass(frozen=True)
class Agreement:
    runs: int
    raters: int
    alpha: float


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


def bootstrap_ci(values: Any, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _model_label(sha: str, file_name: str) -> str:
    return f"{file_name} [{sha[:8]}]"


def _human_ratings(log: EvalLog, filters: RunFilter, kind: str = "human") -> list[Any]:
    """Current ratings of matching finished runs: run id, model label, item key, task, rater, score."""
    stmt = (
        select(
            Rating.run_id,
            Model.sha256,
            Model.file_name,
            Run.note_id,
            Run.task,
            Run.instruction,
            Rater.name.label("rater"),
            Rating.score,
        )
        .join(Run, Rating.run_id == Run.id)
        .join(Model, Run.model_id == Model.id)
        .join(Rater, Rating.rater_id == Rater.id)
        .where(Rating.is_current.is_(True), Rater.kind == kind)
    )
    if filters.rater is not None:
        stmt = stmt.where(Rater.name == filters.rater)
    stmt = replace(filters, rater=None).apply(stmt)
    with log.read_session() as s:
        return list(s.execute(stmt))


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
    if len(common) >= 2 and np.any(d != 0) and np.all(d == d[0]):
        # Every item differs by the same amount: zero variance, so t is infinite and p is 0.
        t_stat, t_p = math.copysign(math.inf, float(d[0])), 0.0
        w = sps.wilcoxon(a, b)
        w_stat, w_p = float(w.statistic), float(w.pvalue)
    elif len(common) >= 2 and np.any(d != 0):
        t = sps.ttest_rel(a, b)
        t_stat, t_p = float(t.statistic), float(t.pvalue)
        w = sps.wilcoxon(a, b)
        w_stat, w_p = float(w.statistic), float(w.pvalue)
    elif len(common) >= 2:
        t_stat, t_p, w_stat, w_p = 0.0, 1.0, 0.0, 1.0  # identical scores: no difference at all
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
    import krippendorff

    raters, runs, m = reliability_matrix(log, filters)
    if not runs:
        return Agreement(0, len(raters), math.nan)
    values = m[~np.isnan(m)]
    if np.all(values == values[0]):
        alpha = 1.0  # every rating identical: perfect agreement (the formula would divide 0 by 0)
    else:
        alpha = float(krippendorff.alpha(reliability_data=m, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4]))
    return Agreement(len(runs), len(raters), alpha)


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
    )
    f = filters or RunFilter()
    if f.task is not None:
        stmt = stmt.where(ra.c.task == f.task)
    if f.rater is not None:
        stmt = stmt.join(Rater, Comparison.rater_id == Rater.id).where(Rater.name == f.rater)
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # wins, losses, ties, both bad
    with log.read_session() as s:
        for r in s.execute(stmt):
            a, b = _model_label(r.sa, r.fa), _model_label(r.sb, r.fb)
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

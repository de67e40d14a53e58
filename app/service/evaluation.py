"""A suite's scores summed up: each figure with a 95% bootstrap interval and its n, and two models compared on
the items both answered.

* ``aggregate(suite, scores, model)`` -> ``SuiteResult``: every corpus figure of ``CORPUS_METRICS`` whose
  counts the items carry, computed from the summed counts (micro-averaged), with a 95% percentile interval
  from resampling the items with replacement (``BOOTSTRAP_RESAMPLES`` resamples, seeded: the same scores give
  the same interval; the resampling is the multinomial-weights form ``app.store.estimates`` uses for alpha).
  ``n`` of a figure is the number of items it is computed from (a decision figure leaves out items with no
  gold decision; a precision includes answers to items with no gold mention).
* ``paired(suite, a, b)`` -> one ``PairedResult`` per figure, on the items both score lists hold: the
  difference a - b with a paired bootstrap interval (the same resampled items for both models), and a test:
  McNemar's exact test (two-sided binomial on the discordant items) for accuracy, the paired bootstrap for
  the other figures (p = twice the smaller share of resampled differences on either side of 0, at most 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from app.core.evaluation.scorers import CORPUS_METRICS, CorpusMetric, ItemScore
from app.core.evaluation.suites import Suite
from app.store.estimates import BOOTSTRAP_RESAMPLES, NOT_ENOUGH, SEED, finite_or_none

PRIMARY = {
    "ner": ("f1", "precision", "recall"),
    "relation": ("f1", "precision", "recall"),
    "decision": ("accuracy", "macro_f1"),
    "rouge": ("rouge_l", "support_rate"),
    "support": ("support_rate",),
}
"""The figures each scorer reports under fixed top-level keys of ``SuiteResult.to_json``."""
TOP_LEVEL = ("f1", "precision", "recall", "accuracy", "macro_f1", "rouge_l", "support_rate")


@dataclass(frozen=True)
class Estimate:
    """One figure with its 95% bootstrap interval."""

    value: float | None
    low: float | None
    high: float | None
    """None when fewer than two items carry the figure."""
    n: int
    """Items the figure is computed from."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SuiteResult:
    """A suite's figures for one model."""

    suite: str
    model: str
    metrics: dict[str, Estimate]
    n: int
    """Items scored."""
    unparseable: int
    """Answers whose decision could not be read (decision scorer; 0 otherwise)."""
    notes: tuple[str, ...] = ()
    """What the reader should know about these figures, in words."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"suite": self.suite, "model": self.model, "n": self.n, "unparseable": self.unparseable}
        for key in TOP_LEVEL:
            if key in self.metrics:
                e = self.metrics[key]
                out[key], out[f"{key}_ci"], out[f"{key}_n"] = e.value, [e.low, e.high], e.n
        out["metrics"] = {k: e.to_json() for k, e in self.metrics.items()}
        out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class PairedResult:
    """Two models on the same items, one figure."""

    metric: str
    value_a: float | None
    value_b: float | None
    difference: Estimate
    """a - b with its paired bootstrap interval; ``n`` items both have."""
    test: str
    """``mcnemar`` (exact) or ``paired bootstrap``."""
    p_value: float | None
    discordant: tuple[int, int] | None = None
    """For McNemar: (items only a got right, items only b got right)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _draws(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each resample (resamples x n)."""
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples).astype(float)


def _matrix(scores: Sequence[ItemScore], metric: CorpusMetric) -> np.ndarray:
    return np.array([[s.counts[k] for k in metric.needs] for s in scores], dtype=float).reshape(len(scores), -1)


def _value(metric: CorpusMetric, sums: np.ndarray) -> np.ndarray:
    """The figure on summed counts (the last axis holds ``metric.needs``)."""
    return np.asarray(metric.formula(*np.moveaxis(sums, -1, 0)), dtype=float)


def _interval(boot: np.ndarray) -> tuple[float | None, float | None]:
    ok = boot[np.isfinite(boot)]
    if ok.size < boot.size / 2:
        return None, None
    low, high = np.percentile(ok, [2.5, 97.5])
    return finite_or_none(float(low)), finite_or_none(float(high))


def _carrying(scores: Sequence[ItemScore], metric: CorpusMetric) -> list[ItemScore]:
    return [s for s in scores if all(k in s.counts for k in metric.needs)]


def estimate(
    scores: Sequence[ItemScore], metric: CorpusMetric, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED
) -> Estimate:
    """One corpus figure over the items that carry its counts, with its interval."""
    m = _matrix(scores, metric)
    n = len(m)
    if n == 0:
        return Estimate(None, None, None, 0)
    value = finite_or_none(float(_value(metric, m.sum(axis=0))))
    if n < 2:
        return Estimate(value, None, None, n)
    low, high = _interval(_value(metric, _draws(n, resamples, seed) @ m))
    return Estimate(value, low, high, n)


def aggregate(suite: Suite, scores: list[ItemScore], model: str = "") -> SuiteResult:
    """The suite's figures for one model (see the module docstring)."""
    metrics = {}
    for metric in CORPUS_METRICS:
        carrying = _carrying(scores, metric)
        if carrying:
            metrics[metric.name] = estimate(carrying, metric)
    unparseable = sum(s.counts.get("unparseable", 0) for s in scores)
    notes = []
    if len(scores) < 2:
        notes.append(f"{NOT_ENOUGH} for intervals: {len(scores)} item(s)")
    if unparseable:
        notes.append(f"{unparseable} of {len(scores)} answers state no yes/no/maybe decision: counted as wrong")
    no_gold = sum(1 for s in scores if s.details.get("gold_empty"))
    if no_gold:
        notes.append(f"{no_gold} item(s) have no gold: whatever their answers name counts as false positives")
    for key in PRIMARY.get(suite.scorer, ()):
        if key not in metrics:
            notes.append(f"no item carries {key}")
    return SuiteResult(suite.name, model, metrics, len(scores), unparseable, tuple(notes))


def _mcnemar(a: list[ItemScore], b: list[ItemScore]) -> tuple[float, tuple[int, int]]:
    from scipy import stats as sps

    only_a = sum(1 for x, y in zip(a, b, strict=True) if x.counts["correct"] and not y.counts["correct"])
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y.counts["correct"] and not x.counts["correct"])
    if only_a + only_b == 0:
        return 1.0, (0, 0)
    return float(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue), (only_a, only_b)


def _paired_metric(metric: CorpusMetric, a: list[ItemScore], b: list[ItemScore]) -> PairedResult:
    ma, mb = _matrix(a, metric), _matrix(b, metric)
    va, vb = (finite_or_none(float(_value(metric, m.sum(axis=0)))) for m in (ma, mb))
    n = len(a)
    diff = None if va is None or vb is None else va - vb
    low = high = p = None
    if n >= 2:
        w = _draws(n, BOOTSTRAP_RESAMPLES, SEED)
        d = _value(metric, w @ ma) - _value(metric, w @ mb)
        low, high = _interval(d)
        p = min(1.0, 2 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    test, discordant = "paired bootstrap", None
    if metric.name == "accuracy":
        p, discordant = _mcnemar(a, b)
        test = "mcnemar"
    return PairedResult(metric.name, va, vb, Estimate(diff, low, high, n), test, p, discordant)


def paired(suite: Suite, a: list[ItemScore], b: list[ItemScore]) -> list[PairedResult]:
    """Each figure of two models compared on the items both have (matched by item id; see the module
    docstring). Figures neither side carries are left out; an empty overlap gives an empty list."""
    by_id = {s.item_id: s for s in b}
    common = [(x, by_id[x.item_id]) for x in a if x.item_id in by_id]
    out = []
    for metric in CORPUS_METRICS:
        pairs = [(x, y) for x, y in common if all(k in x.counts and k in y.counts for k in metric.needs)]
        if pairs:
            out.append(_paired_metric(metric, [x for x, _ in pairs], [y for _, y in pairs]))
    return out

"""The numbers behind the statistics, on plain arrays: bootstrap intervals, Krippendorff's alpha (ordinal),
correlations with intervals. Pure numpy/scipy, no database: ``app.store.stats`` (the log) and
``app.store.agreement`` (a study) both compute from here, so the two never disagree on a definition.

Krippendorff's alpha is written here rather than taken from the ``krippendorff`` package (GPL-3, which would
ride into the installer bundle); the tests check it against that package on random matrices. The method is
Krippendorff's coincidence matrix ("Computing Krippendorff's Alpha-Reliability", 2011):

- a unit (an answer) with ``m_u >= 2`` values contributes, for each ordered pair of its values from
  different raters, ``1 / (m_u - 1)`` to the coincidence ``o[c, k]``; units with one value are not pairable;
- ``n_c`` are the coincidence marginals, ``n`` their total (the pairable values);
- the ordinal distance is ``delta2[c, k] = (sum_{g=c..k} n_g - (n_c + n_k) / 2) ** 2``: ranks, not numbers;
- ``alpha = 1 - (n - 1) * sum(o * delta2) / sum(n_c n_k delta2)``.

Alpha is 0/0 when every pairable value is the same (no expected disagreement): undefined, not 1. Every
estimate here then says so in ``reason`` and carries None, never NaN (a JSON reader cannot parse NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
"""Enough for a stable 95% percentile interval (the 2.5% tail holds 50 resamples)."""
SEED = 20261124
NOT_ENOUGH = "not enough data"
RUBRIC = (1, 2, 3, 4)
"""The 4-point rubric's values, in order (the ordinal metric ranks them)."""


def bootstrap_ci(values: Any, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean; (nan, nan) for fewer than two values."""
    from scipy import stats as sps

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return (math.nan, math.nan)
    if np.all(x == x[0]):
        return (float(x[0]), float(x[0]))  # every resample has the same mean; scipy warns on this case
    res = sps.bootstrap(
        (x,),
        np.mean,
        n_resamples=resamples,
        confidence_level=0.95,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def finite_or_none(x: float | None) -> float | None:
    """A number for JSON: NaN and infinities become None."""
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True)
class AlphaEstimate:
    """Krippendorff's alpha (ordinal) of one set of ratings, with its bootstrap interval and its n."""

    alpha: float | None
    """None when the ratings cannot give one (see ``reason``)."""
    low: float | None
    """2.5th percentile of alpha over resamples of the units (None without an interval)."""
    high: float | None
    units: int
    """Units (answers) rated by two or more raters: the only ones alpha uses."""
    raters: int
    """Raters with at least one rating among those units."""
    values: int
    """Pairable ratings (the n of the coincidence matrix)."""
    reason: str | None = None
    """Why alpha or its interval is missing ("not enough data: ..."), or None."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def unit_counts(matrix: Any, domain: Sequence[float] = RUBRIC) -> np.ndarray:
    """Raters x units matrix (NaN = not rated) -> units x values: how often each value was given per unit.
    A value outside ``domain`` is a programming error (the store refuses scores outside 1-4)."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError("the reliability matrix must be raters x units")
    dom = np.asarray(domain, dtype=float)
    seen = m[~np.isnan(m)]
    if not np.isin(seen, dom).all():
        raise ValueError(f"values outside the domain {list(domain)}: {sorted(set(seen[~np.isin(seen, dom)]))}")
    return np.stack([(m == v).sum(axis=0) for v in dom], axis=1).astype(float)


def _coincidences(counts: np.ndarray) -> np.ndarray:
    """Units x values counts -> units x (values x values): each pairable unit's share of the coincidence matrix."""
    m_u = counts.sum(axis=1)
    pairable = m_u >= 2
    c = counts[pairable]
    k = c.shape[1]
    pairs = c[:, :, None] * c[:, None, :] - np.eye(k)[None] * c[:, :, None]  # ordered pairs, no self-pairing
    return (pairs / (m_u[pairable] - 1)[:, None, None]).reshape(len(c), k * k)


def _alphas(coincidence: np.ndarray) -> np.ndarray:
    """Ordinal alpha of each row of ``coincidence`` (B x K*K); NaN where it is 0/0."""
    b, kk = coincidence.shape
    k = math.isqrt(kk)
    o = coincidence.reshape(b, k, k)
    n_c = o.sum(axis=2)
    n = n_c.sum(axis=1)
    cum = np.cumsum(n_c, axis=1)
    idx = np.arange(k)
    lo, hi = np.minimum.outer(idx, idx), np.maximum.outer(idx, idx)
    between = cum[:, hi] - cum[:, lo] + n_c[:, lo]  # sum of n_g for g from min(c, k) to max(c, k)
    delta2 = (between - (n_c[:, :, None] + n_c[:, None, :]) / 2) ** 2
    observed = (o * delta2).sum(axis=(1, 2))
    expected = (n_c[:, :, None] * n_c[:, None, :] * delta2).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1 - (n - 1) * observed / np.where(expected > 0, expected, 1), np.nan)


def ordinal_alpha(matrix: Any, domain: Sequence[float] = RUBRIC) -> float:
    """Krippendorff's alpha, ordinal, of a raters x units matrix (NaN = not rated); NaN when undefined."""
    co = _coincidences(unit_counts(matrix, domain))
    if len(co) == 0:
        return math.nan
    return float(_alphas(co.sum(axis=0, keepdims=True))[0])


def alpha_estimate(
    matrix: Any,
    domain: Sequence[float] = RUBRIC,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = SEED,
    unit: str = "answers",
) -> AlphaEstimate:
    """Ordinal alpha with a 95% percentile bootstrap interval over units (answers resampled with replacement,
    seeded: the same ratings give the same interval; ``unit`` names them in the reason). Resamples whose
    alpha is undefined (every value the same) are left out of the interval; the interval needs at least half
    of them defined."""
    m = np.asarray(matrix, dtype=float)
    counts = unit_counts(m, domain)
    pairable = counts.sum(axis=1) >= 2
    units, values = int(pairable.sum()), int(counts[pairable].sum())
    raters = int((~np.isnan(m[:, pairable])).any(axis=1).sum()) if m.size else 0
    if units < 2:
        return AlphaEstimate(
            None, None, None, units, raters, values, f"{NOT_ENOUGH}: {units} {unit} rated by two raters"
        )
    co = _coincidences(counts)
    alpha = finite_or_none(float(_alphas(co.sum(axis=0, keepdims=True))[0]))
    if alpha is None:
        # 1 - observed/expected disagreement, and with one value both are zero: 0/0, not agreement.
        return AlphaEstimate(None, None, None, units, raters, values, f"{NOT_ENOUGH}: every rating has the same value")
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(units, np.full(units, 1 / units), size=resamples).astype(float)
    boot = _alphas(draws @ co)
    ok = boot[np.isfinite(boot)]
    if ok.size < resamples / 2:
        why = f"{NOT_ENOUGH} for an interval: alpha is undefined in {resamples - ok.size} of {resamples} resamples"
        return AlphaEstimate(alpha, None, None, units, raters, values, why)
    low, high = np.percentile(ok, [2.5, 97.5])
    return AlphaEstimate(alpha, float(low), float(high), units, raters, values)


@dataclass(frozen=True)
class Correlation:
    """One correlation coefficient with its bootstrap interval."""

    value: float | None
    low: float | None
    high: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


CORRELATIONS = ("pearson", "kendall", "spearman")


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair (B x n); NaN where a row is constant."""
    xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (xc * yc).sum(axis=1) / np.where(den > 0, den, 1), np.nan)


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair: sum(sign dx * sign dy) / sqrt(untied x pairs * untied y pairs), the
    same as ``scipy.stats.kendalltau``'s default; in chunks so that the pair signs stay a few MB."""
    n = x.shape[1]
    out = np.empty(x.shape[0])
    step = max(1, 4_000_000 // max(1, n * n))
    for s in range(0, x.shape[0], step):
        sx = np.sign(x[s : s + step, :, None] - x[s : s + step, None, :]).astype(np.int8)
        sy = np.sign(y[s : s + step, :, None] - y[s : s + step, None, :]).astype(np.int8)
        num = (sx * sy).sum(axis=(1, 2), dtype=np.int64)
        den = np.sqrt(np.abs(sx).sum(axis=(1, 2), dtype=np.int64) * np.abs(sy).sum(axis=(1, 2), dtype=np.int64))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[s : s + step] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


def _coefficient_rows(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One coefficient on each row pair (B x n), vectorized: 2,000 resamples of scipy calls took over a second."""
    from scipy import stats as sps

    if name == "pearson":
        return _pearson_rows(x, y)
    if name == "spearman":  # Pearson on average ranks (ties share their mean rank), as scipy's spearmanr
        return _pearson_rows(sps.rankdata(x, axis=1), sps.rankdata(y, axis=1))
    return _kendall_rows(x, y)


def correlations(
    x: Any, y: Any, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = SEED
) -> tuple[dict[str, Correlation], str | None]:
    """Pearson, Kendall (tau-b) and Spearman of paired scores, each with a 95% percentile bootstrap interval
    over the pairs (resamples where either side is constant have no coefficient and are left out).
    Returns the three and a reason when there are none (fewer than 3 pairs, or a constant side)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    none = {k: Correlation(None, None, None) for k in CORRELATIONS}
    if a.size < 3:
        return none, f"{NOT_ENOUGH}: {a.size} answers scored by both (at least 3 needed)"
    if np.all(a == a[0]) or np.all(b == b[0]):
        return none, f"{NOT_ENOUGH}: one side gave the same score to every answer (no correlation)"
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.size, size=(resamples, a.size))
    out = {}
    for name in CORRELATIONS:
        value = finite_or_none(float(_coefficient_rows(name, a[None], b[None])[0]))
        boot = _coefficient_rows(name, a[idx], b[idx])
        boot = boot[np.isfinite(boot)]  # a resample with a constant side has no coefficient
        low, high = np.percentile(boot, [2.5, 97.5]) if boot.size >= resamples / 2 else (None, None)
        out[name] = Correlation(value, finite_or_none(low), finite_or_none(high))
    return out, None

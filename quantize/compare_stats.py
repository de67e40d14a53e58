"""The per-position arithmetic of ``quantize compare``: KL divergence, top-1 agreement, log-likelihoods.

Pure numpy on logits a caller hands in, one block of positions at a time, so it is tested against a direct
computation without a model. What is kept between blocks is O(positions), never O(positions x vocabulary):
one float per scored position (the KL values, for the median and percentiles) and a few running sums.

Definitions (those of llama.cpp's ``llama-perplexity --kl-divergence``, computed exactly rather than from
its 16-bit log-probability file):

* ``KL(P_ref || P_cand) = sum_i p_ref_i * (log p_ref_i - log p_cand_i)`` per position, in nats;
* top-1 agreement: the two argmaxes are the same token;
* ``ppl = exp(mean NLL of the actual next token)``, ``ppl_ratio = exp(mean NLL_cand - mean NLL_ref)``;
* the median and percentiles by linear interpolation between order statistics (numpy's default, the same
  rule as llama-perplexity's ``percentile``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BLOCK_ELEMENTS = 1 << 22
"""Rows are processed in blocks of about 4M logits (16 MB per float32 temporary): a 262k-token vocabulary
(Gemma 3) makes one row 1 MB, and a whole 512-token chunk's temporaries would otherwise cost gigabytes."""


@dataclass(frozen=True)
class PositionStats:
    """What one block of scored positions contributes, one entry per position."""

    kl: np.ndarray
    """KL(P_ref || P_cand) in nats (float64)."""
    same_top: np.ndarray
    """True where both models put the same token first."""
    nll_ref: np.ndarray
    """-log p_ref(actual next token) (float64)."""
    nll_cand: np.ndarray
    """-log p_cand(actual next token) (float64)."""


def _log_normalizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(max per row, exp(x - max) in float32, log-sum-exp per row in float64)."""
    top = x.max(axis=1, keepdims=True)
    e = np.exp(x - top)
    lse = top[:, 0].astype(np.float64) + np.log(e.sum(axis=1, dtype=np.float64))
    return top, e, lse


def position_stats(ref: np.ndarray, cand: np.ndarray, targets: np.ndarray) -> PositionStats:
    """Per-position figures for logits ``ref`` and ``cand`` (rows x vocabulary) and the actual next tokens.

    ``KL = sum_i p_i (a_i - b_i) - (lse_a - lse_b)`` (the normalizers factor out because ``sum_i p_i = 1``):
    identical logits give exactly 0, with no rounding left over from two separate log-softmaxes."""
    if ref.shape != cand.shape or ref.ndim != 2 or len(targets) != ref.shape[0]:
        raise ValueError(f"logits {ref.shape} and {cand.shape} for {len(targets)} targets do not line up")
    rows = max(1, BLOCK_ELEMENTS // max(ref.shape[1], 1))
    parts: list[PositionStats] = []
    for s in range(0, ref.shape[0], rows):
        a, b, t = ref[s : s + rows], cand[s : s + rows], np.asarray(targets[s : s + rows])
        _, ea, lse_a = _log_normalizer(a)
        _, _, lse_b = _log_normalizer(b)
        p = ea / ea.sum(axis=1, dtype=np.float64, keepdims=True)
        kl = (p * (a - b)).sum(axis=1) - (lse_a - lse_b)
        idx = np.arange(len(t))
        parts.append(
            PositionStats(
                kl=kl,
                same_top=a.argmax(axis=1) == b.argmax(axis=1),
                nll_ref=lse_a - a[idx, t],
                nll_cand=lse_b - b[idx, t],
            )
        )
    return PositionStats(*(np.concatenate([getattr(p, f) for p in parts]) for f in PositionStats.__dataclass_fields__))


@dataclass(frozen=True)
class KLSummary:
    """The figures ``quantize compare`` reports, over every scored position."""

    positions: int
    """Scored positions (next-token predictions compared)."""
    kl_mean: float
    kl_median: float
    kl_p99: float
    kl_max: float
    top1_agreement: float
    """Fraction of positions where both models rank the same token first."""
    ppl_ref: float
    ppl_candidate: float
    ppl_ratio: float
    """``exp(mean NLL_cand - mean NLL_ref)``: above 1 the candidate predicts the notes worse."""


@dataclass
class KLAccumulator:
    """Running figures over blocks of positions; keeps one float per position (the KL values)."""

    kl: list[np.ndarray] = field(default_factory=list)
    """Per-block KL values, joined only for the final median and percentiles."""
    same_top: int = 0
    nll_ref: float = 0.0
    nll_cand: float = 0.0
    count: int = 0

    def add(self, ref: np.ndarray, cand: np.ndarray, targets: np.ndarray) -> None:
        s = position_stats(ref, cand, targets)
        self.kl.append(s.kl)
        self.same_top += int(s.same_top.sum())
        self.nll_ref += float(s.nll_ref.sum())
        self.nll_cand += float(s.nll_cand.sum())
        self.count += len(s.kl)

    def summary(self) -> KLSummary:
        if not self.count:
            raise ValueError("no positions were scored")
        kl = np.concatenate(self.kl)
        mean_ref, mean_cand = self.nll_ref / self.count, self.nll_cand / self.count
        return KLSummary(
            positions=self.count,
            kl_mean=float(kl.mean()),
            kl_median=float(np.median(kl)),
            kl_p99=float(np.percentile(kl, 99)),
            kl_max=float(kl.max()),
            top1_agreement=self.same_top / self.count,
            ppl_ref=_exp(mean_ref),
            ppl_candidate=_exp(mean_cand),
            ppl_ratio=_exp(mean_cand - mean_ref),
        )


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf  # exp(709.8) overflows a float

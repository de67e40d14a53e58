"""ROUGE-L: the F-measure of the longest common subsequence (LCS) of two texts' word tokens.

The one implementation in the project: the evaluation scorers (long answers against a reference) and the
training-data filter (Self-Instruct's similarity filter, ``training.data.filters``) both use it.

Tokens are lower-cased runs of ASCII letters and digits (``[a-z0-9]+`` after lower-casing: punctuation,
hyphens and other characters separate words). With ``lcs`` the length of the longest common subsequence of
the candidate's ``c`` tokens and the reference's ``r`` tokens: precision ``lcs / c``, recall ``lcs / r``,
F-measure ``2PR / (P + R)`` (Lin 2004, beta = 1). An empty side scores 0. Single reference, no stemming, no
stop-word removal, no summary-level union LCS (the sentence-level ROUGE-L of the whole text).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """The words ROUGE-L compares (see the module docstring)."""
    return _TOKEN.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length, O(len(a) * len(b)) time, O(min(len(a), len(b))) memory."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l_prf(candidate: str | list[str], reference: str | list[str]) -> tuple[float, float, float]:
    """(precision, recall, F-measure) of ``candidate`` against ``reference`` (texts or token lists)."""
    tc = rouge_tokens(candidate) if isinstance(candidate, str) else candidate
    tr = rouge_tokens(reference) if isinstance(reference, str) else reference
    if not tc or not tr:
        return 0.0, 0.0, 0.0
    lcs = lcs_length(tc, tr)
    if lcs == 0:
        return 0.0, 0.0, 0.0
    p, r = lcs / len(tc), lcs / len(tr)
    return p, r, 2 * p * r / (p + r)


def rouge_l(a: str | list[str], b: str | list[str]) -> float:
    """ROUGE-L F-measure between two texts (or token lists); symmetric; 0.0 when either is empty."""
    return rouge_l_prf(a, b)[2]

"""The reference's output filters (REFERENCE.md 1d) and the ROUGE-L similarity filter the paper describes.

ROUGE-L here is the F-measure of the longest common subsequence of lower-cased word tokens (letters and
digits), as Self-Instruct uses it to keep a generated instruction only when it is not too close to one
already in the pool (Self-Instruct's threshold: 0.7).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

REFERENCE_PATTERNS = (
    "AI language",
    "language model",
    "clinical language",
    "recognition model",
    "extraction model",
    "the model",
    "summarization model",
    "clinical model",
    "generation model",
    "AI model",
    "NER model",
)
"""The reference's alternatives, in its order; a row is dropped when any field matches one, ignoring case."""
_REFERENCE_RE = re.compile("|".join(f"({re.escape(p)})" for p in REFERENCE_PATTERNS), re.IGNORECASE)
ROUGE_THRESHOLD = 0.7
_TOKEN = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Longest common subsequence length, O(len(a) * len(b)) time, O(len(b)) memory."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(a: str | list[str], b: str | list[str]) -> float:
    """ROUGE-L F1 between two texts (or token lists); 0.0 when either is empty."""
    ta = rouge_tokens(a) if isinstance(a, str) else a
    tb = rouge_tokens(b) if isinstance(b, str) else b
    if not ta or not tb:
        return 0.0
    lcs = lcs_length(ta, tb)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(tb), lcs / len(ta)
    return 2 * p * r / (p + r)


@dataclass
class SimilarityPool:
    """Per task, the questions kept so far; ``admit`` keeps a question only if it is not too similar."""

    threshold: float = ROUGE_THRESHOLD
    pools: dict[str, list[list[str]]] = field(default_factory=dict)

    def seed(self, task: str, questions: list[str]) -> None:
        self.pools.setdefault(task, []).extend(rouge_tokens(q) for q in questions)

    def most_similar(self, task: str, question: str) -> float:
        toks = rouge_tokens(question)
        return max((rouge_l(toks, q) for q in self.pools.get(task, [])), default=0.0)

    def admit(self, task: str, question: str) -> tuple[bool, float]:
        score = self.most_similar(task, question)
        if score > self.threshold:
            return False, score
        self.pools.setdefault(task, []).append(rouge_tokens(question))
        return True, score


def reference_filter(row: dict[str, str]) -> str | None:
    """Why the reference would drop this row (``'<field>: <pattern>'`` or ``'answer ends with ?'``), or None."""
    for name in ("note", "question", "answer"):
        m = _REFERENCE_RE.search(row.get(name) or "")
        if m:
            return f"{name} matches '{REFERENCE_PATTERNS[m.lastindex - 1] if m.lastindex else m.group(0)}'"
    if (row.get("answer") or "").rstrip().endswith("?"):
        return "answer ends with '?'"
    return None


@dataclass
class DropReport:
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {"kept": self.kept, "dropped": sum(self.dropped.values()), "by_reason": dict(self.dropped.most_common())}

"""The reference's output filters (REFERENCE.md 1d) and the ROUGE-L similarity filter the paper describes.

ROUGE-L (``app.core.evaluation.rouge``, the one implementation) is the F-measure of the longest common
subsequence of lower-cased word tokens (letters and digits), as Self-Instruct uses it to keep a generated
instruction only when it is not too close to one already in the pool (Self-Instruct's threshold: 0.7).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from app.core.evaluation.rouge import lcs_length, rouge_l, rouge_tokens

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
__all__ = [
    "REFERENCE_PATTERNS",
    "ROUGE_THRESHOLD",
    "SimilarityPool",
    "lcs_length",
    "reference_filter",
    "rouge_l",
    "rouge_tokens",
]


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

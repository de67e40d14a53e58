"""Each answer scored against its item's gold; the corpus figures computed from the items' counts.

Per scorer (the text rules, strict and lenient, are in ``app.core.evaluation.match``):

* **ner**. The answer is split into items and each aligned to the note by the grounding checker's one
  aligner (``app.core.grounding.align.align_items``, task NER: a line per item or items separated by commas
  or semicolons; bullets, numbers, a leading "Label:" and a trailing "(category)" dropped; "None" names
  nothing; an item that does not occur in the note whole but does without a trailing dose or parenthetical is
  taken in that shorter form).
  *Document level* (the primary figures): the set of distinct normalized items against the set of distinct
  normalized gold mentions of the kept types. A generative answer names each entity once while the gold marks
  every occurrence, so each distinct text counts once on both sides: ``tp`` = items in the gold set, ``fp`` =
  items not in it, ``fn`` = gold texts not named; strict and lenient.
  *Mention level*: every note span an item aligned to (all its occurrences) against the gold mentions'
  spans: strict = same span, lenient = overlapping, one to one. An answer that renders the gold perfectly
  stays below 1 here, by what the annotation allows: occurrences of an annotated text the annotators left
  unmarked count as false positives, a discontinuous mention never equals a contiguous span, and a gold text
  containing a comma or a label-like "X: " may be split differently by the item splitter.
* **relation**. Lines read by the item splitter (``(first, relation, second)``, ``first -> relation ->
  second``, "X causes Y"...): distinct (first, relation, second) triples against the gold triples of the kept
  types. Strict: both arguments strictly equal in order and the relation named equal to the gold type
  (normalized); lenient: both arguments lenient matches in either order, the relation ignored. A gold argument
  no annotation names (the patient) matches any argument. One to one.
* **decision**. The answer's decision: its first word after any bullet, emphasis or "Answer:"/"Decision:"
  label if that word is yes, no or maybe ("Yes, ...", "**No**.", "Answer: maybe"); else the first "the answer
  is X" / "answer: X" / "decision: X" anywhere; else unparseable (counted, and wrong). Accuracy, and macro-F1
  over the classes that occur in the gold or the answers (an unparseable answer is a false negative of its
  gold class). Where the gold has a long answer, ROUGE-L against it of the answer after its leading decision
  ("Yes. The trial shows..." is compared as "The trial shows...").
* **rouge**. ROUGE-L (``app.core.evaluation.rouge``: LCS F-measure on words) against the reference; an item
  without a reference gets the support rate instead (below).
* **support**. The claim-level support rate of the grounding checker (``app.core.grounding.check_answer``):
  supported claims / checked claims (partly supported and not found count as checked and not supported;
  unchecked ones, negations and reasoning, are left out).

Corpus figures are micro-averaged from the summed counts (``CORPUS_METRICS``), so they can be resampled over
items for intervals; a ratio with nothing to divide by is 0 (precision of an answer set that names nothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core.evaluation.loaders import DECISIONS, EvalItem, has_gold
from app.core.evaluation.match import content_words, lenient_text, max_matching, normalize, space, spans_overlap
from app.core.evaluation.rouge import rouge_l_prf
from app.core.evaluation.suites import Suite
from app.core.grounding import ClaimStatus, check_answer
from app.core.grounding.align import align_items
from app.core.grounding.items import SPLITTERS


@dataclass(frozen=True)
class ItemScore:
    """One answer's score."""

    item_id: str
    metrics: dict[str, float]
    """The item's own figures (only those defined for it: no precision for an answer naming nothing)."""
    counts: dict[str, int]
    """What the corpus figures are summed from (``CORPUS_METRICS``); ROUGE-L as ``rouge_l_sum`` x 1e6."""
    details: dict[str, Any] = field(default_factory=dict)
    """What matched and what did not, for reports (plain JSON)."""


def _ratio(num: Any, den: Any) -> Any:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _f1(tp: Any, fp: Any, fn: Any) -> Any:
    return _ratio(2 * np.asarray(tp, dtype=float), 2 * np.asarray(tp, dtype=float) + fp + fn)


def _macro_f1(*counts: Any) -> Any:
    """Mean per-class F1 over the classes with any gold or prediction (counts: tp, fp, fn per class)."""
    f1s, present = [], []
    for k in range(0, len(counts), 3):
        tp, fp, fn = (np.asarray(c, dtype=float) for c in counts[k : k + 3])
        f1s.append(_f1(tp, fp, fn))
        present.append((tp + fp + fn) > 0)
    return _ratio(sum(f * p for f, p in zip(f1s, present, strict=True)), sum(present))


ROUGE_SCALE = 1_000_000
"""Per-item ROUGE-L values are summed as integers (micro-units) so that every corpus figure is a ratio of counts."""


@dataclass(frozen=True)
class CorpusMetric:
    name: str
    needs: tuple[str, ...]
    """Count keys summed over the items that have them all."""
    formula: Callable[..., Any]
    """The figure from the sums (numpy arrays: one value per bootstrap resample)."""


def _prf(prefix: str, suffix: str) -> list[CorpusMetric]:
    keys = tuple(f"{prefix}{k}{suffix}" for k in ("tp", "fp", "fn"))
    return [
        CorpusMetric(f"{prefix}precision{suffix}", keys, lambda tp, fp, fn: _ratio(tp, tp + fp)),
        CorpusMetric(f"{prefix}recall{suffix}", keys, lambda tp, fp, fn: _ratio(tp, tp + fn)),
        CorpusMetric(f"{prefix}f1{suffix}", keys, _f1),
    ]


_CLASS_KEYS = tuple(f"{k}_{c}" for c in DECISIONS for k in ("tp", "fp", "fn"))
CORPUS_METRICS: tuple[CorpusMetric, ...] = (
    *_prf("", ""),
    *_prf("", "_lenient"),
    *_prf("mention_", ""),
    *_prf("mention_", "_lenient"),
    CorpusMetric("accuracy", ("correct", "decided"), _ratio),
    CorpusMetric("macro_f1", _CLASS_KEYS, _macro_f1),
    CorpusMetric("rouge_l", ("rouge_l_sum", "references"), lambda s, n: _ratio(s, n) / ROUGE_SCALE),
    CorpusMetric("support_rate", ("supported", "checked"), _ratio),
)
"""Every corpus figure and the counts it is computed from; a scorer's items carry the counts of its figures."""


def _defined(name: str, vals: list[int]) -> bool:
    """Whether a figure has a denominator on these counts (an item's own figures are only shown then)."""
    base = name.removeprefix("mention_").removesuffix("_lenient")
    if base == "precision":
        return vals[0] + vals[1] > 0
    if base == "recall":
        return vals[0] + vals[2] > 0
    if base == "f1":
        return sum(vals) > 0
    return vals[-1] > 0


def _item_metrics(counts: dict[str, int]) -> dict[str, float]:
    """The corpus formulas on one item's counts, where defined for it (macro-F1 is a corpus figure only)."""
    out = {}
    for m in CORPUS_METRICS:
        if m.name != "macro_f1" and all(k in counts for k in m.needs):
            vals = [counts[k] for k in m.needs]
            if _defined(m.name, vals):
                out[m.name] = round(float(m.formula(*vals)), 6)
    return out


def _set_counts(
    pred: list[str], gold: list[str], edge: Callable[[str, str], bool], suffix: str, prefix: str = ""
) -> tuple[dict[str, int], list[tuple[int, int]]]:
    pairs = max_matching(pred, gold, edge)
    tp = len(pairs)
    return {
        f"{prefix}tp{suffix}": tp,
        f"{prefix}fp{suffix}": len(pred) - tp,
        f"{prefix}fn{suffix}": len(gold) - tp,
    }, pairs


def _distinct(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(t for t in (normalize(x) for x in texts) if t))


def _ner(item: EvalItem, answer: str, suite: Suite) -> tuple[dict[str, int], dict[str, Any]]:
    spans, _notes = align_items(answer, item.note, "ner")
    pred = _distinct([s.text for s in spans])
    gold = _distinct([m.text for m in item.gold.mentions])
    counts, strict_pairs = _set_counts(pred, gold, str.__eq__, "")
    lenient, _ = _set_counts(pred, gold, lenient_text, "_lenient")
    predicted = sorted({sp for s in spans if s.match != "none" for sp in s.note_spans})
    gold_spans = list(dict.fromkeys(m.fragments or ((m.start, m.end),) for m in item.gold.mentions))
    strict_m, _ = _set_counts(predicted, gold_spans, lambda p, g: len(g) == 1 and p == g[0], "", "mention_")
    lenient_m, _ = _set_counts(predicted, gold_spans, lambda p, g: spans_overlap([p], g), "_lenient", "mention_")
    hit_p, hit_g = {i for i, _ in strict_pairs}, {j for _, j in strict_pairs}
    details = {
        "matched": [pred[i] for i in sorted(hit_p)],
        "spurious": [p for i, p in enumerate(pred) if i not in hit_p],
        "missed": [g for j, g in enumerate(gold) if j not in hit_g],
        "not_in_note": [space(s.text) for s in spans if s.match == "none"],
    }
    return {**counts, **lenient, **strict_m, **lenient_m}, details


def _triples(answer: str) -> list[tuple[str, str, str]]:
    pieces, _unread = SPLITTERS["relation"](answer)
    by_group: dict[int, dict[str, Any]] = {}
    for p in pieces:
        by_group.setdefault(p.group, {})[p.role] = answer[p.start : p.end]
        by_group[p.group]["label"] = p.label
    out = [
        (normalize(g["arg1"]), normalize(g.get("label", "")), normalize(g["arg2"]))
        for g in by_group.values()
        if "arg1" in g and "arg2" in g
    ]
    return list(dict.fromkeys(t for t in out if t[0] and t[2]))


def _arg_strict(a: str, g: str) -> bool:
    return not g or a == g


def _arg_lenient(a: str, g: str) -> bool:
    return not g or bool(content_words(a) & content_words(g))


def _relation(item: EvalItem, answer: str, suite: Suite) -> tuple[dict[str, int], dict[str, Any]]:
    pred = _triples(answer)
    gold = list(dict.fromkeys((normalize(a), normalize(r), normalize(b)) for a, r, b in item.gold.relations))

    def strict(p: tuple[str, str, str], g: tuple[str, str, str]) -> bool:
        return p[1] == g[1] and _arg_strict(p[0], g[0]) and _arg_strict(p[2], g[2])

    def lenient(p: tuple[str, str, str], g: tuple[str, str, str]) -> bool:
        same = _arg_lenient(p[0], g[0]) and _arg_lenient(p[2], g[2])
        return same or (_arg_lenient(p[2], g[0]) and _arg_lenient(p[0], g[2]))

    counts, pairs = _set_counts(pred, gold, strict, "")  # type: ignore[arg-type]
    lenient_counts, _ = _set_counts(pred, gold, lenient, "_lenient")  # type: ignore[arg-type]
    hit_p, hit_g = {i for i, _ in pairs}, {j for _, j in pairs}
    details = {
        "matched": [list(pred[i]) for i in sorted(hit_p)],
        "spurious": [list(p) for i, p in enumerate(pred) if i not in hit_p],
        "missed": [list(g) for j, g in enumerate(gold) if j not in hit_g],
    }
    return {**counts, **lenient_counts}, details


_LEAD = re.compile(r"^[\s\W_]*(?:(?:final\s+)?(?:answer|decision|conclusion)\s*[:\-]\s*[\W_]*)?(yes|no|maybe)\b", re.I)
_PHRASE = re.compile(r"\b(?:answer|decision)\s*(?:is|would be|:)\s*[\W_]{0,3}(yes|no|maybe)\b", re.I)


def parse_decision(answer: str) -> str | None:
    """``yes``, ``no`` or ``maybe`` as the answer states it, or None (see the module docstring)."""
    m = _LEAD.match(answer) or _PHRASE.search(answer)
    return m.group(1).lower() if m else None


def _rouge_counts(answer: str, reference: str) -> tuple[dict[str, int], dict[str, float]]:
    p, r, f = rouge_l_prf(answer, reference)
    return {"rouge_l_sum": round(f * ROUGE_SCALE), "references": 1}, {
        "rouge_l_precision": round(p, 6),
        "rouge_l_recall": round(r, 6),
    }


def _decision(item: EvalItem, answer: str, suite: Suite) -> tuple[dict[str, int], dict[str, Any]]:
    said, gold = parse_decision(answer), item.gold.decision
    counts: dict[str, int] = {"unparseable": int(said is None)}
    if gold is not None:
        counts.update(correct=int(said == gold), decided=1)
        for c in DECISIONS:
            counts.update(
                {
                    f"tp_{c}": int(said == c == gold),
                    f"fp_{c}": int(said == c != gold),
                    f"fn_{c}": int(gold == c != said),
                }
            )
    details: dict[str, Any] = {"decision": said, "gold": gold}
    if item.gold.reference is not None:
        lead = _LEAD.match(answer)  # the long answer is what follows the stated decision
        rc, extra = _rouge_counts(answer[lead.end() :] if lead else answer, item.gold.reference)
        counts.update(rc)
        details.update(extra)
    return counts, details


def _support(item: EvalItem, answer: str, suite: Suite) -> tuple[dict[str, int], dict[str, Any]]:
    report = check_answer(answer, item.note, suite.task, item.instruction)
    supported = len(report.by_status(ClaimStatus.SUPPORTED))
    counts = {"supported": supported, "checked": len(report.checked), "claims": len(report.claims)}
    return counts, {"unsupported": [space(c.text) for c in report.checked if c.status != ClaimStatus.SUPPORTED]}


def _rouge(item: EvalItem, answer: str, suite: Suite) -> tuple[dict[str, int], dict[str, Any]]:
    if item.gold.reference is None:
        return _support(item, answer, suite)
    counts, extra = _rouge_counts(answer, item.gold.reference)
    return counts, dict(extra)


SCORER_FUNCTIONS: dict[str, Callable[[EvalItem, str, Suite], tuple[dict[str, int], dict[str, Any]]]] = {
    "ner": _ner,
    "relation": _relation,
    "decision": _decision,
    "rouge": _rouge,
    "support": _support,
}


def score_item(suite: Suite, item: EvalItem, answer: str) -> ItemScore:
    """One answer scored by the suite's scorer (see the module docstring)."""
    counts, details = SCORER_FUNCTIONS[suite.scorer](item, answer or "", suite)
    metrics = _item_metrics(counts)
    for k in ("rouge_l_precision", "rouge_l_recall"):
        if k in details:
            metrics[k] = details.pop(k)
    if not has_gold(item.gold, suite.scorer):
        details["gold_empty"] = True
    return ItemScore(item.id, metrics, counts, details)

"""Task evaluation against gold over the log: score answered runs, store each score beside its run, and read
the scores back as per-model results with intervals and, for two models or more, paired comparisons.

The answering itself is ``asclepius eval run`` (``app/cli/eval_runner.py``): every item goes through the one
ask-and-log service on batch's schedulers, so an answer is an ordinary logged run with its provenance and
resume key. What this module adds is the evaluation's half:

- :func:`score_answers` scores (``app.core.evaluation.scorers.score_item``) and records
  (``EvalLog.record_eval_score``) each answered item, so a score is never kept without its run.
- :func:`stored_results` reads a suite's scores back from the log and aggregates them per model
  (``app.service.evaluation.aggregate``: bootstrap intervals) and pairs them (``paired``): what
  ``eval report``, ``eval run``'s summary and the Statistics screen show.

The scorer, aggregation and pairing functions are passed in where a test needs a stand-in; by default they are
the evaluation core's (imported where used: a desktop start does not pay for them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

Scorer = Callable[[Any, Any, str], Any]
"""``(suite, item, answer) -> ItemScore`` (``app.core.evaluation.scorers.score_item``)."""


@dataclass(frozen=True, slots=True)
class Answered:
    """One suite item with the logged run that answered it."""

    item: Any
    """The ``EvalItem`` (id, note, instruction, gold)."""
    run_uuid: str
    """The answering run (its score is stored beside it)."""
    answer: str
    """The answer as logged (stripped by the service)."""


@dataclass(frozen=True, slots=True)
class ModelScores:
    """One model's item scores on a suite, as stored."""

    model_sha256: str
    model: str
    """The model's file name (a remote model's served name): the label results carry."""
    scores: list[Any] = field(default_factory=list)
    """``ItemScore`` s, one per item."""


@dataclass(frozen=True, slots=True)
class EvalResults:
    """A suite's results over one or more models: what every front end prints, writes or shows."""

    suite: str
    results: list[Any]
    """``SuiteResult`` per model, in the models' order."""
    paired: list[tuple[str, str, Any]]
    """(model a, model b, ``PairedResult``): the first model against each later one; empty for one model."""

    def to_json(self) -> dict[str, Any]:
        """One model: its ``SuiteResult`` JSON (the primary figures at the top level); several: the results
        and the paired comparisons."""
        if len(self.results) == 1 and not self.paired:
            return as_json(self.results[0])
        return {
            "suite": self.suite,
            "results": [as_json(r) for r in self.results],
            "paired": [{"model_a": a, "model_b": b, **as_json(p)} for a, b, p in self.paired],
        }


def as_json(x: Any) -> Any:
    """An evaluation dataclass as JSON data (its own ``to_json`` where it has one)."""
    if hasattr(x, "to_json"):
        return x.to_json()
    if is_dataclass(x) and not isinstance(x, type):
        return asdict(x)
    return x


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    """A scorer's details as JSON data (a tuple or set becomes a list; anything else its text)."""
    return json.loads(json.dumps(d, default=lambda v: sorted(v) if isinstance(v, set | frozenset) else str(v)))


def default_scorer() -> Scorer:
    from app.core.evaluation.scorers import score_item

    return score_item


def score_answers(log: Any, suite: Any, answered: Sequence[Answered], score: Scorer | None = None) -> list[Any]:
    """Score each answered item and store the score beside its run (replacing an older one); the scores."""
    score = score or default_scorer()
    out = []
    for a in answered:
        s = score(suite, a.item, a.answer)
        log.record_eval_score(a.run_uuid, suite.name, s.item_id, s.metrics, s.counts, _json_safe(s.details))
        out.append(s)
    return out


def item_score(view: Any) -> Any:
    """A stored score back as an ``ItemScore``."""
    from app.core.evaluation.scorers import ItemScore

    return ItemScore(item_id=view.item_id, metrics=view.metrics, counts=view.counts, details=view.details)


def stored_scores(
    log: Any, suite: str, models: Sequence[str] | None = None, to_score: Callable[[Any], Any] | None = None
) -> list[ModelScores]:
    """A suite's stored scores grouped by model (those with these sha256s, in this order; None: every model
    with scores, by file name)."""
    to_score = to_score or item_score
    by_model: dict[str, ModelScores] = {}
    for v in log.eval_scores(suite, models=models):
        ms = by_model.setdefault(v.model_sha256, ModelScores(v.model_sha256, v.model))
        ms.scores.append(to_score(v))
    if models is None:
        return sorted(by_model.values(), key=lambda m: (m.model, m.model_sha256))
    return [by_model[sha] for sha in models if sha in by_model]


def results_of(
    suite: Any,
    groups: Sequence[ModelScores],
    aggregate: Callable[..., Any] | None = None,
    paired: Callable[..., Any] | None = None,
) -> EvalResults:
    """Per-model results and the paired comparison of the first model with each later one (on the items
    both have)."""
    if aggregate is None or paired is None:
        from app.service import evaluation

        aggregate = aggregate or evaluation.aggregate
        paired = paired or evaluation.paired
    results = [aggregate(suite, g.scores, model=g.model) for g in groups]
    first = groups[0] if groups else None
    pairs = [(first.model, g.model, p) for g in groups[1:] if first for p in paired(suite, first.scores, g.scores)]
    return EvalResults(suite.name, results, pairs)


def stored_results(log: Any, suite: Any, models: Sequence[str] | None = None) -> EvalResults:
    """``results_of`` the suite's scores as stored in the log."""
    return results_of(suite, stored_scores(log, suite.name, models))


__all__ = [
    "Answered",
    "EvalResults",
    "ModelScores",
    "as_json",
    "item_score",
    "results_of",
    "score_answers",
    "stored_results",
    "stored_scores",
]

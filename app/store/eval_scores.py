"""Scores of logged answers against a suite's gold annotation (``asclepius eval``), stored beside the runs.

A score belongs to one run and one suite (``eval_scores``, revision 0006): the run keeps the answer and its
full provenance, the score row only what the scorer said (metrics, the counts corpus-level figures are summed
from, the details of what matched). Scoring a run again for the same suite replaces its row, so a rerun with a
changed scorer leaves one score per answer. Deleting a run deletes its scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from app.core.errors import UsageError
from app.store.base import LogBase, RunRef
from app.store.models import EvalScore, Model, Run, utcnow

MAX_SUITE_CHARS = 128
MAX_ITEM_ID_CHARS = 512
"""Item ids are the corpus's own (a PMID, a BioC document id: the case reports' are URLs of up to 130
characters)."""


@dataclass(frozen=True, slots=True)
class EvalScoreView:
    """One stored score with what identifies its answer."""

    run_id: int
    """The scored run's row id."""
    run_uuid: str
    """The scored run's uuid (what ``log show`` takes)."""
    suite: str
    item_id: str
    model_sha256: str
    """The answering model's identity (a remote model's is derived from its endpoint and served name)."""
    model: str
    """The answering model's file name (a remote model: its served name)."""
    metrics: dict[str, float]
    counts: dict[str, int]
    details: dict[str, Any]
    scored_at: datetime


@dataclass(frozen=True, slots=True)
class EvalSuiteSummary:
    """Which suites were scored on which model, and how many items: what a report or screen offers."""

    suite: str
    model_sha256: str
    model: str
    items: int
    """Distinct items scored."""
    last_scored: datetime


_VIEW_COLUMNS = (
    EvalScore.run_id, Run.uuid, EvalScore.suite, EvalScore.item_id, Model.sha256, Model.file_name,
    EvalScore.metrics, EvalScore.counts, EvalScore.details, EvalScore.scored_at,
)  # fmt: skip


class EvalScoresMixin(LogBase):
    def record_eval_score(
        self,
        run_id: RunRef,
        suite: str,
        item_id: str,
        metrics: dict[str, float],
        counts: dict[str, int],
        details: dict[str, Any],
    ) -> None:
        """Store (or replace) the score of run ``run_id`` (id or uuid) on ``suite``; UsageError for a missing run
        or a suite name / item id too long to be a name."""
        if not suite or len(suite) > MAX_SUITE_CHARS:
            raise UsageError(f"a suite name must have 1 to {MAX_SUITE_CHARS} characters")
        if not item_id or len(item_id) > MAX_ITEM_ID_CHARS:
            raise UsageError(f"an item id must have 1 to {MAX_ITEM_ID_CHARS} characters: {item_id[:40]!r}")
        with self.write_session() as s:
            rid = self._run_id(s, run_id)
            s.execute(delete(EvalScore).where(EvalScore.run_id == rid, EvalScore.suite == suite))
            s.add(
                EvalScore(
                    run_id=rid,
                    suite=suite,
                    item_id=item_id,
                    metrics=dict(metrics),
                    counts=dict(counts),
                    details=dict(details),
                    scored_at=utcnow(),
                )
            )

    def eval_scores(self, suite: str, models: Iterable[str] | None = None) -> list[EvalScoreView]:
        """The scores on ``suite`` (of the models with these sha256s, or all), one per model and item: where
        an item was answered more than once (other sampling, say) the latest scored run counts."""
        q = (
            select(*_VIEW_COLUMNS)
            .join(Run, EvalScore.run_id == Run.id)
            .join(Model, Run.model_id == Model.id)
            .where(EvalScore.suite == suite)
            .order_by(EvalScore.scored_at, EvalScore.id)
        )
        if models is not None:
            q = q.where(Model.sha256.in_(list(models)))
        latest: dict[tuple[str, str], EvalScoreView] = {}
        with self.read_session() as s:
            for r in s.execute(q):
                latest[(r.sha256, r.item_id)] = EvalScoreView(
                    r.run_id, r.uuid, r.suite, r.item_id, r.sha256, r.file_name, r.metrics, r.counts, r.details,
                    r.scored_at,
                )  # fmt: skip
        return list(latest.values())

    def eval_suites(self) -> list[EvalSuiteSummary]:
        """Every (suite, model) with scores, by suite then model file name."""
        q = (
            select(
                EvalScore.suite,
                Model.sha256,
                Model.file_name,
                func.count(func.distinct(EvalScore.item_id)).label("items"),
                func.max(EvalScore.scored_at).label("last"),
            )
            .join(Run, EvalScore.run_id == Run.id)
            .join(Model, Run.model_id == Model.id)
            .group_by(EvalScore.suite, Model.sha256, Model.file_name)
            .order_by(EvalScore.suite, Model.file_name)
        )
        with self.read_session() as s:
            return [EvalSuiteSummary(r.suite, r.sha256, r.file_name, r.items, _aware(r.last)) for r in s.execute(q)]


def _aware(value: Any) -> datetime:
    """``max()`` over the UTC text column comes back as text (the column type is not applied to aggregates)."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


__all__ = ["EvalScoreView", "EvalScoresMixin", "EvalSuiteSummary"]

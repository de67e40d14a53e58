"""The log's reads for front ends: runs (listed, counted, one by one), the History page, ratings,
comparisons, raters, models and tasks, each as plain frozen views (``app/store/queries.py``)."""

from __future__ import annotations

from sqlalchemy import func, select

from app.core.errors import UsageError
from app.store.base import LogBase, RunRef
from app.store.models import Comparison, Rater, Rating, Run
from app.store.queries import (
    ComparisonView,
    HistoryRow,
    ModelView,
    RaterView,
    RatingView,
    RunFilter,
    RunQuery,
    RunView,
    comparisons_select,
    history_row,
    models_select,
    raters_select,
    rating_select,
    rating_view,
    run_view,
    runs_select,
)


class ReadsMixin(LogBase):
    """Read-only queries: nothing here writes, so any of them works on a log opened read-only."""

    def list_runs(self, filters: RunFilter | None = None, offset: int = 0, limit: int = 100) -> list[RunView]:
        """Runs newest first (paged), without note text."""
        stmt = (filters or RunFilter()).apply(runs_select())
        stmt = stmt.order_by(Run.started_at.desc(), Run.id.desc()).offset(offset).limit(limit)
        with self.read_session() as s:
            return [run_view(r) for r in s.execute(stmt)]

    def history_page(self, query: RunQuery, offset: int = 0, limit: int = 100) -> list[HistoryRow]:
        """A page of the History list: runs newest first with their mean current score and rating count."""
        with self.read_session() as s:
            return [history_row(r) for r in s.execute(query.page_select(offset, limit))]

    def count_history(self, query: RunQuery) -> int:
        with self.read_session() as s:
            return int(s.scalar(query.count_select()) or 0)

    def latest_runs(self, task: str, limit: int = 100) -> list[RunView]:
        return self.list_runs(RunFilter(task=task), 0, limit)

    def count_runs(self, filters: RunFilter | None = None) -> int:
        stmt = (filters or RunFilter()).apply(select(func.count()).select_from(Run))
        with self.read_session() as s:
            return int(s.scalar(stmt) or 0)

    def get_run(self, run: RunRef) -> RunView | None:
        """One run with its note text (when stored), or None."""
        with self.read_session() as s:
            try:
                rid = self._run_id(s, run)
            except UsageError:
                return None
            row = s.execute(runs_select(with_note_text=True).where(Run.id == rid)).first()
            return run_view(row) if row else None

    def rating_history(self, run: RunRef, rater: str | None = None) -> list[RatingView]:
        """Every rating of a run, oldest first; ``is_current`` marks each rater's latest."""
        with self.read_session() as s:
            stmt = rating_select().where(Rating.run_id == self._run_id(s, run))
            if rater is not None:
                stmt = stmt.where(Rater.name == rater)
            return [rating_view(r) for r in s.execute(stmt.order_by(Rating.created_at, Rating.id))]

    def current_ratings(self, run: RunRef) -> list[RatingView]:
        return [r for r in self.rating_history(run) if r.is_current]

    def comparisons(self, run: RunRef | None = None) -> list[ComparisonView]:
        with self.read_session() as s:
            stmt = comparisons_select()
            if run is not None:
                rid = self._run_id(s, run)
                stmt = stmt.where((Comparison.run_a_id == rid) | (Comparison.run_b_id == rid))
            return [ComparisonView(**dict(r._mapping)) for r in s.execute(stmt.order_by(Comparison.id))]

    def raters(self) -> list[RaterView]:
        with self.read_session() as s:
            return [RaterView(**dict(r._mapping)) for r in s.execute(raters_select())]

    def models(self) -> list[ModelView]:
        with self.read_session() as s:
            return [ModelView(**dict(r._mapping)) for r in s.execute(models_select())]

    def tasks(self) -> list[str]:
        with self.read_session() as s:
            return list(s.scalars(select(Run.task).distinct().order_by(Run.task)))


__all__ = ["ReadsMixin"]

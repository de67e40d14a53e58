"""Ratings and blinded comparisons: raters, the 4-point rubric with history (one current rating per rater
and run), pairwise votes, the blinding of a pending comparison, and undoing a vote."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from app.core.errors import UsageError
from app.store.base import LogBase, RunRef
from app.store.models import CHOICES, RATER_KINDS, SIDES, Comparison, PendingComparisonRun, Rater, Rating, Run, utcnow
from app.store.rules import not_rateable_message, why_not_rateable
from resources.rubric import rating_problem  # re-exported: the store's callers import it from here

MAX_RATER_NAME = 128
"""``raters.name``'s width."""


@dataclass(frozen=True)
class NewRating:
    """One rating to add (``EvalLog.add_rating_in``; an import builds one per row)."""

    run: RunRef
    """The rated run's id or uuid."""
    rater: str
    """The rater's name; a new name adds the rater."""
    score: int
    """1-4 on the rubric."""
    hallucination: bool = False
    """The answer states something the note does not support."""
    comment: str | None = None
    corrected_answer: str | None = None
    """What the answer should have said, when the rater wrote it."""
    rater_kind: str = "human"
    """``human`` or ``judge`` (an automated judge); fixed for a rater once recorded."""
    at: datetime | None = None
    """When it was rated (aware); None: now."""


class RatingsMixin(LogBase):
    """Raters, ratings, comparisons and the blinding of comparisons awaiting their vote."""

    def _rater_id(self, s: Session, name: str, kind: str) -> int:
        name = name.strip()
        if not name:
            raise UsageError("a rater needs a name")
        if len(name) > MAX_RATER_NAME:
            raise UsageError(f"a rater's name is at most {MAX_RATER_NAME} characters")
        if kind not in RATER_KINDS:
            raise UsageError(f"rater kind must be one of {', '.join(RATER_KINDS)}, not {kind!r}")
        row = s.execute(select(Rater.id, Rater.kind).where(Rater.name == name)).first()
        if row is None:
            r = Rater(name=name, kind=kind, created_at=utcnow())
            s.add(r)
            s.flush()
            return r.id
        if row.kind != kind:
            raise UsageError(f"rater {name!r} is a {row.kind}, not a {kind}")
        return row.id

    def add_rater(self, name: str, kind: str = "human") -> int:
        with self.write_session() as s:
            return self._rater_id(s, name, kind)

    def add_rating(
        self,
        run: RunRef,
        rater: str,
        score: int,
        *,
        hallucination: bool = False,
        comment: str | None = None,
        corrected_answer: str | None = None,
        rater_kind: str = "human",
        at: datetime | None = None,
    ) -> int:
        """Rate a run on the 4-point rubric; an earlier rating by the same rater becomes history.

        UsageError, naming the run, if the run cannot be rated (``app/store/rules.py``: it failed, was
        stopped, has not finished or has an empty answer); UsageError if the rating contradicts itself
        (:func:`rating_problem`)."""
        with self.write_session() as s:
            rating = NewRating(run, rater, score, hallucination, comment, corrected_answer, rater_kind, at)
            return self.add_rating_in(s, rating)

    def add_rating_in(self, s: Session, r: NewRating) -> int:
        """``add_rating`` inside the caller's transaction (an import adds many at once)."""
        if problem := rating_problem(r.score, r.hallucination, r.comment):
            raise UsageError(problem)
        rid = self._run_id(s, r.run)
        run = s.execute(select(Run.status, Run.finish_reason, Run.answer).where(Run.id == rid)).one()
        why = why_not_rateable(run.status, run.finish_reason, run.answer)
        if why is not None:
            raise UsageError(not_rateable_message(r.run, why))
        rater_id = self._rater_id(s, r.rater, r.rater_kind)
        s.execute(
            update(Rating)
            .where(Rating.run_id == rid, Rating.rater_id == rater_id, Rating.is_current.is_(True))
            .values(is_current=False)
        )
        row = Rating(
            run_id=rid,
            rater_id=rater_id,
            score=r.score,
            hallucination=bool(r.hallucination),
            comment=r.comment or None,
            corrected_answer=r.corrected_answer or None,
            is_current=True,
            created_at=r.at or utcnow(),
        )
        s.add(row)
        s.flush()
        return row.id

    def add_comparison(
        self,
        run_a: RunRef,
        run_b: RunRef,
        rater: str,
        choice: str,
        *,
        a_side: str = "left",
        comment: str | None = None,
        at: datetime | None = None,
        blind: bool = True,
    ) -> int:
        """A choice between two finished runs of the same note, task and instruction; ``blind`` unless the
        caller says the rater saw the models. A vote on a pair whose earlier vote was withdrawn is never
        blind, whatever the caller says: that vote revealed the models (see :meth:`undo_vote`)."""
        if choice not in CHOICES:
            raise UsageError(f"choice must be one of {', '.join(CHOICES)}, not {choice!r}")
        if a_side not in SIDES:
            raise UsageError(f"a_side must be left or right, not {a_side!r}")
        with self.write_session() as s:
            ida, idb = self._run_id(s, run_a), self._run_id(s, run_b)
            _check_comparable(s, ida, idb)
            c = Comparison(
                run_a_id=ida,
                run_b_id=idb,
                a_side=a_side,
                rater_id=self._rater_id(s, rater, "human"),
                choice=choice,
                comment=comment or None,
                created_at=at or utcnow(),
                blind=blind and not _revealed(s, ida, idb),
            )
            s.add(c)
            # The vote ends the blinding of both runs, in the same transaction as the vote itself.
            s.execute(delete(PendingComparisonRun).where(PendingComparisonRun.run_id.in_((ida, idb))))
            s.flush()
            return c.id

    def hold_blind(self, runs: Iterable[RunRef]) -> None:
        """Record runs of a blind comparison awaiting its vote: their model stays hidden, across restarts,
        until :meth:`add_comparison` of them (which ends it)."""
        with self.write_session() as s:
            _hold(s, [self._run_id(s, ref) for ref in runs])

    def release_blind(self, runs: Iterable[RunRef]) -> None:
        """Give up the blind vote on these runs (the user chose to see them): they show their model again."""
        with self.write_session() as s:
            ids = [self._run_id(s, ref) for ref in runs]
            s.execute(delete(PendingComparisonRun).where(PendingComparisonRun.run_id.in_(ids)))

    def blinded_runs(self) -> set[int]:
        """Ids of the runs whose comparison has not been voted on (see :meth:`hold_blind`)."""
        with self.read_session() as s:
            return set(s.scalars(select(PendingComparisonRun.run_id)))

    def undo_vote(self, comparison_id: int, rating_ids: Iterable[int] = (), *, at: datetime | None = None) -> None:
        """Withdraw a comparison and the ratings given with it (the Compare screen's Undo). Both are kept,
        marked withdrawn (``withdrawn_at``) and no longer counted; each rater's previous rating of those runs,
        if any, becomes current again. The vote showed which model wrote which answer, so the runs are not
        blinded again and a new vote on them is recorded as not blind (:meth:`add_comparison`)."""
        when = at or utcnow()
        with self.write_session() as s:
            c = s.get(Comparison, comparison_id)
            if c is None:
                raise UsageError(f"no comparison {comparison_id}")
            if c.withdrawn_at is not None:
                raise UsageError(f"comparison {comparison_id} was already withdrawn")
            c.withdrawn_at = when
            for rid in rating_ids:
                _withdraw_rating(s, rid, when)


def _check_comparable(s: Session, ida: int, idb: int) -> None:
    """UsageError unless the two runs differ, are finished and share the note, task and instruction."""
    if ida == idb:
        raise UsageError("a comparison needs two different runs")
    cols = (Run.id, Run.note_id, Run.task, Run.instruction, Run.status)
    rows = {r.id: r for r in s.execute(select(*cols).where(Run.id.in_((ida, idb))))}
    a, b = rows[ida], rows[idb]
    if (a.note_id, a.task, a.instruction) != (b.note_id, b.task, b.instruction):
        raise UsageError("compared runs must share the note, the task and the instruction")
    if a.status != "finished" or b.status != "finished":
        raise UsageError("only finished runs can be compared")


def _hold(s: Session, run_ids: Iterable[int]) -> None:
    """Mark runs as awaiting a blind vote (idempotent)."""
    for rid in run_ids:
        if s.get(PendingComparisonRun, rid) is None:
            s.add(PendingComparisonRun(run_id=rid))


def _revealed(s: Session, ida: int, idb: int) -> bool:
    """Whether a vote on these two runs (either way round) was cast and withdrawn: its reveal was seen."""
    pair = or_(
        and_(Comparison.run_a_id == ida, Comparison.run_b_id == idb),
        and_(Comparison.run_a_id == idb, Comparison.run_b_id == ida),
    )
    return s.scalar(select(Comparison.id).where(pair, Comparison.withdrawn_at.is_not(None)).limit(1)) is not None


def _withdraw_rating(s: Session, rating_id: int, when: datetime) -> None:
    """Mark one rating withdrawn (kept as history); if it was its rater's current one, their previous rating
    of the run that was not withdrawn becomes current."""
    row = s.get(Rating, rating_id)
    if row is None or row.withdrawn_at is not None:
        return
    run_id, rater_id, was_current = row.run_id, row.rater_id, row.is_current
    row.withdrawn_at, row.is_current = when, False
    s.flush()
    if not was_current:
        return
    prev = s.scalar(
        select(Rating.id)
        .where(Rating.run_id == run_id, Rating.rater_id == rater_id, Rating.withdrawn_at.is_(None))
        .order_by(Rating.created_at.desc(), Rating.id.desc())
        .limit(1)
    )
    if prev is not None:
        s.execute(update(Rating).where(Rating.id == prev).values(is_current=True))


__all__ = ["NewRating", "RatingsMixin", "rating_problem"]

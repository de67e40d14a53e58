"""Ratings in a study: a rater's responses imported (idempotent, later supersedes earlier, all-or-nothing per
file), a rating given on the shared workstation, adjudication, and the study's ratings as ``StudyData``.

Every path goes through :meth:`StudyRatingMixin._check_rows` and :meth:`~StudyRatingMixin._record`, so the
CLI, the Study screen and the import refuse the same things: a rater not registered in the study, an
answer not assigned to that rater, a score outside 1-4, a run that has not ended
(``rules.why_not_rateable_in_study``: failed, stopped, cut and empty answers are rated).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.core.errors import UsageError
from app.core.packets import ResponseRow, Responses
from app.store.models import (
    Adjudication,
    Rater,
    Rating,
    Run,
    Study,
    StudyAnswer,
    StudyAssignment,
    StudyItem,
    StudyRater,
    StudyRating,
    utcnow,
)
from app.store.ratings import RatingsMixin, rating_problem
from app.store.rules import why_not_rateable_in_study
from app.store.runs import RunsMixin
from resources.rubric import is_score

MAX_LISTED = 20
"""Refused rows named in one message (the count says how many more)."""


@dataclass(frozen=True)
class ImportReport:
    """What importing one responses file did; every row is in exactly one count."""

    rater: str
    rows: int
    added: int
    """Ratings of answers the rater had not rated in this study before."""
    superseded: int
    """Ratings that replaced the rater's earlier one (a later ``rated_at``; the earlier stays as history)."""
    unchanged: int
    """Rows imported before (the same response): importing twice changes nothing."""
    kept_newer: int
    """Rows older than the rater's rating already in the log, which stays current."""

    def describe(self) -> str:
        return (
            f"{self.rows} rows from {self.rater}: {self.added} new, {self.superseded} replacing earlier ratings, "
            f"{self.unchanged} already imported, {self.kept_newer} older than the rating in the log (kept)"
        )


@dataclass(frozen=True)
class _Row:
    """A response row checked and normalised."""

    answer_id: int
    run_id: int
    uid: str
    score: int
    hallucination: bool
    comment: str | None
    corrected_answer: str | None
    rated_at: datetime


def response_key(study_uuid: str, rater: str, row: ResponseRow) -> str:
    """sha256 of everything a response says: the same response imported again is recognised."""
    payload = [
        study_uuid,
        rater,
        row.answer_uid,
        row.rated_at,
        row.score,
        bool(row.hallucination),
        row.comment or None,
        row.corrected_answer or None,
    ]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def _when(value: str) -> datetime:
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError("no time zone")
    return t.astimezone(UTC)


class StudyRatingMixin(RunsMixin, RatingsMixin):
    """Rating study answers: import, the shared workstation, adjudication; the study's data."""

    def import_responses(self, study: str, responses: Responses) -> ImportReport:
        """Merge a rater's responses into the log, all or nothing (see the module's docstring)."""
        with self.write_session() as s:
            st = self._study_row(s, study)
            if responses.study_uuid != st.uuid:
                raise UsageError(f"these responses belong to another study ({responses.study_uuid}), not {st.name!r}")
            rater_id = self._member_id(s, st, responses.rater, "rater")
            rows = self._check_rows(s, st, rater_id, responses.rater, responses.rows)
            pairs = zip(rows, responses.rows, strict=True)
            outcomes = [self._record(s, st, rater_id, responses.rater, r, given) for r, given in pairs]
        return ImportReport(
            responses.rater,
            len(outcomes),
            outcomes.count("added"),
            outcomes.count("superseded"),
            outcomes.count("unchanged"),
            outcomes.count("kept_newer"),
        )

    def rate_study_answer(
        self,
        study: str,
        rater: str,
        answer_uid: str,
        score: int,
        hallucination: bool = False,
        comment: str | None = None,
        corrected_answer: str | None = None,
        rated_at: str | None = None,
    ) -> int:
        """Rate one study answer on the log itself (a shared workstation); the rating's id."""
        row = ResponseRow(answer_uid, score, hallucination, comment, corrected_answer, rated_at or utcnow().isoformat())
        with self.write_session() as s:
            st = self._study_row(s, study)
            rater_id = self._member_id(s, st, rater, "rater")
            (checked,) = self._check_rows(s, st, rater_id, rater, [row])
            self._record(s, st, rater_id, rater, checked, row)
            return s.scalar(
                select(StudyRating.rating_id).where(StudyRating.response_key == response_key(st.uuid, rater, row))
            )  # type: ignore[return-value]

    def adjudicate(self, study: str, answer_uid: str, adjudicator: str, score: int, reason: str) -> int:
        """A final score for an answer by a registered adjudicator, with the reason; the raters' ratings
        stay as they were, an earlier adjudication of the answer stays as history."""
        if not is_score(score):
            raise UsageError(f"a final score is 1, 2, 3 or 4 on the rubric, not {score!r}")
        if not (reason or "").strip():
            raise UsageError("an adjudication needs a reason")
        with self.write_session() as s:
            st = self._study_row(s, study)
            adj_id = self._member_id(s, st, adjudicator, "adjudicator")
            answer_id = s.scalar(
                select(StudyAnswer.id)
                .join(StudyItem, StudyItem.id == StudyAnswer.item_id)
                .where(StudyAnswer.uid == answer_uid, StudyItem.study_id == st.id)
            )
            if answer_id is None:
                raise UsageError(f"study {st.name!r} has no answer {answer_uid[:40]!r}")
            s.execute(
                update(Adjudication)
                .where(Adjudication.answer_id == answer_id, Adjudication.is_current.is_(True))
                .values(is_current=False)
            )
            row = Adjudication(
                answer_id=answer_id,
                adjudicator_id=adj_id,
                score=score,
                reason=reason.strip(),
                is_current=True,
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return row.id

    # -- the one check and the one write ----------------------------------------------------------------
    def _check_rows(self, s: Session, st: Study, rater_id: int, rater: str, rows: Sequence[ResponseRow]) -> list[_Row]:
        """Every row checked; UsageError naming each refused row (row number, answer) if any is refused."""
        assigned = {
            r.uid: r
            for r in s.execute(
                select(StudyAnswer.uid, StudyAnswer.id, StudyAnswer.run_id, Run.status, Run.finish_reason, Run.answer)
                .join(StudyAssignment, StudyAssignment.answer_id == StudyAnswer.id)
                .join(StudyItem, StudyItem.id == StudyAnswer.item_id)
                .outerjoin(Run, Run.id == StudyAnswer.run_id)
                .where(StudyAssignment.rater_id == rater_id, StudyItem.study_id == st.id)
            )
        }
        out: list[_Row] = []
        problems: list[str] = []
        seen: set[str] = set()
        for n, row in enumerate(rows, 1):
            why = _row_problem(row, assigned, seen, rater)
            if why is not None:
                problems.append(f"row {n} (answer {str(row.answer_uid)[:40]}): {why}")
                continue
            a = assigned[row.answer_uid]
            out.append(
                _Row(
                    a.id,
                    a.run_id,
                    row.answer_uid,
                    row.score,
                    bool(row.hallucination),
                    row.comment or None,
                    row.corrected_answer or None,
                    _when(row.rated_at),
                )
            )
        if problems:
            listed = "".join(f"\n  {p}" for p in problems[:MAX_LISTED])
            more = len(problems) - MAX_LISTED
            raise UsageError(
                f"{len(problems)} of {len(rows)} rating(s) refused, nothing recorded:{listed}"
                + (f"\n  ... and {more} more" if more > 0 else "")
            )
        return out

    def _record(self, s: Session, st: Study, rater_id: int, rater: str, row: _Row, given: ResponseRow) -> str:
        """Write one checked rating unless it is known or older; which of ImportReport's counts it is."""
        key = response_key(st.uuid, rater, given)
        if s.scalar(select(StudyRating.rating_id).where(StudyRating.response_key == key)) is not None:
            return "unchanged"
        latest = s.scalar(
            select(StudyRating.rated_at)
            .join(Rating, Rating.id == StudyRating.rating_id)
            .where(StudyRating.answer_id == row.answer_id, Rating.rater_id == rater_id)
            .order_by(StudyRating.rated_at.desc())
            .limit(1)
        )
        if latest is not None and latest >= row.rated_at:
            return "kept_newer"
        s.execute(
            update(Rating)
            .where(Rating.run_id == row.run_id, Rating.rater_id == rater_id, Rating.is_current.is_(True))
            .values(is_current=False)
        )
        rating = Rating(
            run_id=row.run_id,
            rater_id=rater_id,
            score=row.score,
            hallucination=row.hallucination,
            comment=row.comment,
            corrected_answer=row.corrected_answer,
            is_current=True,
            created_at=row.rated_at,
        )
        s.add(rating)
        s.flush()
        s.add(StudyRating(rating_id=rating.id, answer_id=row.answer_id, response_key=key, rated_at=row.rated_at))
        s.flush()
        return "added" if latest is None else "superseded"

    # -- helpers --------------------------------------------------------------------------------------
    def _study_row(self, s: Session, name_or_uuid: str) -> Study:
        st = s.scalar(select(Study).where(or_(Study.name == name_or_uuid, Study.uuid == name_or_uuid)))
        if st is None:
            known = ", ".join(s.scalars(select(Study.name).order_by(Study.name).limit(10))) or "none"
            raise UsageError(f"no study {name_or_uuid[:80]!r} in the log (studies: {known})")
        return st

    def _member_id(self, s: Session, st: Study, name: str, role: str) -> int:
        """The rater id of ``name`` registered in ``st`` with ``role``; UsageError naming the list otherwise."""
        members = dict(
            s.execute(
                select(Rater.name, Rater.id)
                .join(StudyRater, StudyRater.rater_id == Rater.id)
                .where(StudyRater.study_id == st.id, StudyRater.role == role)
            ).all()
        )
        if name not in members:
            listed = ", ".join(sorted(members)) or "none registered"
            raise UsageError(f"{name[:80]!r} is not registered as {role} of study {st.name!r} ({role}s: {listed})")
        return members[name]


def _row_problem(row: ResponseRow, assigned: dict[str, Any], seen: set[str], rater: str) -> str | None:
    """Why one response row is refused (None: it is fine); ``seen`` collects the answers already given."""
    uid = row.answer_uid
    if uid not in assigned:
        return f"not an answer assigned to {rater}"
    if uid in seen:
        return "the answer is rated twice in this file"
    seen.add(uid)
    problem = rating_problem(row.score, bool(row.hallucination), row.comment)  # the rubric rule of every rating
    if problem is not None:
        return problem
    try:
        _when(row.rated_at)
    except (TypeError, ValueError):
        return f"rated_at {str(row.rated_at)[:40]!r} is not an ISO 8601 time with a time zone"
    a = assigned[uid]
    return why_not_rateable_in_study(a.status, a.finish_reason, a.answer)


__all__ = ["ImportReport", "StudyRatingMixin", "response_key"]

"""A rater's own ratings of an opened packet, kept in the log on the rater's workstation until exported.

The packet stays encrypted on disk; only the ratings are written here (``packet_responses``: study uuid,
rater, answer uid, score, flag, comment, corrected answer, when), never the note text. Each rating is one
transaction (``write_session``: ``BEGIN IMMEDIATE`` ... ``COMMIT``), so an app killed while it saves leaves the
whole rating or none of it, never half a row; rating an answer again replaces its row (the responses file
carries the current rating; the coordinator's log keeps the history of what was imported).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from app.core.errors import UsageError
from app.core.packets import ResponseRow, check_score, utc_iso
from app.store.base import LogBase
from app.store.models import PacketResponse
from app.store.ratings import rating_problem


class PacketProgressMixin(LogBase):
    def save_packet_response(self, study_uuid: str, rater: str, row: ResponseRow) -> None:
        """Save (or replace) ``rater``'s rating of one packet answer, atomically."""
        try:
            score = check_score(row.score)
            at = datetime.fromisoformat(utc_iso(row.rated_at))
        except ValueError as e:
            raise UsageError(f"rating of answer {row.answer_uid}: {e}") from None
        if not (study_uuid and rater and row.answer_uid):
            raise UsageError("a packet rating needs the study, the rater and the answer")
        if (problem := rating_problem(score, bool(row.hallucination), row.comment)) is not None:
            raise UsageError(f"rating of answer {row.answer_uid}: {problem}")  # refused here, not at import
        key = (PacketResponse.study_uuid == study_uuid, PacketResponse.rater == rater)
        with self.write_session() as s:
            s.execute(delete(PacketResponse).where(*key, PacketResponse.answer_uid == row.answer_uid))
            s.add(
                PacketResponse(
                    study_uuid=study_uuid,
                    rater=rater,
                    answer_uid=row.answer_uid,
                    score=score,
                    hallucination=bool(row.hallucination),
                    comment=row.comment or None,
                    corrected_answer=row.corrected_answer or None,
                    rated_at=at,
                )
            )

    def packet_responses(self, study_uuid: str, rater: str) -> list[ResponseRow]:
        """``rater``'s saved ratings for the study's packet (for resuming and for the responses file)."""
        stmt = (
            select(PacketResponse)
            .where(PacketResponse.study_uuid == study_uuid, PacketResponse.rater == rater)
            .order_by(PacketResponse.rated_at, PacketResponse.answer_uid)
        )
        with self.read_session() as s:
            return [
                ResponseRow(
                    answer_uid=r.answer_uid,
                    score=r.score,
                    hallucination=r.hallucination,
                    comment=r.comment,
                    corrected_answer=r.corrected_answer,
                    rated_at=r.rated_at.isoformat(timespec="microseconds"),
                )
                for r in s.scalars(stmt)
            ]

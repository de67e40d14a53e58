"""Evaluation studies in the log: creating one (items, arms, raters, the seeded assignment), what is left to
generate, a rater's packet items, and a study's ratings as plain data (``StudyData``) for the statistics.

Ratings, imports and adjudication are in ``study_rate.py`` (the mixin below includes it). A study answer is
an ordinary run and a study rating an ordinary rating, so ``log export`` and ``log stats`` see them.
"""

from __future__ import annotations

import uuid as uuidlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.core.errors import StoreError, UsageError
from app.store.models import (
    STUDY_BLINDING,
    Adjudication,
    Model,
    Note,
    Rater,
    Rating,
    Run,
    Study,
    StudyAnswer,
    StudyArm,
    StudyAssignment,
    StudyItem,
    StudyRater,
    StudyRating,
    utcnow,
)
from app.store.rules import study_failed, study_failure
from app.store.study_assign import assign, check_design
from app.store.study_data import Adjudicated, JudgeScore, RatedAnswer, StudyData
from app.store.study_rate import StudyRatingMixin

if TYPE_CHECKING:
    from app.core.packets import PacketItem

MAX_NAME_CHARS = 128
"""The study name column's width (``studies.name``)."""


@dataclass(frozen=True)
class StudyInfo:
    """A study as the CLI and the screens list it (no note text, no scores)."""

    id: int
    uuid: str
    name: str
    seed: int
    overlap: int
    calibration: int
    blinding: str
    rubric_version: str
    raters: tuple[str, ...]
    adjudicators: tuple[str, ...]
    arms: tuple[str, ...]
    """Arm labels, in creation order."""
    items: int
    answers: int
    generated: int = 0
    """Answers whose run has ended (the rest are still to be generated)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """How answers are generated (sampling flags, endpoint, the items file's name and sha256)."""


@dataclass(frozen=True)
class NewStudyItem:
    key: str
    """The item's id in the items file (unique in the study)."""
    note: str
    task: str
    """The task's full name."""
    instruction: str


@dataclass(frozen=True)
class NewStudyArm:
    label: str
    """The coordinator's name for the arm (unique in the study; never shown to a blinded rater)."""
    model_sha256: str | None = None
    endpoint: str | None = None
    served_model: str | None = None


@dataclass(frozen=True)
class NewStudy:
    """What ``create_study`` records, checked there before anything is written."""

    name: str
    items: tuple[NewStudyItem, ...]
    arms: tuple[NewStudyArm, ...]
    raters: tuple[str, ...]
    overlap: int
    calibration: int
    seed: int
    blinding: str = "blind"
    adjudicators: tuple[str, ...] = ()
    rubric_version: str = "1"
    settings: dict[str, Any] = field(default_factory=dict)
    runs: dict[tuple[int, int], int] = field(default_factory=dict)
    """(item index, arm index) -> an existing run's id (a study made from logged runs)."""

    def problems(self) -> list[str]:
        out = check_design(len(self.items), len(self.arms), self.raters, self.overlap, self.calibration)
        if not self.name.strip() or len(self.name) > MAX_NAME_CHARS:
            out.append(f"a study name is 1 to {MAX_NAME_CHARS} characters")
        if self.blinding not in STUDY_BLINDING:
            out.append(f"blinding is one of {', '.join(STUDY_BLINDING)}, not {self.blinding!r}")
        if len({a.label for a in self.arms}) != len(self.arms):
            out.append("two arms have the same label")
        if len({i.key for i in self.items}) != len(self.items):
            out.append("two items have the same id")
        return out


@dataclass(frozen=True)
class LoggedRun:
    """A run that may become a study answer (``study create --from-batch``)."""

    id: int
    started_at: Any
    note: str
    task: str
    instruction: str
    model_sha256: str
    model_name: str
    model_file: str
    endpoint: str | None
    served_model: str | None


@dataclass(frozen=True)
class PendingAnswer:
    """A study answer still to be generated (no run yet, or its run never ended)."""

    uid: str
    arm: str
    model_sha256: str | None
    endpoint: str | None
    served_model: str | None
    item_key: str
    note: str
    task: str
    instruction: str


class StudiesMixin(StudyRatingMixin):
    """Studies: create, list, what is left to generate, a rater's packet, and the study as data."""

    def create_study(self, spec: NewStudy) -> StudyInfo:
        """Record a study with its assignment (UsageError listing every problem; nothing is written then)."""
        if problems := spec.problems():
            raise UsageError("; ".join(problems))
        if not self.store_note_text:
            raise UsageError(
                "this log keeps note hashes only (store_note_text is off): a study needs its notes' text to "
                "generate answers and write packets"
            )
        plan = assign(len(spec.items), len(spec.arms), spec.raters, spec.overlap, spec.calibration, spec.seed)
        with self.write_session() as s:
            if s.scalar(select(Study.id).where(Study.name == spec.name)) is not None:
                raise UsageError(f"a study named {spec.name!r} exists already")
            st = Study(
                uuid=str(uuidlib.uuid4()),
                name=spec.name,
                seed=spec.seed,
                overlap=spec.overlap,
                calibration=spec.calibration,
                blinding=spec.blinding,
                rubric_version=spec.rubric_version,
                settings=dict(spec.settings),
                created_at=utcnow(),
            )
            s.add(st)
            s.flush()
            rater_ids = {r: self._rater_id(s, r, "human") for r in spec.raters}
            for name, role in [*((r, "rater") for r in spec.raters), *((a, "adjudicator") for a in spec.adjudicators)]:
                s.add(StudyRater(study_id=st.id, rater_id=self._rater_id(s, name, "human"), role=role))
            arms = [StudyArm(study_id=st.id, **vars(a)) for a in spec.arms]
            items = [
                StudyItem(
                    study_id=st.id,
                    item_key=it.key,
                    note_id=self._note_id(s, it.note),
                    task=it.task,
                    instruction=it.instruction,
                    calibration=i in plan.calibration,
                )
                for i, it in enumerate(spec.items)
            ]
            s.add_all(arms + items)
            s.flush()
            answers = {
                (i, a): StudyAnswer(
                    uid=str(uuidlib.uuid4()), item_id=item.id, arm_id=arm.id, run_id=spec.runs.get((i, a))
                )
                for i, item in enumerate(items)
                for a, arm in enumerate(arms)
            }
            s.add_all(answers.values())
            s.flush()
            for rater, order in plan.order.items():
                s.add_all(
                    StudyAssignment(answer_id=answers[key].id, rater_id=rater_ids[rater], position=pos)
                    for pos, key in enumerate(order)
                )
            s.flush()
            return self._info(s, st)

    def add_adjudicator(self, study: str, name: str) -> StudyInfo:
        """Register a person as an adjudicator of an existing study (assignments are unchanged: adjudicators
        rate nothing, they record final scores); adding one twice changes nothing."""
        with self.write_session() as s:
            st = self._study_row(s, study)
            rid = self._rater_id(s, name, "human")
            key = {"study_id": st.id, "rater_id": rid, "role": "adjudicator"}
            if s.get(StudyRater, key) is None:
                s.add(StudyRater(**key))
                s.flush()
            return self._info(s, st)

    def studies(self) -> list[StudyInfo]:
        with self.read_session() as s:
            return [self._info(s, st) for st in s.scalars(select(Study).order_by(Study.created_at, Study.id))]

    def study(self, name_or_uuid: str) -> StudyInfo:
        """One study by name or uuid; UsageError naming the known studies when there is none."""
        with self.read_session() as s:
            return self._info(s, self._study_row(s, name_or_uuid))

    def pending_study_answers(self, study: str) -> list[PendingAnswer]:
        """Answers still to generate, arm by arm (each arm's model is loaded once), items in study order."""
        with self.read_session() as s:
            st = self._study_row(s, study)
            rows = s.execute(
                select(StudyAnswer.uid, StudyArm, StudyItem.item_key, Note.text, StudyItem.task, StudyItem.instruction)
                .join(StudyArm, StudyArm.id == StudyAnswer.arm_id)
                .join(StudyItem, StudyItem.id == StudyAnswer.item_id)
                .join(Note, Note.id == StudyItem.note_id)
                .outerjoin(Run, Run.id == StudyAnswer.run_id)
                .where(StudyItem.study_id == st.id, or_(Run.id.is_(None), Run.status != "finished"))
                .order_by(StudyArm.id, StudyItem.id)
            ).all()
        if any(r.text is None for r in rows):
            raise StoreError(f"study {st.name!r}: a note's text is not in the log (hash-only storage)")
        return [
            PendingAnswer(
                r.uid,
                r.StudyArm.label,
                r.StudyArm.model_sha256,
                r.StudyArm.endpoint,
                r.StudyArm.served_model,
                r.item_key,
                r.text,
                r.task,
                r.instruction,
            )
            for r in rows
        ]

    def runs_for_study(self, batch_ids: Sequence[int]) -> list[LoggedRun]:
        """The ended runs of these batches, oldest first (a study made from logged runs)."""
        with self.read_session() as s:
            rows = s.execute(
                select(
                    Run.id,
                    Run.started_at,
                    Note.text,
                    Run.task,
                    Run.instruction,
                    Model.sha256,
                    Model.name,
                    Model.file_name,
                    Run.endpoint,
                    Run.served_model,
                )
                .join(Note, Note.id == Run.note_id)
                .join(Model, Model.id == Run.model_id)
                .where(Run.batch_id.in_(list(batch_ids)), Run.status == "finished")
                .order_by(Run.started_at, Run.id)
            ).all()
        if any(r.text is None for r in rows):
            raise UsageError("these runs' notes are kept as hashes only: a study needs the notes' text")
        return [LoggedRun(*r) for r in rows]

    def link_study_answer(self, answer_uid: str, run: int | str) -> None:
        """Record ``run`` (id or uuid) as the answer's run (the generation of a pending answer)."""
        with self.write_session() as s:
            rid = self._run_id(s, run)
            answer = s.scalar(select(StudyAnswer).where(StudyAnswer.uid == answer_uid))
            if answer is None:
                raise UsageError(f"no study answer {answer_uid[:40]!r}")
            answer.run_id = rid

    def packet_items(self, study: str, rater: str) -> list[PacketItem]:
        """The rater's assigned answers in their order, with what the packet shows (app.core.packets)."""
        from app.core.packets import PacketItem

        return [PacketItem(**row) for row in self.packet_rows(study, rater)]

    def packet_rows(self, study: str, rater: str) -> list[dict[str, Any]]:
        """``packet_items`` as plain dicts (the fields of ``app.core.packets.PacketItem``)."""
        with self.read_session() as s:
            st = self._study_row(s, study)
            rater_id = self._member_id(s, st, rater, "rater")
            rows = s.execute(
                select(
                    StudyAnswer.uid,
                    StudyItem.item_key,
                    StudyItem.task,
                    StudyItem.instruction,
                    Note.text,
                    Run.status,
                    Run.finish_reason,
                    Run.answer,
                    StudyAssignment.position,
                )
                .join(StudyAnswer, StudyAnswer.id == StudyAssignment.answer_id)
                .join(StudyItem, StudyItem.id == StudyAnswer.item_id)
                .join(Note, Note.id == StudyItem.note_id)
                .outerjoin(Run, Run.id == StudyAnswer.run_id)
                .where(StudyAssignment.rater_id == rater_id, StudyItem.study_id == st.id)
                .order_by(StudyAssignment.position)
            ).all()
        missing = sum(r.status != "finished" for r in rows)
        if missing:
            raise UsageError(
                f"study {st.name!r}: {missing} of {rater!r}'s answers are not generated yet; run "
                f"`asclepius study generate {st.name}` first"
            )
        if any(r.text is None for r in rows):
            raise StoreError(f"study {st.name!r}: a note's text is not in the log (hash-only storage)")
        return [
            {
                "answer_uid": r.uid,
                "item_key": r.item_key,
                "task": r.task,
                "instruction": r.instruction,
                "note": r.text,
                "answer": r.answer or "",
                "position": r.position,
                "failure": study_failure(r.finish_reason, r.answer),
            }
            for r in rows
        ]

    def study_data(self, study: str) -> StudyData:
        """The study's current ratings (each rater's latest per answer), judge scores, adjudications."""
        with self.read_session() as s:
            st = self._study_row(s, study)
            answers = {
                r.id: r
                for r in s.execute(
                    select(
                        StudyAnswer.id,
                        StudyAnswer.uid,
                        StudyAnswer.run_id,
                        StudyArm.label,
                        StudyItem.item_key,
                        StudyItem.task,
                        StudyItem.calibration,
                        Run.finish_reason,
                        Run.answer,
                    )
                    .join(StudyArm, StudyArm.id == StudyAnswer.arm_id)
                    .join(StudyItem, StudyItem.id == StudyAnswer.item_id)
                    .outerjoin(Run, Run.id == StudyAnswer.run_id)
                    .where(StudyItem.study_id == st.id)
                )
            }
            latest: dict[tuple[int, str], Any] = {}
            for r in s.execute(
                select(StudyRating.answer_id, Rater.name, Rating.score, Rating.hallucination)
                .join(Rating, Rating.id == StudyRating.rating_id)
                .join(Rater, Rater.id == Rating.rater_id)
                .where(StudyRating.answer_id.in_(answers))
                .order_by(StudyRating.rated_at, StudyRating.rating_id)
            ):
                latest[(r.answer_id, r.name)] = r  # ordered by time: the last one wins
            by_run = {a.run_id: a for a in answers.values() if a.run_id is not None}
            judge = [
                JudgeScore(by_run[r.run_id].uid, r.name, float(r.score))
                for r in s.execute(
                    select(Rating.run_id, Rater.name, Rating.score)
                    .join(Rater, Rater.id == Rating.rater_id)
                    .where(Rating.run_id.in_(by_run), Rating.is_current.is_(True), Rater.kind == "judge")
                )
            ]
            adjudicated = [
                Adjudicated(answers[r.answer_id].uid, r.name, r.score, r.reason)
                for r in s.execute(
                    select(Adjudication.answer_id, Rater.name, Adjudication.score, Adjudication.reason)
                    .join(Rater, Rater.id == Adjudication.adjudicator_id)
                    .where(Adjudication.answer_id.in_(answers), Adjudication.is_current.is_(True))
                )
            ]
            assigned = Counter(
                s.scalars(
                    select(Rater.name)
                    .join(StudyAssignment, StudyAssignment.rater_id == Rater.id)
                    .where(StudyAssignment.answer_id.in_(answers))
                )
            )
            info = self._info(s, st)
        ratings = []
        for (answer_id, rater), r in sorted(latest.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            a = answers[answer_id]
            ratings.append(
                RatedAnswer(
                    a.item_key,
                    a.task,
                    a.label,
                    a.uid,
                    rater,
                    r.score,
                    bool(r.hallucination),
                    bool(a.calibration),
                    study_failed(a.finish_reason, a.answer),
                )
            )
        return StudyData(
            name=st.name,
            seed=st.seed,
            overlap=st.overlap,
            blinding=st.blinding,
            arms=info.arms,
            raters=info.raters,
            tasks=tuple(sorted({a.task for a in answers.values()})),
            ratings=tuple(ratings),
            judge=tuple(judge),
            adjudications=tuple(adjudicated),
            assigned={r: assigned.get(r, 0) for r in info.raters},
            answers_per_arm=dict(Counter(a.label for a in answers.values())),
        )

    # -- helpers --------------------------------------------------------------------------------------
    def _info(self, s: Session, st: Study) -> StudyInfo:
        members = s.execute(
            select(Rater.name, StudyRater.role)
            .join(StudyRater, StudyRater.rater_id == Rater.id)
            .where(StudyRater.study_id == st.id)
            .order_by(Rater.name)
        ).all()
        arms = tuple(s.scalars(select(StudyArm.label).where(StudyArm.study_id == st.id).order_by(StudyArm.id)))
        items = s.scalar(select(func.count()).select_from(StudyItem).where(StudyItem.study_id == st.id)) or 0
        states = Counter(
            s.scalars(
                select(Run.status)
                .select_from(StudyAnswer)
                .join(StudyItem, StudyItem.id == StudyAnswer.item_id)
                .outerjoin(Run, Run.id == StudyAnswer.run_id)
                .where(StudyItem.study_id == st.id)
            )
        )
        return StudyInfo(
            id=st.id,
            uuid=st.uuid,
            name=st.name,
            seed=st.seed,
            overlap=st.overlap,
            calibration=st.calibration,
            blinding=st.blinding,
            rubric_version=st.rubric_version,
            raters=tuple(m.name for m in members if m.role == "rater"),
            adjudicators=tuple(m.name for m in members if m.role == "adjudicator"),
            arms=arms,
            items=items,
            answers=sum(states.values()),
            generated=states.get("finished", 0),
            settings=dict(st.settings or {}),
        )


__all__ = ["LoggedRun", "NewStudy", "NewStudyArm", "NewStudyItem", "PendingAnswer", "StudiesMixin", "StudyInfo"]

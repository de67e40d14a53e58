"""The evaluation log's tables, in SQLAlchemy 2.0 typed style.

These classes describe the schema at the newest migration (``app/store/migrations/versions``). The
migrations, not ``metadata.create_all``, build and change real databases; a test compares the two so they
cannot drift.

Timestamps are timezone-aware UTC datetimes, stored as ISO 8601 text with a fixed width so that text order
is time order (SQLite has no datetime type and SQLAlchemy's default drops the time zone).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Constraint names are part of the schema: Alembic batch migrations on SQLite need them to drop or alter.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_STATUSES = ("started", "finished", "interrupted")
"""``started``: inserted before the engine runs; ``finished``: the engine returned (whatever the finish
reason); ``interrupted``: the process that started it died before finishing (see ``db.mark_interrupted``)."""
RATER_KINDS = ("human", "judge")
"""A rating's source: a person, or a named automated judge (an LLM judge run by training/)."""
CHOICES = ("A", "B", "tie", "both_bad")
SIDES = ("left", "right")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetime <-> ``2026-11-24T08:05:00.000000+00:00`` (always 32 characters)."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the log stores timezone-aware UTC times only")
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def process_result_value(self, value: str | None, dialect: Dialect) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    chars: Mapped[int]
    text: Mapped[str | None] = mapped_column(Text)
    """NULL when the user chose hash-only storage (``AppConfig.store_note_text = False``)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # revision 0008
    label: Mapped[str | None] = mapped_column(String(200))
    """The name a user gave the note (History shows it instead of the first line); NULL: none given."""


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    file_name: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    architecture: Mapped[str] = mapped_column(String(64))
    quant: Mapped[str] = mapped_column(String(32))
    parameter_count: Mapped[int | None]
    context_length: Mapped[int]
    size_bytes: Mapped[int]
    prompt_style: Mapped[str] = mapped_column(String(64))
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    provenance: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)


class Batch(Base):
    """One ``asclepius batch`` invocation (added in revision 0002)."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    input_name: Mapped[str] = mapped_column(String(255))
    """The input file's name only (its directory may itself say something about a patient)."""
    input_sha256: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    summary: Mapped[dict[str, Any] | None]


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("status IN ('started', 'finished', 'interrupted')", name="status"),
        # The latest runs of a task, newest first, is the app's main list: one index serves it.
        Index("ix_runs_task_started_at", "task", "started_at"),
        Index("ix_runs_started_at", "started_at"),
        Index("ix_runs_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="started")
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    task: Mapped[str] = mapped_column(String(64))
    instruction: Mapped[str] = mapped_column(Text)
    # sampling, known when the run starts
    max_tokens: Mapped[int]
    temperature: Mapped[float] = mapped_column(Float)
    top_p: Mapped[float] = mapped_column(Float)
    top_k: Mapped[int]
    min_p: Mapped[float] = mapped_column(Float)
    repeat_penalty: Mapped[float] = mapped_column(Float)
    seed: Mapped[int]
    requested_prompt_style: Mapped[str | None] = mapped_column(String(64))
    truncate_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    params_hash: Mapped[str] = mapped_column(String(64))
    """sha256 of every setting that shapes the answer; runs with equal model and params are comparable."""
    pid: Mapped[int | None]
    host: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    # known when it finishes
    finished_at: Mapped[datetime | None]
    answer: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    engine: Mapped[str | None] = mapped_column(String(64))
    app_version: Mapped[str | None] = mapped_column(String(32))
    presets_version: Mapped[str | None] = mapped_column(String(32))
    prompt_style: Mapped[str | None] = mapped_column(String(64))
    n_ctx: Mapped[int | None]
    n_threads: Mapped[int | None]
    prompt_tokens: Mapped[int | None]
    reused_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    ttft_s: Mapped[float | None] = mapped_column(Float)
    decode_tokens_per_s: Mapped[float | None] = mapped_column(Float)
    total_s: Mapped[float | None] = mapped_column(Float)
    truncation: Mapped[dict[str, Any] | None]
    grounding: Mapped[dict[str, Any] | None]
    # revision 0002
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)
    resume_key: Mapped[str | None] = mapped_column(String(64), index=True)
    """sha256 of (model, params, note, task, instruction, batch item id): what a resumed batch skips."""
    # revision 0003: runs answered by a remote server (NULL for local runs)
    endpoint: Mapped[str | None] = mapped_column(String(255))
    """The server's base URL without userinfo, query or fragment."""
    served_model: Mapped[str | None] = mapped_column(String(255))
    reported_model: Mapped[str | None] = mapped_column(String(255))
    system_fingerprint: Mapped[str | None] = mapped_column(String(128))
    usage_reported: Mapped[bool | None] = mapped_column(Boolean)

    note: Mapped[Note] = relationship(lazy="raise")
    model: Mapped[Model] = relationship(lazy="raise")


class Rater(Base):
    __tablename__ = "raters"
    __table_args__ = (CheckConstraint("kind IN ('human', 'judge')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="human")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Rating(Base):
    """A score on the 4-point rubric. Re-rating keeps the old row with ``is_current`` false (history)."""

    __tablename__ = "ratings"
    __table_args__ = (
        CheckConstraint("score BETWEEN 1 AND 4", name="score"),
        # One current rating per rater and run; any number of superseded ones.
        Index(
            "uq_ratings_current",
            "run_id",
            "rater_id",
            unique=True,
            sqlite_where=text("is_current = 1"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    score: Mapped[int] = mapped_column(Integer)
    hallucination: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str | None] = mapped_column(Text)
    corrected_answer: Mapped[str | None] = mapped_column(Text)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # revision 0007
    withdrawn_at: Mapped[datetime | None]
    """Set when the Compare vote this score was given with was undone: kept as history, never current."""


class PendingComparisonRun(Base):
    """A run of a blind comparison not voted on yet: its model stays hidden (added in revision 0004)."""

    __tablename__ = "pending_comparison_runs"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Comparison(Base):
    """A blinded paired judgement of two runs of the same note and instruction."""

    __tablename__ = "comparisons"
    __table_args__ = (
        CheckConstraint("choice IN ('A', 'B', 'tie', 'both_bad')", name="choice"),
        CheckConstraint("a_side IN ('left', 'right')", name="a_side"),
        CheckConstraint("run_a_id != run_b_id", name="distinct_runs"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_a_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    run_b_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    a_side: Mapped[str] = mapped_column(String(8))
    """Where run A was shown; B was on the other side (a position bias is measurable from this)."""
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), index=True)
    choice: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # revision 0007
    blind: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("1"))
    """False for a vote cast after the rater saw which model wrote which answer (a vote again after Undo):
    win rates count blind votes only."""
    withdrawn_at: Mapped[datetime | None]
    """Set when the vote was undone: kept, but no longer counted."""


# -- evaluation studies (revision 0005) ------------------------------------------------------------------
STUDY_BLINDING = ("blind", "open")
"""``blind``: raters never see which arm (model) produced an answer, nor other raters' scores; ``open``:
the arm is shown (a pilot), other raters' scores still are not."""


class Study(Base):
    """An evaluation study: items rated on the rubric by registered raters, each answer by ``overlap``
    raters, a calibration subset by everyone, assignments fixed by ``seed``."""

    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint("overlap >= 1", name="overlap"),
        CheckConstraint("calibration >= 0", name="calibration"),
        CheckConstraint("blinding IN ('blind', 'open')", name="blinding"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    """Names the study in packets and responses (a packet for another study is refused by it)."""
    name: Mapped[str] = mapped_column(String(128), unique=True)
    seed: Mapped[int]
    overlap: Mapped[int]
    """k: how many raters rate each answer (calibration answers: every rater)."""
    calibration: Mapped[int]
    """How many items form the calibration subset rated by everyone."""
    blinding: Mapped[str] = mapped_column(String(8), default="blind")
    rubric_version: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """How answers were generated (sampling, endpoint without credentials, items file name and sha256)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


STUDY_ROLES = ("rater", "adjudicator")


class StudyRater(Base):
    """A person registered for a study (the rater list: no free-text names in a study), in one role.

    The role is part of the key: an adjudicator may also be one of the raters (a small team), and each
    role is checked on its own (rating needs ``rater``, a final score needs ``adjudicator``)."""

    __tablename__ = "study_raters"
    __table_args__ = (CheckConstraint("role IN ('rater', 'adjudicator')", name="role"),)

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True, default="rater")
    """``rater`` or ``adjudicator``."""


class StudyArm(Base):
    """One arm: a model (by sha256) or an endpoint's served model, or existing runs given at creation."""

    __tablename__ = "study_arms"
    __table_args__ = (Index("uq_study_arms_label", "study_id", "label", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(128))
    """What the coordinator calls it (the model's name); never shown to a blinded rater."""
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str | None] = mapped_column(String(255))
    served_model: Mapped[str | None] = mapped_column(String(255))


class StudyItem(Base):
    """One item: a note, a task and an instruction (the note lives in ``notes``, like a run's)."""

    __tablename__ = "study_items"
    __table_args__ = (Index("uq_study_items_key", "study_id", "item_key", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    item_key: Mapped[str] = mapped_column(String(128))
    """The item's id in the items file (or the run's uuid for a study made from logged runs)."""
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id"), index=True)
    task: Mapped[str] = mapped_column(String(64))
    instruction: Mapped[str] = mapped_column(Text)
    calibration: Mapped[bool] = mapped_column(Boolean, default=False)


class StudyAnswer(Base):
    """An arm's answer to an item: a run of the log, named in packets by an opaque ``uid``."""

    __tablename__ = "study_answers"
    __table_args__ = (Index("uq_study_answers_item_arm", "item_id", "arm_id", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    """Random; says nothing about the arm (packets and responses use it, never the run's uuid)."""
    item_id: Mapped[int] = mapped_column(ForeignKey("study_items.id", ondelete="CASCADE"), index=True)
    arm_id: Mapped[int] = mapped_column(ForeignKey("study_arms.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    """None until the arm's answer has been generated."""


class StudyAssignment(Base):
    """Which rater rates which answer, in which order (deterministic from the study's seed)."""

    __tablename__ = "study_assignments"
    # A rater's packet is read in their order: one index serves it.
    __table_args__ = (Index("ix_study_assignments_rater_id_position", "rater_id", "position"),)

    answer_id: Mapped[int] = mapped_column(ForeignKey("study_answers.id", ondelete="CASCADE"), primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id"), primary_key=True)
    position: Mapped[int]
    """Order in the rater's packet (randomized per rater; arms of one item in random order)."""


class StudyRating(Base):
    """Links a rating to the study answer and the response it came from: importing the same response
    again finds it here and changes nothing."""

    __tablename__ = "study_ratings"

    rating_id: Mapped[int] = mapped_column(ForeignKey("ratings.id", ondelete="CASCADE"), primary_key=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("study_answers.id", ondelete="CASCADE"), index=True)
    response_key: Mapped[str] = mapped_column(String(64), unique=True)
    """sha256 of (study uuid, rater, answer uid, rated_at, score, flags, comment, corrected answer)."""
    rated_at: Mapped[datetime]
    """When the rater rated it on their machine (a later one supersedes an earlier one, item by item)."""


class Adjudication(Base):
    """A final score for a study answer by a named adjudicator, with the reason; ratings stay as they were."""

    __tablename__ = "adjudications"
    __table_args__ = (
        CheckConstraint("score BETWEEN 1 AND 4", name="score"),
        # One current final score per answer; a new adjudication keeps the earlier ones as history.
        Index("uq_adjudications_current", "answer_id", unique=True, sqlite_where=text("is_current = 1")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    answer_id: Mapped[int] = mapped_column(ForeignKey("study_answers.id", ondelete="CASCADE"), index=True)
    adjudicator_id: Mapped[int] = mapped_column(ForeignKey("raters.id"))
    score: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PacketResponse(Base):
    """A rater's rating of a packet's answer, kept on the rater's own machine until exported as a sealed
    responses file (the packet's note text is never copied here: it stays in the encrypted packet)."""

    __tablename__ = "packet_responses"
    __table_args__ = (CheckConstraint("score BETWEEN 1 AND 4", name="score"),)

    study_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    rater: Mapped[str] = mapped_column(String(128), primary_key=True)
    answer_uid: Mapped[str] = mapped_column(String(36), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    hallucination: Mapped[bool] = mapped_column(Boolean, default=False)
    comment: Mapped[str | None] = mapped_column(Text)
    corrected_answer: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- task evaluation against gold (revision 0006) ------------------------------------------------------------
class EvalScore(Base):
    """One logged answer scored against a suite's gold annotation (``asclepius eval run``): the score sits
    beside the run, so the answer's provenance is the run's own and a rescore replaces the row."""

    __tablename__ = "eval_scores"
    __table_args__ = (Index("uq_eval_scores_run_id_suite", "run_id", "suite", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    """The run that gave the answer (model, sampling, prompt, timings: all there)."""
    suite: Mapped[str] = mapped_column(String(128), index=True)
    """The suite's name (a built-in such as ``ncbi-disease``, or a suite file's own name)."""
    item_id: Mapped[str] = mapped_column(String(512))
    """The item within the suite (the PMID for PubTator and PubMedQA, the document id for BioC)."""
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The item's metric values (``ItemScore.metrics``)."""
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    """tp/fp/fn and the like (``ItemScore.counts``): what corpus-level micro figures are summed from."""
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    """What matched and what did not (``ItemScore.details``)."""
    scored_at: Mapped[datetime] = mapped_column(default=utcnow)

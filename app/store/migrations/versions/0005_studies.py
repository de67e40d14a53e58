"""Evaluation studies: a study's raters, arms, items, answers and assignments; ratings given in a study;
adjudications; and, on a rater's own machine, the ratings typed into an opened packet.

A study answer is an ordinary run of the log (``study_answers.run_id``) and a study rating an ordinary
rating (``study_ratings.rating_id``), so exports and statistics see them as any other; the study tables
only add what a study needs (who rates what, in which order, from which response file).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.String(32)  # app.store.models.UTCDateTime


def _fk(table: str, column: str, target: str, ondelete: str | None = "CASCADE") -> sa.ForeignKeyConstraint:
    """A foreign key named as the models' naming convention names it (batch migrations need the name)."""
    ref = target.split(".")[0]
    return sa.ForeignKeyConstraint([column], [target], name=f"fk_{table}_{column}_{ref}", ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("overlap", sa.Integer(), nullable=False),
        sa.Column("calibration", sa.Integer(), nullable=False),
        sa.Column("blinding", sa.String(8), nullable=False),
        sa.Column("rubric_version", sa.String(32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("overlap >= 1", name="ck_studies_overlap"),
        sa.CheckConstraint("calibration >= 0", name="ck_studies_calibration"),
        sa.CheckConstraint("blinding IN ('blind', 'open')", name="ck_studies_blinding"),
        sa.PrimaryKeyConstraint("id", name="pk_studies"),
        sa.UniqueConstraint("uuid", name="uq_studies_uuid"),
        sa.UniqueConstraint("name", name="uq_studies_name"),
    )
    op.create_table(
        "study_raters",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.CheckConstraint("role IN ('rater', 'adjudicator')", name="ck_study_raters_role"),
        _fk("study_raters", "study_id", "studies.id"),
        _fk("study_raters", "rater_id", "raters.id", None),
        sa.PrimaryKeyConstraint("study_id", "rater_id", "role", name="pk_study_raters"),
    )
    op.create_table(
        "study_arms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=True),
        sa.Column("endpoint", sa.String(255), nullable=True),
        sa.Column("served_model", sa.String(255), nullable=True),
        _fk("study_arms", "study_id", "studies.id"),
        sa.PrimaryKeyConstraint("id", name="pk_study_arms"),
    )
    op.create_index("ix_study_arms_study_id", "study_arms", ["study_id"])
    op.create_index("uq_study_arms_label", "study_arms", ["study_id", "label"], unique=True)
    op.create_table(
        "study_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(128), nullable=False),
        sa.Column("note_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=False),
        sa.Column("calibration", sa.Boolean(), nullable=False),
        _fk("study_items", "study_id", "studies.id"),
        _fk("study_items", "note_id", "notes.id", None),
        sa.PrimaryKeyConstraint("id", name="pk_study_items"),
    )
    op.create_index("ix_study_items_study_id", "study_items", ["study_id"])
    op.create_index("ix_study_items_note_id", "study_items", ["note_id"])
    op.create_index("uq_study_items_key", "study_items", ["study_id", "item_key"], unique=True)
    op.create_table(
        "study_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("arm_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        _fk("study_answers", "item_id", "study_items.id"),
        _fk("study_answers", "arm_id", "study_arms.id"),
        _fk("study_answers", "run_id", "runs.id", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_study_answers"),
        sa.UniqueConstraint("uid", name="uq_study_answers_uid"),
    )
    op.create_index("ix_study_answers_item_id", "study_answers", ["item_id"])
    op.create_index("ix_study_answers_arm_id", "study_answers", ["arm_id"])
    op.create_index("ix_study_answers_run_id", "study_answers", ["run_id"])
    op.create_index("uq_study_answers_item_arm", "study_answers", ["item_id", "arm_id"], unique=True)
    op.create_table(
        "study_assignments",
        sa.Column("answer_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        _fk("study_assignments", "answer_id", "study_answers.id"),
        _fk("study_assignments", "rater_id", "raters.id", None),
        sa.PrimaryKeyConstraint("answer_id", "rater_id", name="pk_study_assignments"),
    )
    op.create_index("ix_study_assignments_rater_id_position", "study_assignments", ["rater_id", "position"])
    op.create_table(
        "study_ratings",
        sa.Column("rating_id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sa.Integer(), nullable=False),
        sa.Column("response_key", sa.String(64), nullable=False),
        sa.Column("rated_at", TS, nullable=False),
        _fk("study_ratings", "rating_id", "ratings.id"),
        _fk("study_ratings", "answer_id", "study_answers.id"),
        sa.PrimaryKeyConstraint("rating_id", name="pk_study_ratings"),
        sa.UniqueConstraint("response_key", name="uq_study_ratings_response_key"),
    )
    op.create_index("ix_study_ratings_answer_id", "study_ratings", ["answer_id"])
    op.create_table(
        "adjudications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sa.Integer(), nullable=False),
        sa.Column("adjudicator_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 4", name="ck_adjudications_score"),
        _fk("adjudications", "answer_id", "study_answers.id"),
        _fk("adjudications", "adjudicator_id", "raters.id", None),
        sa.PrimaryKeyConstraint("id", name="pk_adjudications"),
    )
    op.create_index("ix_adjudications_answer_id", "adjudications", ["answer_id"])
    op.create_index(
        "uq_adjudications_current", "adjudications", ["answer_id"], unique=True, sqlite_where=sa.text("is_current = 1")
    )
    op.create_table(
        "packet_responses",
        sa.Column("study_uuid", sa.String(36), nullable=False),
        sa.Column("rater", sa.String(128), nullable=False),
        sa.Column("answer_uid", sa.String(36), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("hallucination", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("corrected_answer", sa.Text(), nullable=True),
        sa.Column("rated_at", TS, nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 4", name="ck_packet_responses_score"),
        sa.PrimaryKeyConstraint("study_uuid", "rater", "answer_uid", name="pk_packet_responses"),
    )


def downgrade() -> None:
    for table in (
        "packet_responses",
        "adjudications",
        "study_ratings",
        "study_assignments",
        "study_answers",
        "study_items",
        "study_arms",
        "study_raters",
        "studies",
    ):
        op.drop_table(table)

"""Initial schema: notes, models, runs, raters, ratings, comparisons.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Timestamps are ISO 8601 UTC text of fixed width (app.store.models.UTCDateTime).
TS = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
        sa.UniqueConstraint("sha256", name="uq_notes_sha256"),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("architecture", sa.String(64), nullable=False),
        sa.Column("quant", sa.String(32), nullable=False),
        sa.Column("parameter_count", sa.Integer(), nullable=True),
        sa.Column("context_length", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("prompt_style", sa.String(64), nullable=False),
        sa.Column("is_demo", sa.Boolean(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.UniqueConstraint("sha256", name="uq_models_sha256"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=False),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=False),
        sa.Column("top_p", sa.Float(), nullable=False),
        sa.Column("top_k", sa.Integer(), nullable=False),
        sa.Column("min_p", sa.Float(), nullable=False),
        sa.Column("repeat_penalty", sa.Float(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("requested_prompt_style", sa.String(64), nullable=True),
        sa.Column("truncate_allowed", sa.Boolean(), nullable=False),
        sa.Column("params_hash", sa.String(64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("finish_reason", sa.String(16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("engine", sa.String(64), nullable=True),
        sa.Column("app_version", sa.String(32), nullable=True),
        sa.Column("presets_version", sa.String(32), nullable=True),
        sa.Column("prompt_style", sa.String(64), nullable=True),
        sa.Column("n_ctx", sa.Integer(), nullable=True),
        sa.Column("n_threads", sa.Integer(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("reused_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("ttft_s", sa.Float(), nullable=True),
        sa.Column("decode_tokens_per_s", sa.Float(), nullable=True),
        sa.Column("total_s", sa.Float(), nullable=True),
        sa.Column("truncation", sa.JSON(), nullable=True),
        sa.Column("grounding", sa.JSON(), nullable=True),
        sa.CheckConstraint("status IN ('started', 'finished', 'interrupted')", name="ck_runs_status"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_runs_model_id_models"),
        sa.ForeignKeyConstraint(["note_id"], ["notes.id"], name="fk_runs_note_id_notes"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("uuid", name="uq_runs_uuid"),
    )
    op.create_index("ix_runs_note_id", "runs", ["note_id"])
    op.create_index("ix_runs_model_id", "runs", ["model_id"])
    op.create_index("ix_runs_task_started_at", "runs", ["task", "started_at"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "raters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("kind IN ('human', 'judge')", name="ck_raters_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_raters"),
        sa.UniqueConstraint("name", name="uq_raters_name"),
    )
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("hallucination", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("corrected_answer", sa.Text(), nullable=True),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 4", name="ck_ratings_score"),
        sa.ForeignKeyConstraint(["rater_id"], ["raters.id"], name="fk_ratings_rater_id_raters"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_ratings_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_ratings"),
    )
    op.create_index("ix_ratings_run_id", "ratings", ["run_id"])
    op.create_index("ix_ratings_rater_id", "ratings", ["rater_id"])
    op.create_index(
        "uq_ratings_current",
        "ratings",
        ["run_id", "rater_id"],
        unique=True,
        sqlite_where=sa.text("is_current = 1"),
    )
    op.create_table(
        "comparisons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_a_id", sa.Integer(), nullable=False),
        sa.Column("run_b_id", sa.Integer(), nullable=False),
        sa.Column("a_side", sa.String(8), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("choice", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("choice IN ('A', 'B', 'tie', 'both_bad')", name="ck_comparisons_choice"),
        sa.CheckConstraint("a_side IN ('left', 'right')", name="ck_comparisons_a_side"),
        sa.CheckConstraint("run_a_id != run_b_id", name="ck_comparisons_distinct_runs"),
        sa.ForeignKeyConstraint(["run_a_id"], ["runs.id"], name="fk_comparisons_run_a_id_runs", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_b_id"], ["runs.id"], name="fk_comparisons_run_b_id_runs", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rater_id"], ["raters.id"], name="fk_comparisons_rater_id_raters"),
        sa.PrimaryKeyConstraint("id", name="pk_comparisons"),
    )
    op.create_index("ix_comparisons_run_a_id", "comparisons", ["run_a_id"])
    op.create_index("ix_comparisons_run_b_id", "comparisons", ["run_b_id"])
    op.create_index("ix_comparisons_rater_id", "comparisons", ["rater_id"])


def downgrade() -> None:
    op.drop_table("comparisons")
    op.drop_table("ratings")
    op.drop_table("raters")
    op.drop_table("runs")
    op.drop_table("models")
    op.drop_table("notes")

"""Task evaluation against gold: ``eval_scores`` holds one score per (run, suite), beside the run.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.String(32)  # app.store.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "eval_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("suite", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(512), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("scored_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_eval_scores_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_eval_scores"),
    )
    op.create_index("ix_eval_scores_suite", "eval_scores", ["suite"])
    op.create_index("uq_eval_scores_run_id_suite", "eval_scores", ["run_id", "suite"], unique=True)


def downgrade() -> None:
    op.drop_table("eval_scores")

"""Runs of a blind comparison whose vote is still open: History keeps their model hidden across restarts.

A row is written when a Compare run is answered and deleted by the vote (``add_comparison``, in the same
transaction); undoing the vote writes the rows again. Deleting a run deletes its row (CASCADE).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.String(32)  # app.store.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "pending_comparison_runs",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_pending_comparison_runs_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name="pk_pending_comparison_runs"),
    )


def downgrade() -> None:
    op.drop_table("pending_comparison_runs")

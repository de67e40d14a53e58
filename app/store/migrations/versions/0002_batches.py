"""Batch runs: a batches table, and on each run its batch and resume key.

A resumed batch skips an item when a finished run with the same resume key (model, sampling parameters,
note, task, instruction and item id) exists; the index makes that check one lookup.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("input_name", sa.String(255), nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
    )
    # Existing runs keep NULLs: they were not part of any batch.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("resume_key", sa.String(64), nullable=True))
        batch.create_foreign_key("fk_runs_batch_id_batches", "batches", ["batch_id"], ["id"])
        batch.create_index("ix_runs_batch_id", ["batch_id"])
        batch.create_index("ix_runs_resume_key", ["resume_key"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_resume_key")
        batch.drop_index("ix_runs_batch_id")
        batch.drop_constraint("fk_runs_batch_id_batches", type_="foreignkey")
        batch.drop_column("resume_key")
        batch.drop_column("batch_id")
    op.drop_table("batches")

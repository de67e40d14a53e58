"""Runs answered by a remote OpenAI-compatible server: where the answer came from.

``endpoint`` (base URL without credentials or query) and ``served_model`` (the name the request named)
are known when the run starts, so a failed remote run names its server too; ``reported_model`` (the reply's
``model``), ``system_fingerprint`` and ``usage_reported`` (False when the server sent no token usage and
the completion tokens were counted from the stream) when it finishes. Local runs keep NULLs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("endpoint", sa.String(255), nullable=True))
        batch.add_column(sa.Column("served_model", sa.String(255), nullable=True))
        batch.add_column(sa.Column("reported_model", sa.String(255), nullable=True))
        batch.add_column(sa.Column("system_fingerprint", sa.String(128), nullable=True))
        batch.add_column(sa.Column("usage_reported", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("usage_reported")
        batch.drop_column("system_fingerprint")
        batch.drop_column("reported_model")
        batch.drop_column("served_model")
        batch.drop_column("endpoint")

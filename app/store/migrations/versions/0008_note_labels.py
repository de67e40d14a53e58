"""A name for a note: ``notes.label``.

History lists runs by note; a note is shown by the name a user gave it, else its first line (when the log
keeps its text), else its short sha256. The name lives with the note (one row per distinct text), so every
run of that note shows it, and a hash-only log can still tell its notes apart by name. NULL: no name given.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notes") as batch:
        batch.add_column(sa.Column("label", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notes") as batch:
        batch.drop_column("label")

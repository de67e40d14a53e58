"""Withdrawn votes are kept, and a vote cast after the reveal is marked as not blind.

Undoing a Compare vote used to delete it (and the scores given with it), so a second vote, cast after the
rater had seen which model wrote which answer, looked like a blind one. Now the first vote stays with
``comparisons.withdrawn_at`` set, the scores given with it stay as history with ``ratings.withdrawn_at`` set,
and ``comparisons.blind`` is false for a vote cast once the identities were shown. Votes recorded before
this revision were all cast blind (the old undo deleted the rest): ``blind`` defaults to true.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.String(32)  # app.store.models.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("comparisons") as batch:
        batch.add_column(sa.Column("blind", sa.Boolean(), nullable=False, server_default=sa.text("1")))
        batch.add_column(sa.Column("withdrawn_at", TS, nullable=True))
    with op.batch_alter_table("ratings") as batch:
        batch.add_column(sa.Column("withdrawn_at", TS, nullable=True))


def downgrade() -> None:
    # A withdrawn vote or score did not exist before this revision: drop them, as the old undo did.
    op.execute("DELETE FROM comparisons WHERE withdrawn_at IS NOT NULL")
    op.execute("DELETE FROM ratings WHERE withdrawn_at IS NOT NULL")
    with op.batch_alter_table("ratings") as batch:
        batch.drop_column("withdrawn_at")
    with op.batch_alter_table("comparisons") as batch:
        batch.drop_column("withdrawn_at")
        batch.drop_column("blind")

"""Alembic environment: runs on a connection handed in by ``app.store.db`` (no alembic.ini, no URL).

The caller opens the connection inside an immediate (write-locked) transaction, so two processes opening
an old log at once migrate it once: the second waits, then finds it at head.
"""

from __future__ import annotations

from alembic import context

from app.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running the alembic CLI by hand
    raise RuntimeError("app.store migrations run through app.store.db.migrate(), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place: batch mode copies the table, keeping its data.
    render_as_batch=True,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()

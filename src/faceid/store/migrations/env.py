"""Alembic environment: migrations always run on a connection that the store hands over.

The store opens the transaction (and, on PostgreSQL, takes an advisory lock) before calling
Alembic, so two processes opening a new store at once migrate it exactly once.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("faceid migrations run through faceid.store.database.migrate(), not the alembic command")

context.configure(
    connection=connection,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()

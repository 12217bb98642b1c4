"""Ids are never reused: SQLite's tables whose ids leave the store get AUTOINCREMENT.

Without it SQLite hands out the largest id + 1, so deleting the newest person, face or event gave its id to
the next one, and a monitor, an integration or a browser cache holding the old id met someone else.
PostgreSQL's id columns take their values from sequences, which never go back: nothing changes there.

SQLite cannot add AUTOINCREMENT to a table; each table is rebuilt (Alembic's batch mode copies it). The
store runs migrations with foreign keys off (faceid.store.database.migrate), so dropping the old ``people``
table does not cascade to the faces and events that point at it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Fixed here rather than imported, so that later changes to the code cannot rewrite history.
TABLES = ("people", "faces", "events", "users", "api_keys", "audit_log")


def _rebuild(autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)

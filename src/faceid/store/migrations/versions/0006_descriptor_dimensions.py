"""Descriptors of any length, and a store made before fused descriptors keeps the model its faces carry.

Descriptor models differ in length: dlib's and its fine-tunes give 128 values, dlib's fused with SFace's 256
(faceid.vision.sface). On PostgreSQL the ``vector(128)`` columns become ``vector``; pgvector's HNSW index
needs a fixed dimension, so the whole-table index goes and the in-database search builds one partial index
per model instead, on ``embedding::vector(D)`` (faceid.store.index.PgvectorIndex). SQLite keeps bytes.

A NULL ``descriptor_state.active_model_id`` meant dlib's model and now means the default, the fused one. A
store that already holds faces is pinned to the model they carry, so upgrading faceid never re-embeds a
gallery by surprise; ``faceid versions activate`` moves it to the fused model when the user chooses.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Fixed here rather than imported, so that later changes to the code cannot rewrite history.
OLD_DIM = 128
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
EMBEDDING_TABLES = ("faces", "face_embeddings")


def _hnsw_indexes(bind: sa.engine.Connection) -> list[str]:
    rows = bind.execute(
        sa.text(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename IN ('faces', 'face_embeddings') AND indexdef ILIKE '%USING hnsw%'"
        )
    )
    return [str(r[0]) for r in rows]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name in _hnsw_indexes(bind):
            op.execute(f'DROP INDEX IF EXISTS "{name}"')
        for table in EMBEDDING_TABLES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN embedding TYPE vector")
    carried = bind.execute(
        sa.text("SELECT model_id, COUNT(*) AS n FROM faces GROUP BY model_id ORDER BY n DESC LIMIT 1")
    ).first()
    if carried is not None:
        bind.execute(
            sa.text("UPDATE descriptor_state SET active_model_id = :model WHERE id = 1 AND active_model_id IS NULL"),
            {"model": str(carried[0])},
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name in _hnsw_indexes(bind):
            op.execute(f'DROP INDEX IF EXISTS "{name}"')
        for table in EMBEDDING_TABLES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN embedding TYPE vector({OLD_DIM})")
        op.execute(
            "CREATE INDEX ix_faces_embedding_hnsw ON faces USING hnsw (embedding vector_l2_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
        )

"""Descriptor model versions: the versions, descriptors kept for rollback or staged for activation, the active one.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from faceid.store.types import Embedding, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Fixed here rather than imported, so that later changes to the code cannot rewrite history.
EMBEDDING_DIM = 128
MODEL_ID_MAX = 100


def upgrade() -> None:
    op.create_table(
        "descriptor_versions",
        sa.Column("model_id", sa.String(MODEL_ID_MAX), primary_key=True),
        sa.Column("parent_id", sa.String(MODEL_ID_MAX), nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("onnx_file", sa.String(500), nullable=True),
        sa.Column("onnx_sha256", sa.String(64), nullable=True),
        sa.Column("scale", sa.Float(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "face_embeddings",
        sa.Column(
            "face_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("faces.id", ondelete="CASCADE", name="fk_face_embeddings_face_id"),
            primary_key=True,
        ),
        sa.Column("model_id", sa.String(MODEL_ID_MAX), primary_key=True),
        sa.Column("embedding", Embedding(EMBEDDING_DIM), nullable=False),
    )
    op.create_index("ix_face_embeddings_model_id", "face_embeddings", ["model_id"])
    state = op.create_table(
        "descriptor_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("active_model_id", sa.String(MODEL_ID_MAX), nullable=True),
        sa.Column("previous_model_id", sa.String(MODEL_ID_MAX), nullable=True),
        sa.Column("activating_model_id", sa.String(MODEL_ID_MAX), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("switched_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
    )
    # NULL active_model_id means dlib's built-in model, whatever its id in this faceid.
    op.bulk_insert(state, [{"id": 1, "done": 0, "total": 0}])


def downgrade() -> None:
    for table in ("descriptor_state", "face_embeddings", "descriptor_versions"):
        op.drop_table(table)

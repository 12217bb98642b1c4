"""People, faces, events, model versions and the gallery change log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from faceid.store.types import Embedding, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Fixed here rather than imported, so that later changes to the code cannot rewrite history.
EMBEDDING_DIM = 128
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "people",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.String(200), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("name_key", name="uq_people_name_key"),
        sa.UniqueConstraint("external_id", name="uq_people_external_id"),
    )
    op.create_table(
        "faces",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column(
            "person_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("people.id", ondelete="CASCADE", name="fk_faces_person_id"),
            nullable=False,
        ),
        sa.Column("model_id", sa.String(100), nullable=False),
        sa.Column("embedding", Embedding(EMBEDDING_DIM), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=True),
        sa.Column("image_type", sa.String(8), nullable=True),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("landmarks", sa.JSON(), nullable=True),
        sa.Column("quality", sa.Float(), nullable=True),
        sa.Column("size", sa.Float(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_faces_person_id", "faces", ["person_id"])
    op.create_index("ix_faces_image_sha256", "faces", ["image_sha256"])
    op.create_index("ix_faces_model_id_id", "faces", ["model_id", "id"])
    if postgres:
        op.execute(
            "CREATE INDEX ix_faces_embedding_hnsw ON faces USING hnsw (embedding vector_l2_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
        )

    op.create_table(
        "events",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column(
            "person_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("people.id", ondelete="CASCADE", name="fk_events_person_id"),
            nullable=True,
        ),
        sa.Column("distance", sa.Float(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("snapshot_sha256", sa.String(64), nullable=True),
        sa.Column("snapshot_type", sa.String(8), nullable=True),
        sa.Column("track_id", sa.String(200), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("model_id", sa.String(100), nullable=True),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_events_idempotency_key"),
    )
    op.create_index("ix_events_time", "events", ["time"])
    op.create_index("ix_events_source", "events", ["source"])
    op.create_index("ix_events_person_id", "events", ["person_id"])
    op.create_index("ix_events_snapshot_sha256", "events", ["snapshot_sha256"])

    op.create_table(
        "model_versions",
        sa.Column("model_id", sa.String(100), primary_key=True),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("method", sa.String(40), nullable=True),
        sa.Column("calibration", sa.JSON(), nullable=True),
        sa.Column("cohort", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )

    state = op.create_table(
        "store_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("gallery_version", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "gallery_version": 0}])

    op.create_table(
        "face_log",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("face_id", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_face_log_version", "face_log", ["version"])


def downgrade() -> None:
    for table in ("face_log", "store_state", "model_versions", "events", "faces", "people"):
        op.drop_table(table)

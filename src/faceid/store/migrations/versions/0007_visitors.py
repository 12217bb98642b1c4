"""The unknown-faces inbox: visitors (clusters of unknown events), "not this person" exemplars, retention rules.

visitors          one row per cluster of unknown events, with a stable id; named ones point at their person.
visitor_members   which visitor each clustered event belongs to, with the descriptor it was clustered by.
face_negatives    "not this person" exemplars: a descriptor (and the face crop, to describe it again with a
                  new model) that person P must be told apart from.
retention_rules   how many days each kind of record is kept.
inbox_state       a counter bumped by every change to visitors, so a process's cached centroids catch up.

Descriptors are little-endian float32 bytes on both backends: these tables are never searched by an index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from faceid.store.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Fixed here rather than imported, so that later changes to the code cannot rewrite history.
MODEL_ID_MAX = 100
KEY_MAX = 200
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "visitors",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.String(MODEL_ID_MAX), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),  # open, ignored, named
        sa.Column("pinned", sa.Boolean(), nullable=False),  # shaped by a person (merge, split): kept by re-clustering
        sa.Column("person_id", sa.BigInteger(), sa.ForeignKey("people.id", ondelete="CASCADE"), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "visitor_members",
        sa.Column("event_id", sa.BigInteger(), sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "visitor_id", sa.BigInteger(), sa.ForeignKey("visitors.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("model_id", sa.String(MODEL_ID_MAX), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("quality", sa.Float(), nullable=True),
        sa.Column("anchor", sa.Boolean(), nullable=False),  # good enough to shape the visitor's centroid
    )
    op.create_table(
        "face_negatives",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column(
            "person_id", sa.BigInteger(), sa.ForeignKey("people.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("model_id", sa.String(MODEL_ID_MAX), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("crop", sa.LargeBinary(), nullable=True),  # JPEG of the face, to describe it with another model
        sa.Column("event_id", sa.BigInteger(), nullable=True),  # where it came from (the event may be gone)
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "retention_rules",
        sa.Column("kind", sa.String(40), primary_key=True),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "inbox_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO inbox_state (id, version) VALUES (1, 0)")


def downgrade() -> None:
    for table in ("inbox_state", "retention_rules", "face_negatives", "visitor_members", "visitors"):
        op.drop_table(table)

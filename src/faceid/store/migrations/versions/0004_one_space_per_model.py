"""One descriptor space per model: faces described with mirror averaging no longer carry "+mirror".

A descriptor averaged with its mirror image's lies in the same space as a plain one (the same network), so
photos enrolled that way and video frames described without it must be compared, not kept apart. Rows of a
model id ending in "+mirror" move to the plain id; a calibration already present for the plain id wins.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SUFFIX = "+mirror"


def upgrade() -> None:
    connection = op.get_bind()
    cut = len(SUFFIX)
    plain = sa.text(f"substr(model_id, 1, length(model_id) - {cut})")
    like = {"pattern": "%" + SUFFIX}
    # Calibrations: keep the plain id's own if it has one, else rename the mirrored one.
    connection.execute(
        sa.text(
            f"DELETE FROM model_versions WHERE model_id LIKE :pattern AND {plain.text} IN "
            "(SELECT model_id FROM model_versions)"
        ),
        like,
    )
    connection.execute(sa.text(f"UPDATE model_versions SET model_id = {plain.text} WHERE model_id LIKE :pattern"), like)
    # Staged or kept descriptors: a plain row for the same face wins.
    connection.execute(
        sa.text(
            f"DELETE FROM face_embeddings WHERE model_id LIKE :pattern AND EXISTS (SELECT 1 FROM face_embeddings e "
            f"WHERE e.face_id = face_embeddings.face_id AND e.model_id = substr(face_embeddings.model_id, 1, "
            f"length(face_embeddings.model_id) - {cut}))"
        ),
        like,
    )
    for table in ("face_embeddings", "faces", "events"):
        connection.execute(sa.text(f"UPDATE {table} SET model_id = {plain.text} WHERE model_id LIKE :pattern"), like)


def downgrade() -> None:
    pass  # the mirrored ids are not worth restoring: they named the same space

"""Descriptors of any length in one store (dlib's 128 values, fused with SFace 256), and what an upgrade keeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from faceid.errors import BadInputError
from faceid.store import Store
from faceid.store.database import migration_connection
from faceid.store.versions import VersionedStore
from faceid.vision.embed import DESCRIPTOR_MODEL_ID
from faceid.vision.sface import descriptor_dimensions, fused_model_id, split_fused_id

FUSED = fused_model_id(DESCRIPTOR_MODEL_ID)


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_fused_ids() -> None:
    assert FUSED == "dlib-resnet-v1:55533b28+sface-2021dec:fb143eea@0.65"
    assert split_fused_id(FUSED) == (DESCRIPTOR_MODEL_ID, 0.65)
    assert split_fused_id("ft-0123456789ab") is None
    assert descriptor_dimensions(FUSED) == 256 and descriptor_dimensions(DESCRIPTOR_MODEL_ID) == 128
    with pytest.raises(ValueError, match="this faceid"):
        split_fused_id("dlib-resnet-v1:55533b28+sface-2099:00000000@0.65")


@pytest.mark.parametrize("index", ["exact", "pgvector"])
def test_two_lengths_side_by_side(data_dir: Path, db_url: str | None, backend: str, index: str) -> None:
    if index == "pgvector" and backend != "postgresql":
        pytest.skip("pgvector searches inside PostgreSQL only")
    rng = np.random.default_rng(0)
    short, long = _unit(rng, 3, 128), _unit(rng, 3, 256)
    with Store(data_dir, db_url, model_id=DESCRIPTOR_MODEL_ID, index=index) as plain:
        for i, v in enumerate(short):
            plain.enroll_embeddings(f"short {i}", [v])
        assert plain.identify_embedding(short[1] + 0.01).candidates[0].name == "short 1"
    with Store(data_dir, db_url, model_id=FUSED, index=index) as fused:
        for i, v in enumerate(long):
            fused.enroll_embeddings(f"long {i}", [v])
        best = fused.identify_embedding(long[2] + 0.01).candidates[0]
        assert best.name == "long 2" and best.distance < 0.2
        assert fused.gallery().kind == index
        with pytest.raises(BadInputError, match=r"a descriptor of 128 values .* which have 256: describe faces with"):
            fused.identify_embedding(short[0])  # a 128-value probe is not this model's
    if index == "pgvector":
        with Store(data_dir, db_url, model_id=FUSED) as store, store.engine.connect() as connection:
            names = {
                r[0] for r in connection.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'faces'"))
            }
        assert any(n.startswith("ix_faces_hnsw_") for n in names)
        assert "ix_faces_embedding_hnsw" not in names


def test_new_store_starts_fused_and_an_upgraded_one_keeps_its_model(tmp_path: Path) -> None:
    from alembic import command

    from faceid.store.database import _alembic_config

    fresh = VersionedStore(tmp_path / "new", model_id=None)
    try:
        assert fresh.active_model_id() == FUSED
        assert {v.model_id for v in fresh.list_versions()} >= {DESCRIPTOR_MODEL_ID, FUSED}
    finally:
        fresh.close()

    # A store made by the previous faceid (schema 0005): faces of dlib's model, no active model named.
    old = tmp_path / "old"
    with Store(old, model_id=DESCRIPTOR_MODEL_ID) as store:
        store.enroll_embeddings("Before", [np.full(128, 0.05, np.float32)])
        with migration_connection(store.engine) as connection:
            command.downgrade(_alembic_config(connection), "0005")
            connection.execute(text("UPDATE descriptor_state SET active_model_id = NULL WHERE id = 1"))
    upgraded = VersionedStore(old)
    try:
        assert upgraded.active_model_id() == DESCRIPTOR_MODEL_ID  # not re-embedded by surprise
        assert [p.name for p in upgraded.list_people()] == ["Before"]
    finally:
        upgraded.close()

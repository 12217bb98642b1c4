"""Values and small helpers shared by the store tests."""

from __future__ import annotations

import numpy as np
from sqlalchemy import text

from faceid.store import Store

TEST_MODEL = "test-model:0"

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc0000003010100"
    "c9fe92ef0000000049454e44ae426082"
)


def table_counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {
            table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("people", "faces", "events")
        }


def random_embeddings(n: int, seed: int = 0, dim: int = 128) -> np.ndarray:
    """Descriptors spread like dlib's (norm near 1), for tests that need many faces fast."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

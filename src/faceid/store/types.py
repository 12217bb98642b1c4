"""Column types that differ between the backends: embeddings and timestamps.

Embeddings are ``vector`` on PostgreSQL (so pgvector can search them; since migration 0006 without a fixed
dimension, as descriptor models differ: dlib's 128 values, fused with SFace 256) and little-endian float32 bytes
on SQLite. Both read back as ``(D,)`` float32 numpy arrays.
The migration scripts import these types, so changing their storage needs a new migration.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import DateTime, LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

EMBEDDING_DIM = 128


class Embedding(TypeDecorator[np.ndarray]):
    impl = LargeBinary
    cache_ok = True

    def __init__(self, dim: int | None = None) -> None:
        """``dim`` fixes the number of values (the columns of migrations 0001-0005); None takes any."""
        super().__init__()
        self.dim = dim

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from pgvector.sqlalchemy import VECTOR

            return dialect.type_descriptor(VECTOR(self.dim))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        vector = np.asarray(value, dtype="<f4").reshape(-1)
        if self.dim is not None and vector.shape[0] != self.dim:
            raise ValueError(f"embedding has {vector.shape[0]} values, the column holds {self.dim}")
        if dialect.name == "postgresql":
            return vector
        return vector.tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, bytes | bytearray | memoryview):
            return np.frombuffer(bytes(value), dtype="<f4").astype(np.float32)
        if hasattr(value, "to_numpy"):
            return np.asarray(value.to_numpy(), dtype=np.float32)
        return np.asarray(value, dtype=np.float32)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        # SQLite has no time zones: keep naive UTC there so that ordering compares like with like.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)

"""The store's tables. Alembic migrations in ``faceid/store/migrations`` create and evolve them.

Private to ``faceid.store``: the other layers ask the store (tests/store/test_boundaries.py fails naming any
module outside the package that imports this one or SQLAlchemy).

people     one row per person; ``name_key`` (the name case-folded) is unique, so is ``external_id``.
faces      one row per enrolled face: embedding, model id, source image (by sha256), box, landmarks, quality.
events     recognitions reported by the monitor or the server (person or unknown), with an idempotency key.
model_versions
           one row per descriptor model seen: its calibrated threshold and the cohort used to normalise scores.
store_state / face_log
           a counter bumped by every change to faces, and which faces each change touched, so an in-memory
           index in any process can catch up with changes made elsewhere without reloading everything.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from faceid.store.types import Embedding, UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Ids are never reused (migration 0005): SQLite's AUTOINCREMENT; PostgreSQL's sequences never go back anyway.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}

NAME_MAX = 200
KEY_MAX = 200
MODEL_ID_MAX = 100


def name_key(name: str) -> str:
    """What makes two names the same person name: Unicode-normalised, case-folded, single-spaced."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "people"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    name_key: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(KEY_MAX), unique=True)
    notes: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    faces: Mapped[list[Face]] = relationship(back_populates="person", passive_deletes=True)


class Face(Base):
    __tablename__ = "faces"
    __table_args__ = (Index("ix_faces_model_id_id", "model_id", "id"), NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_MAX))
    embedding: Mapped[np.ndarray] = mapped_column(Embedding())
    image_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    image_type: Mapped[str | None] = mapped_column(String(8))
    box: Mapped[list[float] | None] = mapped_column(JSON)
    landmarks: Mapped[list[list[float]] | None] = mapped_column(JSON)
    quality: Mapped[float | None] = mapped_column(Float)
    size: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    person: Mapped[Person] = relationship(back_populates="faces")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    source: Mapped[str | None] = mapped_column(String(KEY_MAX), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    distance: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    snapshot_type: Mapped[str | None] = mapped_column(String(8))
    track_id: Mapped[str | None] = mapped_column(String(KEY_MAX))
    idempotency_key: Mapped[str | None] = mapped_column(String(KEY_MAX), unique=True)
    model_id: Mapped[str | None] = mapped_column(String(MODEL_ID_MAX))
    box: Mapped[list[float] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    model_id: Mapped[str] = mapped_column(String(MODEL_ID_MAX), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float | None] = mapped_column(Float)
    method: Mapped[str | None] = mapped_column(String(40))
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cohort: Mapped[bytes | None] = mapped_column(LargeBinary)  # (N, dim) little-endian float32
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StoreState(Base):
    __tablename__ = "store_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gallery_version: Mapped[int] = mapped_column(BigInteger, default=0)


class FaceLog(Base):
    __tablename__ = "face_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(BigInteger, index=True)
    face_id: Mapped[int] = mapped_column(BigInteger)

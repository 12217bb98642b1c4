"""The inbox's tables (created by migration 0007), declared apart from the store's own models."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from faceid.store.schema import MODEL_ID_MAX, NEVER_REUSE_IDS, Id
from faceid.store.types import UTCDateTime


class InboxBase(DeclarativeBase):
    pass


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, "<f4").reshape(-1).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(bytes(data), "<f4").astype(np.float32)


class Visitor(InboxBase):
    __tablename__ = "visitors"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_MAX))
    status: Mapped[str] = mapped_column(String(16))
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    person_id: Mapped[int | None] = mapped_column(BigInteger)  # people.id, ON DELETE CASCADE
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VisitorMember(InboxBase):
    __tablename__ = "visitor_members"

    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # events.id, ON DELETE CASCADE
    visitor_id: Mapped[int] = mapped_column(ForeignKey("visitors.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_MAX))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    quality: Mapped[float | None] = mapped_column(Float)
    anchor: Mapped[bool] = mapped_column(Boolean, default=True)


class FaceNegative(InboxBase):
    __tablename__ = "face_negatives"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigInteger)  # people.id, ON DELETE CASCADE
    model_id: Mapped[str] = mapped_column(String(MODEL_ID_MAX))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    crop: Mapped[bytes | None] = mapped_column(LargeBinary)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RetentionRule(InboxBase):
    __tablename__ = "retention_rules"

    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    days: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InboxState(InboxBase):
    __tablename__ = "inbox_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)

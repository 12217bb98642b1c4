"""The audit log: who changed what, when, from where.

Every state-changing request of the server writes one row after the change succeeded (refused requests
write nothing, failed logins excepted: they are worth a record). Rows are never updated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Table, insert, select

from faceid.store.accounts import metadata
from faceid.store.database import Database
from faceid.store.types import UTCDateTime, utcnow

log = logging.getLogger(__name__)

_Id = BigInteger().with_variant(Integer(), "sqlite")

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("time", UTCDateTime(), nullable=False, index=True),
    Column("actor", String(120), nullable=True),  # username, "key:<name>", or None for the system
    Column("actor_type", String(16), nullable=False),  # user, key, system, anonymous
    Column("action", String(60), nullable=False),
    Column("target_type", String(40), nullable=True),
    Column("target_id", String(100), nullable=True),
    Column("details", JSON, nullable=False),
    Column("address", String(64), nullable=True),
    Index("ix_audit_log_action", "action"),
)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    time: datetime
    actor: str | None
    actor_type: str
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    address: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "actor": self.actor,
            "actor_type": self.actor_type,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "details": self.details,
            "address": self.address,
        }


class AuditLog:
    """The audit log of a database (the store's: ``AuditLog(store.database)``)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def record(
        self,
        action: str,
        *,
        actor: str | None = None,
        actor_type: str = "system",
        target_type: str | None = None,
        target_id: Any = None,
        details: dict[str, Any] | None = None,
        address: str | None = None,
    ) -> None:
        with self.database.write() as connection:
            connection.execute(
                insert(audit_log).values(
                    time=utcnow(),
                    actor=(actor or None) and actor[:120],
                    actor_type=actor_type,
                    action=action[:60],
                    target_type=target_type,
                    target_id=None if target_id is None else str(target_id)[:100],
                    details=details or {},
                    address=(address or "")[:64] or None,
                )
            )
        log.info("audit: %s by %s %s on %s %s", action, actor_type, actor or "-", target_type or "-", target_id or "")

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """Newest first."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
        if actor is not None:
            query = query.where(audit_log.c.actor == actor)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if target_type is not None:
            query = query.where(audit_log.c.target_type == target_type)
        with self.database.read() as connection:
            return [
                AuditEntry(
                    id=int(r.id),
                    time=r.time,
                    actor=r.actor,
                    actor_type=r.actor_type,
                    action=r.action,
                    target_type=r.target_type,
                    target_id=r.target_id,
                    details=dict(r.details or {}),
                    address=r.address,
                )
                for r in connection.execute(query)
            ]

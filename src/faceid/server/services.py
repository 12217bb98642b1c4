"""What every request handler works with: the store, the accounts, the audit log, the live feed."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import Request

from faceid.server.config import ServerConfig
from faceid.server.feed import ChangeListener, EventHub
from faceid.server.metrics import Metrics
from faceid.store import Store
from faceid.store.accounts import Accounts
from faceid.store.audit import AuditLog

log = logging.getLogger(__name__)


class Actor(Protocol):
    """Who made a change, as the audit log names it (:class:`faceid.server.auth.Principal`). A protocol, so
    that this module needs nothing from ``auth``, which builds on it."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


@dataclass
class Services:
    config: ServerConfig
    store: Store
    accounts: Accounts
    audit: AuditLog
    hub: EventHub
    changes: ChangeListener
    metrics: Metrics
    analysis: threading.BoundedSemaphore
    generated_admin_password: str | None = field(default=None, repr=False)

    @contextlib.contextmanager
    def analysing(self) -> Iterator[None]:
        """Hold one of the analysis slots (detection and embedding are CPU-bound)."""
        with self.analysis:
            yield

    def record(
        self,
        request: Request,
        principal: Actor | None,
        action: str,
        target_type: str | None = None,
        target_id: Any = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """One audit row for a change that succeeded."""
        self.audit.record(
            action,
            actor=principal.name if principal else None,
            actor_type=principal.kind if principal else "anonymous",
            target_type=target_type,
            target_id=target_id,
            details=details,
            address=client_address(request),
        )


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]

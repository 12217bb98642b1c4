"""Where events go: the local store (standalone), the on-disk queue to the server (connected), a callback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from faceid.monitor.events import MonitorEvent

if TYPE_CHECKING:
    from faceid.monitor.outbox import Outbox
    from faceid.store.store import Store

log = logging.getLogger(__name__)


class StoreSink:
    """Records each event in the local store, keyed by its idempotency key (a re-run records nothing twice)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.recorded = 0

    def emit(self, event: MonitorEvent) -> None:
        record = self.store.record_event(
            person_id=event.person_id,
            source=event.camera,
            time=event.start,
            distance=event.distance,
            confidence=min(max(event.confidence, 0.0), 1.0),
            snapshot=event.snapshot,
            track_id=str(event.track_id),
            idempotency_key=event.key,
            model_id=event.model_id,
            box=event.box,
            metadata=event.metadata(),
        )
        self.recorded += 1  # or found: a key recorded by an earlier run answers that run's event
        log.debug("event %d recorded (%s)", record.id, event.name or "unknown")


class OutboxSink:
    """Queues each event durably for the uploader; returns only once the queue file has it."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.queued = 0
        self.repeated = 0

    def emit(self, event: MonitorEvent) -> None:
        if self.outbox.put(event.key, event.upload_fields(), event.snapshot):
            self.queued += 1
        else:
            self.repeated += 1
            log.info("event %s was queued by an earlier run; not queued again", event.key)


class CallbackSink:
    def __init__(self, callback: Callable[[MonitorEvent], None]) -> None:
        self.callback = callback

    def emit(self, event: MonitorEvent) -> None:
        self.callback(event)

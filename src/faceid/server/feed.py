"""Keeping every server process in step: the live events feed and the in-memory gallery.

:class:`EventHub` fans events out to the open feeds (SSE streams) of this process. :class:`ChangeListener`
brings in what other processes did: on PostgreSQL it LISTENs on one channel, to which every process
NOTIFYs after an enrollment or an ingested event, so the others refresh their gallery index and push the
event to their feeds at once; on SQLite (several processes on one file are rare, but possible) it polls
the events table and the gallery version instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from faceid.store import Store

log = logging.getLogger(__name__)

CHANNEL = "faceid_changes"
SUBSCRIBER_QUEUE = 200  # a feed that falls this far behind loses its oldest events, not the server's memory
RECENT_IDS = 2000


class EventHub:
    """Thread-safe publish, asyncio subscribe. Each event id is delivered once per process."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)

    def _first_time(self, event_id: int) -> bool:
        with self._lock:
            if event_id in self._seen:
                return False
            self._seen[event_id] = None
            while len(self._seen) > RECENT_IDS:
                self._seen.popitem(last=False)
            return True

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Also hand every new event, once, to ``listener`` (MQTT, webhooks), on the publishing thread."""
        self._listeners.append(listener)

    def publish(self, event: dict[str, Any]) -> None:
        """Deliver an event (a JSON-ready dict with an ``id``) to every feed; from any thread."""
        if not self._first_time(int(event["id"])):
            return
        for listener in self._listeners:
            listener(event)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: dict[str, Any] | None) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    def close(self) -> None:
        """End every open feed (at shutdown)."""
        self._deliver(None)


class ChangeListener:
    """A background thread that applies other processes' changes here (see the module's docstring)."""

    def __init__(
        self,
        store: Store,
        hub: EventHub,
        event_to_dict: Callable[[Any], dict[str, Any]],
        poll_seconds: float = 0.5,
    ) -> None:
        self.store = store
        self.hub = hub
        self.event_to_dict = event_to_dict
        self.poll_seconds = poll_seconds
        self.origin = uuid.uuid4().hex[:12]
        self.postgres = store.database.backend == "postgresql"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_event_id = self._max_event_id()

    # -- telling the others -------------------------------------------------------------------

    def notify(self, kind: str, ident: int | None = None) -> None:
        """Tell the other processes that something changed (PostgreSQL; SQLite processes poll)."""
        if not self.postgres:
            return
        payload = json.dumps({"origin": self.origin, "kind": kind, "id": ident})
        try:
            self.store.database.notify(CHANNEL, payload)
        except Exception as error:  # the change itself is committed; the others still catch up on their next search
            log.warning("could not notify other server processes: %s", error)

    # -- hearing from them ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="faceid-changes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.postgres:
                    self._listen()
                else:
                    self._poll()
            except Exception as error:
                log.warning("change listener: %s; retrying", error)
                self._stop.wait(2.0)

    def _max_event_id(self) -> int:
        return self.store.last_event_id()

    def _publish_events_after(self, last: int) -> int:
        for record in self.store.events_after(last, limit=500):
            self.hub.publish(self.event_to_dict(record))
            last = max(last, record.id)
        return last

    def _sync_galleries(self) -> None:
        self.store.gallery().sync()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            newest = self._max_event_id()
            if newest > self._last_event_id:
                self._last_event_id = self._publish_events_after(self._last_event_id)
            self._sync_galleries()

    def _listen(self) -> None:
        with self.store.database.listen(CHANNEL) as receive:
            # Anything that happened while (re)connecting is picked up by id.
            self._last_event_id = self._publish_events_after(self._last_event_id)
            while not self._stop.is_set():
                for payload in receive(1.0):
                    self._handle(payload)
                    if self._stop.is_set():
                        break

    def _handle(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("origin") == self.origin:
            return
        started = time.perf_counter()
        if message.get("kind") == "event":
            self._last_event_id = self._publish_events_after(min(self._last_event_id, int(message.get("id") or 0) - 1))
        else:
            self._sync_galleries()
        log.debug(
            "applied %s from %s in %.1f ms",
            message.get("kind"),
            message.get("origin"),
            (time.perf_counter() - started) * 1000,
        )

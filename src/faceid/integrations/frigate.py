"""The Frigate bridge: name the people Frigate sees.

Frigate publishes on ``<topic_prefix>/events`` (default ``frigate/events``) a JSON message for every change of
a tracked object: ``{"type": "new" | "update" | "end", "before": {...}, "after": {...}}``, where ``after`` holds
the object's ``id``, ``camera``, ``label``, ``sub_label``, ``top_score``, ``start_time``, ``end_time``,
``has_snapshot`` and ``snapshot`` (its best frame's ``frame_time``, ``box``, ``score``). Messages repeat the
same ``id`` whenever Frigate finds a better snapshot, and the last has ``type`` ``end``.

For each ``person`` object the bridge fetches Frigate's best snapshot cropped to the object
(``GET /api/events/<id>/snapshot.jpg?crop=1``, the thumbnail ``/api/events/<id>/thumbnail.jpg`` while there is
none), identifies the faces in it with the store, and when someone is named, sets Frigate's sub-label
(``POST /api/events/<id>/sub_label`` with ``{"subLabel": name, "subLabelScore": confidence}``). It tries again
on every better snapshot until a person is named (at most ``max_attempts`` times per object), and records one
event per Frigate object in faceid's store (idempotency key ``frigate-<id>``): as soon as someone is named,
or as unknown when the object ends unnamed. An object that already has a sub-label is left alone.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from faceid.errors import BadInputError, FaceidError
from faceid.integrations.mqtt import new_client
from faceid.integrations.settings import MqttTarget
from faceid.store import Identification, Store

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 5
REMEMBERED_OBJECTS = 1000
SUB_LABEL_MAX = 100  # Frigate's limit on a sub-label's length


@dataclass
class Tracked:
    """What the bridge knows of one Frigate object."""

    attempts: int = 0
    snapshot_time: float | None = None
    named: str | None = None
    recorded: bool = False
    best: tuple[Identification, bytes] | None = None


@dataclass
class BridgeStats:
    messages: int = 0
    people: int = 0
    attempts: int = 0
    named: int = 0
    sub_labels: int = 0
    recorded: int = 0
    errors: int = 0
    last_error: str | None = None
    names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "names"}


class FrigateApi:
    """The few endpoints of Frigate's HTTP API the bridge uses."""

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT_S) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInputError(f"the Frigate URL must be http(s)://host:port, not {url!r}")
        self.base = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.base + path, timeout=self.timeout) as answer:
                return bytes(answer.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def snapshot(self, event_id: str) -> bytes | None:
        """The best snapshot cropped to the object, else the thumbnail; None when Frigate has neither yet."""
        quoted = urllib.parse.quote(event_id, safe="")
        return self._get(f"/api/events/{quoted}/snapshot.jpg?crop=1&quality=95") or self._get(
            f"/api/events/{quoted}/thumbnail.jpg"
        )

    def set_sub_label(self, event_id: str, name: str, score: float | None, camera: str | None = None) -> None:
        body: dict[str, Any] = {"subLabel": name[:SUB_LABEL_MAX]}
        if score is not None and 0 < score <= 1:
            body["subLabelScore"] = round(float(score), 4)
        if camera:
            body["camera"] = camera
        request = urllib.request.Request(
            f"{self.base}/api/events/{urllib.parse.quote(event_id, safe='')}/sub_label",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout):
            pass


class FrigateBridge:
    def __init__(
        self,
        store: Store,
        frigate: FrigateApi,
        *,
        camera_prefix: str = "",
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.store = store
        self.frigate = frigate
        self.camera_prefix = camera_prefix
        self.max_attempts = max_attempts
        self.stats = BridgeStats()
        self._objects: OrderedDict[str, Tracked] = OrderedDict()
        self._lock = threading.Lock()

    def _tracked(self, event_id: str) -> Tracked:
        with self._lock:
            tracked = self._objects.get(event_id)
            if tracked is None:
                tracked = self._objects[event_id] = Tracked()
                while len(self._objects) > REMEMBERED_OBJECTS:
                    self._objects.popitem(last=False)
            return tracked

    def handle(self, payload: bytes | str | dict[str, Any]) -> None:
        """One message of ``frigate/events``. Never raises (a bad message is logged and counted)."""
        self.stats.messages += 1
        try:
            message = payload if isinstance(payload, dict) else json.loads(payload)
            after = message.get("after") or {}
            if after.get("label") != "person" or not after.get("id") or after.get("false_positive"):
                return
            self._person(str(message.get("type") or "update"), after)
        except Exception as error:
            self.stats.errors += 1
            self.stats.last_error = str(error)
            log.warning("frigate bridge: %s", error, exc_info=not isinstance(error, FaceidError | OSError | ValueError))

    def _person(self, kind: str, after: dict[str, Any]) -> None:
        event_id = str(after["id"])
        tracked = self._tracked(event_id)
        if tracked.attempts == 0 and tracked.snapshot_time is None:
            self.stats.people += 1
        if after.get("sub_label") and not tracked.named:
            tracked.recorded = True  # named by someone else (Frigate's own recognition, a person): not ours
            return
        snapshot_time = (after.get("snapshot") or {}).get("frame_time") or after.get("frame_time")
        better = snapshot_time != tracked.snapshot_time
        if not tracked.named and better and tracked.attempts < self.max_attempts:
            tracked.snapshot_time = snapshot_time
            self._attempt(event_id, after, tracked)
        if kind == "end" and not tracked.recorded:
            self._record(event_id, after, tracked)

    def _attempt(self, event_id: str, after: dict[str, Any], tracked: Tracked) -> None:
        image = self.frigate.snapshot(event_id)
        if image is None:
            return
        tracked.attempts += 1
        self.stats.attempts += 1
        results = self.store.identify(image)
        if not results:
            return
        best = max(results, key=lambda r: (r.known, r.confidence, -(r.candidates[0].score if r.candidates else 9)))
        if tracked.best is None or (best.known and not tracked.best[0].known):
            tracked.best = (best, image)
        if best.person is None:
            return
        tracked.named = best.person.name
        tracked.best = (best, image)
        self.stats.named += 1
        self.stats.names.append(best.person.name)
        self.frigate.set_sub_label(event_id, best.person.name, best.confidence, after.get("camera"))
        self.stats.sub_labels += 1
        log.info("frigate %s on %s: %s (%.2f)", event_id, after.get("camera"), best.person.name, best.confidence)
        self._record(event_id, after, tracked)

    def _record(self, event_id: str, after: dict[str, Any], tracked: Tracked) -> None:
        identification, image = tracked.best if tracked.best is not None else (None, None)
        person = identification.person if identification is not None else None
        start = after.get("start_time")
        when = datetime.fromtimestamp(float(start), timezone.utc) if start else None
        self.store.record_event(
            person_id=person.person_id if person is not None else None,
            source=f"{self.camera_prefix}{after.get('camera') or 'frigate'}",
            time=when,
            distance=person.distance if person is not None else None,
            confidence=identification.confidence if identification is not None and person is not None else None,
            snapshot=image,
            idempotency_key=f"frigate-{event_id}",
            model_id=identification.model_id if identification is not None else None,
            box=identification.box if identification is not None else None,
            metadata={
                "frigate_event": event_id,
                "frigate_camera": after.get("camera"),
                "frigate_score": after.get("top_score"),
                "zones": after.get("entered_zones") or [],
                "attempts": tracked.attempts,
            },
        )
        tracked.recorded = True
        self.stats.recorded += 1


class FrigateListener:
    """Subscribes to Frigate's events topic and hands every message to the bridge (on its own thread, so the
    client's network loop never waits for a recognition)."""

    def __init__(self, bridge: FrigateBridge, target: MqttTarget) -> None:
        import queue

        self.bridge = bridge
        self.target = target
        self.topic = f"{target.prefix}/events"
        self._inbox: queue.Queue[bytes | None] = queue.Queue(maxsize=10_000)
        self.connected = threading.Event()
        self.client = new_client(target, "faceid-frigate")
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, message: self._inbox.put(bytes(message.payload))
        self._worker = threading.Thread(target=self._work, name="faceid-frigate", daemon=True)

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("frigate bridge: the broker refused the connection: %s", reason)
            return
        client.subscribe(self.topic, qos=1)
        log.info("frigate bridge: listening to %s on %s", self.topic, self.target.redacted())
        self.connected.set()

    def _work(self) -> None:
        while True:
            payload = self._inbox.get()
            try:
                if payload is None:
                    return
                self.bridge.handle(payload)
            finally:
                self._inbox.task_done()

    def start(self) -> None:
        self._worker.start()
        self.client.connect_async(self.target.host, self.target.port, keepalive=30)
        self.client.loop_start()

    def drain(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._inbox.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._inbox.put(None)
        self._worker.join(timeout=30)

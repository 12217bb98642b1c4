"""Publishing events to an MQTT broker, with Home Assistant discovery.

Topics (``<prefix>`` from the URL, default ``faceid``; ``<d>`` the discovery prefix, default ``homeassistant``):

==================================================  ========  ======  =============================================
topic                                               retained  QoS     payload
==================================================  ========  ======  =============================================
``<prefix>/status``                                 yes       1       ``online`` / ``offline`` (last will)
``<prefix>/events``                                 no        1       every event (JSON, with its idempotency key)
``<prefix>/person/<person id>/last_seen``           yes       1       the person's latest event (JSON)
``<prefix>/person/<person id>/presence``            yes       1       ``ON``, ``OFF`` after ``presence_timeout``
``<prefix>/camera/<camera>/last_face``              yes       1       the camera's latest event (JSON)
``<prefix>/camera/<camera>/unknown_face``           yes       1       ``ON``, ``OFF`` after ``unknown_timeout``
``<d>/sensor|binary_sensor/<node>/<object>/config``  yes       1       Home Assistant discovery configs
==================================================  ========  ======  =============================================

Every message goes through a :class:`~faceid.integrations.queue.DurableQueue` on disk first and is deleted
from it only when the broker acknowledged it (PUBACK), so events that arrive while the broker is down wait
there and go out, in order, when it is back. The client reconnects by itself with exponential backoff
(1 s doubling to 30 s). Delivery is at least once: after a crash between the broker's acknowledgement and the
deletion a message is sent again, which its ``idempotency_key`` lets a consumer recognise.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import faceid
from faceid.integrations.payloads import slug
from faceid.integrations.queue import DurableQueue
from faceid.integrations.settings import IntegrationSettings, MqttTarget

log = logging.getLogger(__name__)

ON, OFF = "ON", "OFF"
ONLINE, OFFLINE = "online", "offline"
WINDOW = 200  # messages handed to the client and not yet acknowledged, at most
RESYNC_S = 60.0  # how often the discovery configs are compared with the store (new, renamed, deleted people)
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
KEEPALIVE_S = 30


def new_client(target: MqttTarget, default_client_id: str) -> Any:
    """A paho client for ``target`` (MQTT 3.1.1, clean session, its credentials and TLS); will, reconnect delays
    and callbacks are the caller's."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=target.client_id or default_client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    return client


class Topics:
    def __init__(self, target: MqttTarget) -> None:
        self.prefix = target.prefix
        self.discovery_prefix = target.discovery_prefix
        self.node = slug(target.prefix, "faceid")
        self.status = f"{self.prefix}/status"
        self.events = f"{self.prefix}/events"

    def last_seen(self, person_id: int) -> str:
        return f"{self.prefix}/person/{person_id}/last_seen"

    def presence(self, person_id: int) -> str:
        return f"{self.prefix}/person/{person_id}/presence"

    def last_face(self, camera: str) -> str:
        return f"{self.prefix}/camera/{slug(camera)}/last_face"

    def unknown_face(self, camera: str) -> str:
        return f"{self.prefix}/camera/{slug(camera)}/unknown_face"

    def config(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{object_id}/config"


class Discovery:
    """Home Assistant MQTT discovery configs (the keys of HA's MQTT sensor and binary sensor platforms)."""

    def __init__(self, topics: Topics, public_url: str = "") -> None:
        self.topics = topics
        self.device: dict[str, Any] = {
            "identifiers": [f"faceid_{topics.node}"],
            "name": "faceid" if topics.node == "faceid" else f"faceid {topics.prefix}",
            "manufacturer": "faceid",
            "model": "face identity server",
            "sw_version": faceid.__version__,
        }
        if public_url:
            self.device["configuration_url"] = public_url
        self.origin = {"name": "faceid", "sw_version": faceid.__version__}

    def _common(self, object_id: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"faceid_{self.topics.node}_{object_id}",
            "availability_topic": self.topics.status,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "qos": 1,
            "device": self.device,
            "origin": self.origin,
        }

    def person(self, person_id: int, name: str) -> list[tuple[str, dict[str, Any]]]:
        seen, presence = f"person_{person_id}_last_seen", f"person_{person_id}_presence"
        return [
            (
                self.topics.config("sensor", seen),
                {
                    **self._common(seen, f"{name} last seen"),
                    "state_topic": self.topics.last_seen(person_id),
                    "value_template": "{{ value_json.time }}",
                    "device_class": "timestamp",
                    "json_attributes_topic": self.topics.last_seen(person_id),
                    "icon": "mdi:face-recognition",
                },
            ),
            (
                self.topics.config("binary_sensor", presence),
                {
                    **self._common(presence, f"{name} present"),
                    "state_topic": self.topics.presence(person_id),
                    "payload_on": ON,
                    "payload_off": OFF,
                    "device_class": "presence",
                    "json_attributes_topic": self.topics.last_seen(person_id),
                },
            ),
        ]

    def camera(self, camera: str) -> list[tuple[str, dict[str, Any]]]:
        face, unknown = f"camera_{slug(camera)}_last_face", f"camera_{slug(camera)}_unknown_face"
        return [
            (
                self.topics.config("sensor", face),
                {
                    **self._common(face, f"{camera} last face"),
                    "state_topic": self.topics.last_face(camera),
                    "value_template": "{{ value_json.label }}",
                    "json_attributes_topic": self.topics.last_face(camera),
                    "icon": "mdi:cctv",
                },
            ),
            (
                self.topics.config("binary_sensor", unknown),
                {
                    **self._common(unknown, f"{camera} unknown face"),
                    "state_topic": self.topics.unknown_face(camera),
                    "payload_on": ON,
                    "payload_off": OFF,
                    "json_attributes_topic": self.topics.last_face(camera),
                    "icon": "mdi:account-question",
                },
            ),
        ]


class MqttPublisher:
    """``directory()`` answers what is to be announced at every (re)connection: ``(people, cameras)``, people
    as ``(id, name)`` pairs."""

    def __init__(
        self,
        target: MqttTarget,
        settings: IntegrationSettings,
        queue: DurableQueue,
        directory: Callable[[], tuple[list[tuple[int, str]], list[str]]] | None = None,
    ) -> None:
        self.target = target
        self.settings = settings
        self.queue = queue
        self.directory = directory or (lambda: ([], []))
        self.topics = Topics(target)
        self.discovery = Discovery(self.topics, settings.public_url)
        self.delivered = 0
        self.last_error: str | None = None
        self.connected = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # (the client's handle of a message, its queue row): acknowledged ones are collected by the delivery
        # thread, so that no lock of ours is ever taken inside the client's callbacks (or the reverse).
        self._inflight: list[tuple[Any, int]] = []
        self._last_sent = 0
        self._need_announce = False
        self.resync_seconds = RESYNC_S
        self._resynced_at = 0.0
        self._people: dict[int, str] = {}  # announced
        self._cameras: set[str] = set()
        self._off_at: dict[str, float] = {}  # binary sensor state topic -> when it goes off

        self.client = new_client(target, f"faceid-{self.topics.node}")
        self.client.will_set(self.topics.status, OFFLINE, qos=1, retain=True)
        self.client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self.client.max_inflight_messages_set(WINDOW)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    # -- the client's callbacks (its network thread) ---------------------------------------------

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"broker refused the connection: {reason}"
            log.warning("MQTT: %s", self.last_error)
            return
        log.info("MQTT: connected to %s", self.target.redacted())
        self.connected = True
        self.last_error = None
        self._need_announce = True
        self._wake.set()

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _properties: Any) -> None:
        if self.connected and not self._stop.is_set():
            log.warning("MQTT: disconnected from %s (%s); events wait in the queue", self.target.redacted(), reason)
        self.connected = False
        self.last_error = f"disconnected: {reason}"

    def _on_publish(self, _client: Any, _userdata: Any, _mid: int, _reason: Any, _properties: Any) -> None:
        self._wake.set()

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, payload: dict[str, Any]) -> bool:
        """Queue everything one event publishes (``payload`` from :func:`event_payload`). An event already
        queued once (same idempotency key) is not queued again."""
        messages: list[tuple[str, Any, bool]] = []
        person_id, name, camera = payload.get("person_id"), payload.get("name"), payload.get("camera")
        discover = self.settings.discovery
        now = time.monotonic()
        with self._lock:
            if person_id is not None:
                if discover and self._people.get(person_id) != name:
                    configs = self.discovery.person(person_id, name or f"person {person_id}")
                    messages += [(t, c, True) for t, c in configs]
                    self.queue.remember({t: self._person_states(person_id) for t, _ in configs})
                    self._people[person_id] = name or ""
                messages.append((self.topics.last_seen(person_id), payload, True))
                messages.append((self.topics.presence(person_id), ON, True))
                self._off_at[self.topics.presence(person_id)] = now + self.settings.presence_timeout
            if camera:
                if discover and camera not in self._cameras:
                    configs = self.discovery.camera(camera)
                    messages += [(t, c, True) for t, c in configs]
                    self.queue.remember({t: self._camera_states(camera) for t, _ in configs})
                    self._cameras.add(camera)
                label = name if payload.get("known") else "unknown"
                messages.append((self.topics.last_face(camera), {**payload, "label": label}, True))
                if not payload.get("known"):
                    messages.append((self.topics.unknown_face(camera), ON, True))
                    self._off_at[self.topics.unknown_face(camera)] = now + self.settings.unknown_timeout
            messages.append((self.topics.events, payload, False))
        queued = self.queue.put(messages, key=str(payload.get("idempotency_key")))
        self._wake.set()
        return queued

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [topic for topic, at in self._off_at.items() if at <= now]
            for topic in due:
                del self._off_at[topic]
        if due:
            self.queue.put([(topic, OFF, True) for topic in due])

    # -- delivering ---------------------------------------------------------------------------

    def start(self) -> None:
        self.client.connect_async(self.target.host, self.target.port, keepalive=KEEPALIVE_S)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="faceid-mqtt", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what can be sent within ``timeout`` seconds, say ``offline``, disconnect. The rest stays queued."""
        deadline = time.monotonic() + timeout
        while self.connected and len(self.queue) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._flush_acks()
        if self.connected:
            info = self.client.publish(self.topics.status, OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()
        self.connected = False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._expire()
                if self.connected and self._need_announce:
                    self._announce()
                elif self.connected and time.monotonic() - self._resynced_at > self.resync_seconds:
                    self._resync()
                if self.connected:
                    self._send_more()
                self._flush_acks()
            except Exception as error:  # keep delivering; the queue keeps what was not sent
                self.last_error = str(error)
                log.warning("MQTT delivery: %s", error, exc_info=True)
                self._stop.wait(1.0)
            self._wake.wait(0.2)
            self._wake.clear()

    def _person_states(self, person_id: int) -> list[str]:
        return [self.topics.last_seen(person_id), self.topics.presence(person_id)]

    def _camera_states(self, camera: str) -> list[str]:
        return [self.topics.last_face(camera), self.topics.unknown_face(camera)]

    def _announce(self) -> None:
        """After every (re)connection: online, the discovery configs, each binary sensor's current state."""
        # Whatever was handed to the client and not acknowledged, the client itself sends again after the
        # reconnection; the rest of the queue follows from where the last connection stopped.
        self._need_announce = False
        self.client.publish(self.topics.status, ONLINE, qos=1, retain=True)
        self._resync(everything=True)
        now = time.monotonic()
        with self._lock:
            people, cameras, off_at = list(self._people), list(self._cameras), dict(self._off_at)
        for topic in [self.topics.presence(p) for p in people] + [self.topics.unknown_face(c) for c in cameras]:
            self.client.publish(topic, ON if off_at.get(topic, 0) > now else OFF, qos=1, retain=True)

    def _resync(self, everything: bool = False) -> None:
        """Bring Home Assistant's entities in line with the store: configs for people enrolled (or renamed)
        since, and the configs and retained states of people deleted (and cameras without events) removed."""
        self._resynced_at = time.monotonic()
        people, cameras = self.directory()
        with self._lock:
            before_people, before_cameras = dict(self._people), set(self._cameras)
            self._people = {person_id: name for person_id, name in people}
            self._cameras = set(cameras)
        if not self.settings.discovery:
            return
        wanted: dict[str, tuple[dict[str, Any], list[str], bool]] = {}
        for person_id, name in people:
            changed = everything or before_people.get(person_id) != name
            for topic, config in self.discovery.person(person_id, name or f"person {person_id}"):
                wanted[topic] = (config, self._person_states(person_id), changed)
        for camera in cameras:
            for topic, config in self.discovery.camera(camera):
                wanted[topic] = (config, self._camera_states(camera), everything or camera not in before_cameras)
        remembered = self.queue.announced()
        fresh = {t: states for t, (_, states, changed) in wanted.items() if changed or t not in remembered}
        for topic in fresh:
            self.client.publish(topic, _json(wanted[topic][0]), qos=1, retain=True)
        if fresh:
            self.queue.remember(fresh)
        stale = [t for t in remembered if t not in wanted]
        with self._lock:
            for topic in stale:
                for cleared in remembered[topic]:
                    self._off_at.pop(cleared, None)
        for topic in stale:  # an empty retained message removes the entity (and the state) in Home Assistant
            for cleared in [topic, *remembered[topic]]:
                self.client.publish(cleared, b"", qos=1, retain=True)
        if stale:
            self.queue.forget(stale)
            log.info("MQTT: removed %d discovery configs of people or cameras no longer in the store", len(stale))

    def _send_more(self) -> None:
        with self._lock:
            room = WINDOW - len(self._inflight)
            last = self._last_sent
        if room <= 0:
            return
        for message in self.queue.after(last, room):
            if not self.connected:
                return
            info = self.client.publish(message.topic, message.payload, qos=1, retain=message.retain)
            with self._lock:
                self._inflight.append((info, message.id))
                self._last_sent = message.id

    def _flush_acks(self) -> None:
        with self._lock:
            done = [(info, row, info.is_published()) for info, row in self._inflight]
            acked = [row for _, row, published in done if published]
            if acked:
                self._inflight = [(info, row) for info, row, published in done if not published]
        if acked:
            self.queue.delete(acked)
            self.delivered += len(acked)

    def status(self) -> dict[str, Any]:
        with self._lock:
            inflight = len(self._inflight)
        return {
            "broker": self.target.redacted(),
            "connected": self.connected,
            "queued": len(self.queue),
            "in_flight": inflight,
            "delivered": self.delivered,
            "dropped": self.queue.dropped,
            "last_error": self.last_error,
        }


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

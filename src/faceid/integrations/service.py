"""What the server runs: the MQTT publisher and the webhook dispatcher, fed with every new event."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import IO, Any

from faceid.integrations.mqtt import MqttPublisher
from faceid.integrations.payloads import event_payload
from faceid.integrations.queue import DurableQueue
from faceid.integrations.settings import SETTINGS_FILE, IntegrationSettings, integrations_dir
from faceid.integrations.webhooks import RetryPolicy, Webhooks
from faceid.store import Store

log = logging.getLogger(__name__)

QUEUE_FILE = "mqtt-queue.sqlite3"
WEBHOOKS_FILE = "webhooks.sqlite3"
LEADER_FILE = "leader.lock"
WATCH_S = 5.0


def store_directory(store: Store) -> tuple[list[tuple[int, str]], list[str]]:
    """Everyone enrolled, and every camera that has recorded an event: what Home Assistant is told about."""
    people = [(p.id, p.name) for p in store.list_people()]
    return people, store.cameras()


class Integrations:
    """One per server process. Several processes on one data folder: the first to take the leader lock
    (``<data dir>/integrations/leader.lock``) publishes and delivers; the others stay passive, since every
    process sees every event and they would only send each one again."""

    def __init__(
        self, store: Store, settings: IntegrationSettings | None = None, *, folder: Path | None = None
    ) -> None:
        self.store = store
        self.folder = folder or integrations_dir(store.data_dir)
        self.settings = settings or IntegrationSettings.load(self.folder)
        self.settings.validate()
        self.mqtt: MqttPublisher | None = None
        self.webhooks = Webhooks(self.folder / WEBHOOKS_FILE, self._policy())
        self._queue: DurableQueue | None = None
        self._lock = threading.Lock()
        self._leader_file: IO[Any] | None = None
        self.leader = False
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._settings_mtime = self._mtime()

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(self.settings.webhook_retry_base, self.settings.webhook_max_attempts)

    # -- life -------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._lead()
        if not self.leader:
            log.info("another faceid process on this data folder publishes the events; this one stays passive")
        self._watcher = threading.Thread(target=self._watch, name="faceid-integrations", daemon=True)
        self._watcher.start()

    def _lead(self) -> None:
        self.leader = self._take_leadership()
        if self.leader:
            self._start_mqtt()
            self.webhooks.start()

    def _mtime(self) -> float:
        try:
            return (self.folder / SETTINGS_FILE).stat().st_mtime
        except OSError:
            return 0.0

    def _watch(self) -> None:
        """Every few seconds: settings saved by another process (its admin page) are applied here, and a
        passive process takes over when the leader has gone."""
        while not self._stop.wait(WATCH_S):
            try:
                if not self.leader:
                    self._lead()
                mtime = self._mtime()
                if mtime != self._settings_mtime:
                    self._settings_mtime = mtime
                    self.configure(IntegrationSettings.load(self.folder), save=False)
            except Exception as error:
                log.warning("integrations: %s", error)

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
            self._watcher = None
        with self._lock:
            if self.mqtt is not None:
                self.mqtt.stop()
                self.mqtt = None
            if self._queue is not None:
                self._queue.close()
                self._queue = None
        self.webhooks.close()
        if self._leader_file is not None:
            self._leader_file.close()
            self._leader_file = None

    def _take_leadership(self) -> bool:
        try:
            import fcntl
        except ImportError:  # not POSIX: one process per data folder is assumed
            return True
        handle = open(self.folder / LEADER_FILE, "a+")  # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._leader_file = handle
        return True

    def _start_mqtt(self) -> None:
        with self._lock:
            target = self.settings.mqtt_target()
            if target is None:
                return
            if self._queue is None:
                self._queue = DurableQueue(self.folder / QUEUE_FILE, self.settings.queue_max)
            self._queue.max_rows = self.settings.queue_max
            try:
                self.mqtt = MqttPublisher(target, self.settings, self._queue, lambda: store_directory(self.store))
            except ImportError:
                log.error("MQTT needs paho-mqtt: pip install 'faceid[integrations]'; events are not published")
                return
            self.mqtt.start()
            log.info("publishing events to %s", target.redacted())

    def configure(self, settings: IntegrationSettings, *, save: bool = True) -> None:
        """New settings from the admin page: saved, and the MQTT publisher restarted with them."""
        settings.validate()
        if save:
            settings.save(self.folder)
            self._settings_mtime = self._mtime()
        self.settings = settings
        self.webhooks.policy = self._policy()
        if not self.leader:
            return
        with self._lock:
            if self.mqtt is not None:
                self.mqtt.stop(timeout=1.0)
                self.mqtt = None
        self._start_mqtt()

    # -- events -----------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """A new event, in the server's JSON form; from any thread. Never raises."""
        if not self.leader:
            return
        try:
            if event.get("person_id") is None and isinstance(event.get("id"), int):
                from faceid.store.visitors import inbox

                if inbox(self.store).is_ignored(event["id"]):  # a visitor the user chose never to hear about
                    log.debug("integrations: event %s is an ignored visitor's; not handed on", event["id"])
                    return
            payload = event_payload(event, self.settings.public_url)
            mqtt = self.mqtt
            if mqtt is not None:
                mqtt.submit(payload)
            self.webhooks.submit(payload)
        except Exception as error:
            log.warning("integrations: event %s not handed on: %s", event.get("id"), error, exc_info=True)

    def status(self) -> dict[str, Any]:
        mqtt = self.mqtt
        return {
            "leader": self.leader,
            "settings": self.settings.public(),
            "mqtt": mqtt.status() if mqtt is not None else None,
            "webhooks": self.webhooks.summary(),
        }


@contextlib.contextmanager
def running(store: Store, settings: IntegrationSettings | None = None) -> Any:
    integrations = Integrations(store, settings)
    integrations.start()
    try:
        yield integrations
    finally:
        integrations.stop()

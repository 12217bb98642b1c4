"""Store-and-forward: a durable queue of events on disk, and the uploader that empties it into the server.

An event is *emitted* only once its row is committed here (SQLite, WAL, ``synchronous=FULL``): a process
killed at any instant has either queued an event or not produced it at all, and re-processing a file
produces the same idempotency keys, which the queue ignores when it has them already (``INSERT OR
IGNORE``). The uploader sends rows in order, each with its key in ``Idempotency-Key``; a reply lost on
the way back is retried and the server answers the event it already has, so a retry never duplicates.
Sent rows stay (marked) for ``MONITOR_OUTBOX_KEEP_SENT_DAYS`` so that re-processing does not even re-send.

Failures: no answer, 408, 425, 429 and 5xx are retried with exponential backoff (honouring Retry-After),
for ever; 401/403 (a revoked or wrong key) too, at the longest interval, with an error in the log, since
dropping events for a configuration mistake would lose them. A 422 naming the person (deleted on the
server since the gallery was pulled) is re-sent as an unknown face; any other refusal (the server will
never take this event) is set aside as ``failed`` with the reason, not retried, and logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceid.monitor.client import ServerClient, ServerUnreachable
from faceid.monitor.sources import Backoff
from faceid.thresholds import (
    MONITOR_OUTBOX_KEEP_SENT_DAYS,
    MONITOR_UPLOAD_BACKOFF_INITIAL_SECONDS,
    MONITOR_UPLOAD_BACKOFF_MAX_SECONDS,
)

log = logging.getLogger(__name__)

PENDING, SENT, FAILED = "pending", "sent", "failed"
RETRY_STATUSES = {408, 425, 429}
AUTH_STATUSES = {401, 403}

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    fields TEXT NOT NULL,
    snapshot BLOB,
    created REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL,
    server_event_id INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, id);
"""


@dataclass(frozen=True)
class Item:
    id: int
    key: str
    fields: dict[str, str]
    snapshot: bytes | None
    attempts: int


class Outbox:
    """The queue file (``outbox.sqlite3`` in the monitor's state folder); safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss too, not only a killed process (an edge box loses power).
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def put(self, key: str, fields: dict[str, str], snapshot: bytes | None) -> bool:
        """Queue an event durably; False if an event with this key was queued before (kept as it was)."""
        with self._lock, self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO outbox (key, fields, snapshot, created) VALUES (?, ?, ?, ?)",
                (key, json.dumps(fields), snapshot, time.time()),
            )
            added = cursor.rowcount > 0
            if added:
                self._added.notify_all()
        return added

    def wait_for_new(self, timeout: float) -> None:
        with self._added:
            self._added.wait(timeout)

    def wake(self) -> None:
        with self._added:
            self._added.notify_all()

    def pending(self, limit: int = 50) -> list[Item]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, key, fields, snapshot, attempts FROM outbox WHERE state = ? ORDER BY id LIMIT ?",
                (PENDING, limit),
            ).fetchall()
        return [Item(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def mark_sent(self, item_id: int, server_event_id: int | None) -> None:
        with self._lock, self._transaction() as db:
            db.execute(
                "UPDATE outbox SET state = ?, sent_at = ?, server_event_id = ?, snapshot = NULL, "
                "attempts = attempts + 1, last_error = NULL WHERE id = ?",
                (SENT, time.time(), server_event_id, item_id),
            )

    def mark_attempt(self, item_id: int, error: str) -> None:
        with self._lock, self._transaction() as db:
            db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error[:500], item_id))

    def mark_failed(self, item_id: int, error: str) -> None:
        with self._lock, self._transaction() as db:
            db.execute(
                "UPDATE outbox SET state = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
                (FAILED, error[:500], item_id),
            )

    def update_fields(self, item_id: int, fields: dict[str, str]) -> None:
        with self._lock, self._transaction() as db:
            db.execute("UPDATE outbox SET fields = ? WHERE id = ?", (json.dumps(fields), item_id))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
        counts = {PENDING: 0, SENT: 0, FAILED: 0}
        counts.update({state: int(n) for state, n in rows})
        return counts

    def prune(self, keep_days: float = MONITOR_OUTBOX_KEEP_SENT_DAYS) -> int:
        with self._lock, self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM outbox WHERE state = ? AND sent_at < ?", (SENT, time.time() - keep_days * 86400)
            )
            return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Uploader:
    """A thread that sends the queue's pending events to the server, in order, until stopped."""

    def __init__(
        self,
        outbox: Outbox,
        client: ServerClient,
        backoff: Backoff | None = None,
        on_sent: Callable[[Item, dict[str, Any]], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.backoff = backoff or Backoff(MONITOR_UPLOAD_BACKOFF_INITIAL_SECONDS, MONITOR_UPLOAD_BACKOFF_MAX_SECONDS)
        self.on_sent = on_sent
        self.sent = 0
        self.retries = 0
        self.failures = 0  # consecutive failed attempts (server down): drives the backoff
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faceid-uploader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            items = self.outbox.pending()
            if not items:
                self.outbox.wait_for_new(1.0)
                continue
            for item in items:
                if self._stop.is_set():
                    return
                delay = self._send(item)
                if delay is not None:  # the server is not taking events now: wait, then start again in order
                    self.retries += 1
                    self._stop.wait(delay)
                    break

    def _send(self, item: Item) -> float | None:
        """Try one item; None when done with it (sent or set aside), else the seconds to wait."""
        try:
            answer = self.client.post_event(item.fields, item.snapshot, item.key)
        except ServerUnreachable as error:
            return self._retry(item, str(error))
        if answer.status in (200, 201):
            body = answer.json()
            self.outbox.mark_sent(item.id, body.get("id") if isinstance(body, dict) else None)
            self.sent += 1
            self.failures = 0
            if answer.status == 200:
                log.info("event %s was already on the server (event %s)", item.key, body.get("id"))
            if self.on_sent is not None:
                self.on_sent(item, body if isinstance(body, dict) else {})
            return None
        detail = f"HTTP {answer.status}: {answer.detail()}"
        if answer.status in RETRY_STATUSES or answer.status >= 500:
            delay = self._retry(item, detail)
            retry_after = answer.headers.get("retry-after", "")
            return max(delay, float(retry_after)) if retry_after.isdigit() else delay
        if answer.status in AUTH_STATUSES:
            self.outbox.mark_attempt(item.id, detail)
            log.error("the server refuses the API key (%s); events stay queued until it accepts it", detail)
            self.failures += 1
            return self.backoff.maximum
        if answer.status == 422 and "person_id" in item.fields and "person" in answer.detail().lower():
            fields = dict(item.fields)
            person = fields.pop("person_id")
            meta = json.loads(fields.get("metadata") or "{}")
            meta["person_id_refused"] = int(person)
            fields["metadata"] = json.dumps(meta, separators=(",", ":"))
            self.outbox.update_fields(item.id, fields)
            log.warning("event %s: the server no longer has person %s; sending it as an unknown face", item.key, person)
            return 0.0
        self.outbox.mark_failed(item.id, detail)
        log.error("event %s refused by the server, set aside: %s", item.key, detail)
        return None

    def _retry(self, item: Item, reason: str) -> float:
        self.failures += 1
        self.outbox.mark_attempt(item.id, reason)
        delay = self.backoff.delay(self.failures)
        log.warning("upload failed (%s); %d event(s) queued, retrying in %.1f s", reason, self._pending(), delay)
        return delay

    def _pending(self) -> int:
        return self.outbox.counts()[PENDING]

    def drain(self, timeout: float | None) -> bool:
        """Wait until nothing is pending (True) or ``timeout`` seconds passed (False; None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last_report = time.monotonic()
        while self._pending():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if time.monotonic() - last_report > 30:
                log.warning("waiting for the server: %d event(s) still queued", self._pending())
                last_report = time.monotonic()
            self.outbox.wake()
            time.sleep(0.1)
        return True

    def stop(self) -> None:
        self._stop.set()
        self.outbox.wake()
        self._thread.join(timeout=30)

"""Webhooks: admin-managed subscriptions, signed deliveries, retries with backoff, a log, dead letters.

Every delivery is a ``POST`` of the event's JSON (see :func:`~faceid.integrations.payloads.event_payload`)
with these headers::

    Content-Type: application/json
    X-Faceid-Event: event            (or "test" for the "send test" button)
    X-Faceid-Delivery: 42            (the delivery's id: the same on every retry of it)
    X-Faceid-Timestamp: 1733325600   (Unix seconds when this attempt was signed)
    X-Faceid-Signature: v1=<hex>     (HMAC-SHA256 with the subscription's secret over "<timestamp>.<body>")

A receiver checks the signature with :func:`verify_signature` (the recipe in docs/integrations.md): recompute
the HMAC over the timestamp, a dot and the raw body, compare in constant time, and refuse a timestamp more
than 5 minutes from its own clock. Within those 5 minutes a replay is recognised by its delivery id.

A 2xx answer delivers; anything else (or no answer in 10 s) is retried after ``retry_base`` seconds, doubling
up to an hour, ``max_attempts`` times in all; then the delivery is a dead letter, listed in the web app,
from where it can be sent again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from faceid.errors import BadInputError, NotFoundError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Faceid-Signature"
TIMESTAMP_HEADER = "X-Faceid-Timestamp"
DELIVERY_HEADER = "X-Faceid-Delivery"
EVENT_HEADER = "X-Faceid-Event"
REPLAY_WINDOW_S = 300
TIMEOUT_S = 10.0
MAX_DELAY_S = 3600.0
DECISIONS = ("known", "unknown", "ambiguous")
LOG_KEEP_DAYS = 30
WORKERS = 4  # subscriptions delivered to at the same time


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float | None = None,
    tolerance: float = REPLAY_WINDOW_S,
) -> bool:
    """The receiver's check: True only for the body faceid signed, signed less than ``tolerance`` s ago."""
    if not timestamp or not signature:
        return False
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    expected = sign(secret, stamp, body)
    return any(hmac.compare_digest(expected, part.strip()) for part in signature.split(","))


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 2.0  # seconds before the first retry; doubles after each failure, up to MAX_DELAY_S
    max_attempts: int = 10

    def delay(self, attempts: int) -> float:
        return float(min(MAX_DELAY_S, self.base * 2 ** max(0, attempts - 1)))


def _check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError("a webhook URL must be an http:// or https:// URL with a host")
    return url.strip()


def _check_decisions(decisions: list[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(decisions or []))
    bad = [d for d in chosen if d not in DECISIONS]
    if bad:
        raise BadInputError(f"unknown decision filter {bad[0]!r} (known, unknown, ambiguous)")
    return chosen


class Webhooks:
    def __init__(self, path: Path, policy: RetryPolicy | None = None) -> None:
        self.path = path
        self.policy = policy or RetryPolicy()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._busy: set[int] = set()  # subscriptions whose deliveries a worker is sending
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS subscriptions (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL,
                url TEXT NOT NULL,
                secret TEXT NOT NULL,
                decisions TEXT NOT NULL DEFAULT '[]',
                person_id INTEGER,
                camera TEXT,
                enabled INTEGER NOT NULL DEFAULT 1,
                created REAL NOT NULL
            );
            CREATE TABLE IF NOT EXISTS deliveries (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                subscription_id INTEGER NOT NULL,
                event_key TEXT NOT NULL,
                kind TEXT NOT NULL,
                body BLOB NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_at REAL NOT NULL,
                last_status INTEGER,
                last_error TEXT,
                created REAL NOT NULL,
                updated REAL NOT NULL,
                UNIQUE (subscription_id, event_key)
            );
            CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_at);
            CREATE TABLE IF NOT EXISTS attempts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                delivery_id INTEGER NOT NULL,
                at REAL NOT NULL,
                status INTEGER,
                error TEXT,
                duration_ms REAL NOT NULL
            );
            """
        )
        cutoff = time.time() - LOG_KEEP_DAYS * 86400
        self._db.execute("DELETE FROM deliveries WHERE status = 'delivered' AND updated < ?", (cutoff,))
        self._db.execute("DELETE FROM attempts WHERE at < ?", (cutoff,))

    # -- subscriptions ------------------------------------------------------------------------

    def _subscription(self, row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "url": row["url"],
            "secret": row["secret"],
            "decisions": json.loads(row["decisions"]),
            "person_id": row["person_id"],
            "camera": row["camera"],
            "enabled": bool(row["enabled"]),
            "created": row["created"],
        }

    def create(
        self,
        url: str,
        *,
        name: str | None = None,
        decisions: list[str] | None = None,
        person_id: int | None = None,
        camera: str | None = None,
        secret: str | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        url = _check_url(url)
        chosen = _check_decisions(decisions)
        secret = secret or f"whsec_{secrets.token_urlsafe(32)}"
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO subscriptions (name, url, secret, decisions, person_id, camera, enabled, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name or url, url, secret, json.dumps(chosen), person_id, camera or None, int(enabled), time.time()),
            )
            ident = int(cursor.lastrowid or 0)
        return self.get(ident)

    def get(self, subscription_id: int) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT * FROM subscriptions WHERE id = ?", (subscription_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no webhook with id {subscription_id}")
        return self._subscription(row)

    def subscriptions(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM subscriptions ORDER BY id").fetchall()
        return [self._subscription(r) for r in rows]

    def update(self, subscription_id: int, **changes: Any) -> dict[str, Any]:
        current = self.get(subscription_id)
        if "url" in changes and changes["url"] is not None:
            current["url"] = _check_url(changes["url"])
        if "decisions" in changes and changes["decisions"] is not None:
            current["decisions"] = _check_decisions(changes["decisions"])
        for key in ("name", "person_id", "camera", "enabled"):
            if key in changes:
                current[key] = changes[key]
        if changes.get("rotate_secret"):
            current["secret"] = f"whsec_{secrets.token_urlsafe(32)}"
        with self._lock:
            self._db.execute(
                "UPDATE subscriptions SET name = ?, url = ?, secret = ?, decisions = ?, person_id = ?, camera = ?, "
                "enabled = ? WHERE id = ?",
                (
                    current["name"] or current["url"],
                    current["url"],
                    current["secret"],
                    json.dumps(current["decisions"]),
                    current["person_id"],
                    current["camera"] or None,
                    int(bool(current["enabled"])),
                    subscription_id,
                ),
            )
        return self.get(subscription_id)

    def delete(self, subscription_id: int) -> dict[str, Any]:
        current = self.get(subscription_id)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE subscription_id = ?)",
                (subscription_id,),
            )
            self._db.execute("DELETE FROM deliveries WHERE subscription_id = ?", (subscription_id,))
            self._db.execute("DELETE FROM subscriptions WHERE id = ?", (subscription_id,))
            self._db.execute("COMMIT")
        return current

    @staticmethod
    def matches(subscription: dict[str, Any], payload: dict[str, Any]) -> bool:
        if not subscription["enabled"]:
            return False
        if subscription["decisions"] and payload.get("decision") not in subscription["decisions"]:
            return False
        if subscription["person_id"] is not None and payload.get("person_id") != subscription["person_id"]:
            return False
        return not (subscription["camera"] and payload.get("camera") != subscription["camera"])

    # -- deliveries ---------------------------------------------------------------------------

    def submit(self, payload: dict[str, Any]) -> list[int]:
        """A delivery for every subscription the event matches (once per event and subscription)."""
        subscriptions = [s for s in self.subscriptions() if self.matches(s, payload)]
        return [self._enqueue(s["id"], str(payload.get("idempotency_key")), "event", payload) for s in subscriptions]

    def send_test(self, subscription_id: int) -> int:
        """The "send test" button: a made-up event, delivered like any other."""
        self.get(subscription_id)
        now = time.time()
        payload = {
            "id": None,
            "idempotency_key": f"test-{secrets.token_hex(8)}",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now)),
            "camera": "test",
            "person_id": None,
            "name": None,
            "known": False,
            "decision": "unknown",
            "confidence": None,
            "test": True,
        }
        return self._enqueue(subscription_id, str(payload["idempotency_key"]), "test", payload)

    def _enqueue(self, subscription_id: int, key: str, kind: str, payload: dict[str, Any]) -> int:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        now = time.time()
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO deliveries (subscription_id, event_key, kind, body, status, attempts, next_at, "
                "created, updated) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                (subscription_id, key, kind, body, now, now, now),
            )
            if cursor.rowcount:
                ident = int(cursor.lastrowid or 0)
            else:
                row = self._db.execute(
                    "SELECT id FROM deliveries WHERE subscription_id = ? AND event_key = ?", (subscription_id, key)
                ).fetchone()
                ident = int(row["id"])
        self._wake.set()
        return ident

    def retry(self, delivery_id: int) -> dict[str, Any]:
        """Send a dead letter (or any delivery) again, from a fresh count of attempts."""
        self.delivery(delivery_id)
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_at = ?, updated = ? WHERE id = ?",
                (time.time(), time.time(), delivery_id),
            )
        self._wake.set()
        return self.delivery(delivery_id)

    def _delivery(self, row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "subscription_id": row["subscription_id"],
            "event_key": row["event_key"],
            "kind": row["kind"],
            "status": row["status"],
            "attempts": row["attempts"],
            "next_at": row["next_at"] if row["status"] == "pending" else None,
            "last_status": row["last_status"],
            "last_error": row["last_error"],
            "created": row["created"],
            "updated": row["updated"],
            "payload": json.loads(row["body"]),
        }

    def delivery(self, delivery_id: int) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no webhook delivery with id {delivery_id}")
            attempts = self._db.execute(
                "SELECT at, status, error, duration_ms FROM attempts WHERE delivery_id = ? ORDER BY id", (delivery_id,)
            ).fetchall()
        out = self._delivery(row)
        out["log"] = [dict(a) for a in attempts]
        return out

    def deliveries(
        self, subscription_id: int | None = None, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[Any] = []
        if subscription_id is not None:
            where.append("subscription_id = ?")
            args.append(subscription_id)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        sql = "SELECT * FROM deliveries" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        return [self._delivery(r) for r in rows]

    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self.deliveries(status="dead", limit=limit, offset=offset)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self._db.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
            subscriptions = int(self._db.execute("SELECT count(*) FROM subscriptions").fetchone()[0])
        return {"subscriptions": subscriptions, **{s: int(counts.get(s, 0)) for s in ("pending", "delivered", "dead")}}

    # -- the sender ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="faceid-webhook")
        self._thread = threading.Thread(target=self._run, name="faceid-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_S + 2)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._db.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.deliver_due()
            except Exception as error:
                log.warning("webhooks: %s", error, exc_info=True)
                wait = 1.0
            self._wake.wait(wait)
            self._wake.clear()

    def deliver_due(self) -> float:
        """Start every delivery that is due, each subscription's in order on one worker (a slow or dead
        receiver holds up only its own deliveries); answers how long until the next one is due."""
        now = time.time()
        with self._lock:
            rows = self._db.execute(
                "SELECT d.id, d.subscription_id, d.body, d.kind, d.attempts, s.url, s.secret FROM deliveries d "
                "JOIN subscriptions s ON s.id = d.subscription_id "
                "WHERE d.status = 'pending' AND d.next_at <= ? ORDER BY d.next_at LIMIT 200",
                (now,),
            ).fetchall()
        by_subscription: dict[int, list[sqlite3.Row]] = {}
        for row in rows:
            by_subscription.setdefault(int(row["subscription_id"]), []).append(row)
        for subscription_id, due in by_subscription.items():
            with self._lock:
                if subscription_id in self._busy or self._pool is None:
                    continue
                self._busy.add(subscription_id)
            self._pool.submit(self._work, subscription_id, due)
        with self._lock:
            due = self._db.execute("SELECT min(next_at) FROM deliveries WHERE status = 'pending'").fetchone()[0]
        return 1.0 if due is None else max(0.01, min(1.0, float(due) - time.time()))

    def _work(self, subscription_id: int, rows: list[sqlite3.Row]) -> None:
        try:
            for row in rows:
                if self._stop.is_set():
                    break
                if self._still_due(row):
                    self._attempt(row)
        except Exception as error:
            log.warning("webhooks: %s", error, exc_info=True)
        finally:
            with self._lock:
                self._busy.discard(subscription_id)
            self._wake.set()

    def _still_due(self, row: sqlite3.Row) -> bool:
        """The rows a worker is handed were read before it started: one that another worker has sent since
        (it was read while that send was in flight) must not go out twice."""
        with self._lock:
            current = self._db.execute("SELECT status, attempts FROM deliveries WHERE id = ?", (row["id"],)).fetchone()
        return current is not None and current[0] == "pending" and int(current[1]) == int(row["attempts"])

    def _attempt(self, row: sqlite3.Row) -> None:
        body = bytes(row["body"])
        stamp = int(time.time())
        request = urllib.request.Request(
            row["url"],
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "faceid-webhooks",
                EVENT_HEADER: row["kind"],
                DELIVERY_HEADER: str(row["id"]),
                TIMESTAMP_HEADER: str(stamp),
                SIGNATURE_HEADER: sign(row["secret"], stamp, body),
            },
        )
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                status = int(response.status)
        except urllib.error.HTTPError as failure:
            status, error = int(failure.code), f"HTTP {failure.code}"
        except (urllib.error.URLError, OSError, ValueError) as failure:
            error = str(getattr(failure, "reason", failure))[:500]
        elapsed = (time.perf_counter() - started) * 1000
        attempts = int(row["attempts"]) + 1
        ok = status is not None and 200 <= status < 300
        now = time.time()
        if ok:
            state, next_at = "delivered", now
        elif attempts >= self.policy.max_attempts:
            state, next_at = "dead", now
            log.warning("webhook delivery %d gave up after %d attempts: %s", row["id"], attempts, error)
        else:
            state, next_at = "pending", now + self.policy.delay(attempts)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, next_at = ?, last_status = ?, last_error = ?, "
                "updated = ? WHERE id = ?",
                (state, attempts, next_at, status, error, now, row["id"]),
            )
            self._db.execute(
                "INSERT INTO attempts (delivery_id, at, status, error, duration_ms) VALUES (?, ?, ?, ?, ?)",
                (row["id"], now, status, error, elapsed),
            )
            self._db.execute("COMMIT")

"""A bounded queue on disk: what waits for the broker survives a restart or a power cut.

SQLite in WAL mode with ``synchronous=FULL``; a row is deleted only once the broker acknowledged it. Past
``max_rows`` the oldest rows are dropped (and counted), so a broker that never returns cannot fill the disk.
A second table remembers which events were queued (7 days), so an event seen twice — by two server
processes, or after a restart — is queued once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SEEN_DAYS = 7


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    topic: str
    payload: bytes
    retain: bool


class DurableQueue:
    def __init__(self, path: Path, max_rows: int = 100_000) -> None:
        self.path = path
        self.max_rows = max_rows
        self.dropped = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS messages (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL,
                payload BLOB NOT NULL,
                retain INTEGER NOT NULL DEFAULT 0,
                created REAL NOT NULL
            );
            CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS announced (topic TEXT PRIMARY KEY, clears TEXT NOT NULL);
            """
        )
        self._db.execute("DELETE FROM seen WHERE at < ?", (time.time() - SEEN_DAYS * 86400,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, messages: list[tuple[str, Any, bool]], key: str | None = None) -> bool:
        """Queue ``(topic, payload, retain)`` messages in one transaction. With ``key``: only if that key
        was never queued before; answers whether anything was queued."""
        rows = [(t, p if isinstance(p, bytes) else _encode(p), int(r), time.time()) for t, p, r in messages]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if key is not None:
                    cursor = self._db.execute("INSERT OR IGNORE INTO seen (key, at) VALUES (?, ?)", (key, time.time()))
                    if cursor.rowcount == 0:
                        self._db.execute("ROLLBACK")
                        return False
                self._db.executemany("INSERT INTO messages (topic, payload, retain, created) VALUES (?, ?, ?, ?)", rows)
                count = self._db.execute("SELECT count(*) FROM messages").fetchone()[0]
                if count > self.max_rows:
                    excess = count - self.max_rows
                    self._db.execute(
                        "DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?)", (excess,)
                    )
                    self.dropped += excess
                    log.warning("MQTT queue full (%d messages): dropped the %d oldest", self.max_rows, excess)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def after(self, last_id: int, limit: int) -> list[QueuedMessage]:
        """The next ``limit`` messages with an id above ``last_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, retain FROM messages WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
            ).fetchall()
        return [QueuedMessage(int(i), str(t), bytes(p), bool(r)) for i, t, p, r in rows]

    def delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
            self._db.execute("COMMIT")

    # -- which discovery configs were published (so that those of deleted people can be removed) ----------

    def remember(self, configs: dict[str, list[str]]) -> None:
        """Discovery config topics published, each with the state topics to clear when it is removed."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR REPLACE INTO announced (topic, clears) VALUES (?, ?)",
                [(t, json.dumps(c)) for t, c in configs.items()],
            )
            self._db.execute("COMMIT")

    def announced(self) -> dict[str, list[str]]:
        with self._lock:
            rows = self._db.execute("SELECT topic, clears FROM announced").fetchall()
        return {str(t): list(json.loads(c)) for t, c in rows}

    def forget(self, topics: list[str]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM announced WHERE topic = ?", [(t,) for t in topics])
            self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM messages").fetchone()[0])


def _encode(payload: Any) -> bytes:
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()

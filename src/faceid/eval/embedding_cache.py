"""A small on-disk cache of per-image results, so reruns of an evaluation are quick."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np

from faceid.paths import cache_dir


class EmbeddingCache:
    """Maps (configuration, image file identity) to a stored descriptor and box.

    A file's identity is its absolute path, size and modification time, so an edited image is
    recomputed. ``config`` must name everything that changes the result (model, detector...).
    """

    def __init__(self, config: str, path: Path | None = None) -> None:
        self.config = config
        self.path = path or cache_dir() / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Several evaluations may share the cache; wait for a writer rather than fail, and commit often.
        self._db = sqlite3.connect(self.path, timeout=60)
        self._pending = 0
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, found INTEGER, box BLOB, embedding BLOB)"
        )

    def _key(self, image: Path) -> str:
        stat = image.stat()
        raw = f"{self.config}|{image.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        return hashlib.sha1(raw.encode()).hexdigest()

    def get(self, image: Path) -> tuple[bool, np.ndarray | None, np.ndarray | None] | None:
        query = "SELECT found, box, embedding FROM results WHERE key = ?"
        row = self._db.execute(query, (self._key(image),)).fetchone()
        if row is None:
            return None
        found, box, embedding = row
        return bool(found), _as_array(box), _as_array(embedding)

    def put(self, image: Path, found: bool, box: np.ndarray | None, embedding: np.ndarray | None) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
            (
                self._key(image),
                int(found),
                None if box is None else np.asarray(box, np.float32).tobytes(),
                None if embedding is None else np.asarray(embedding, np.float32).tobytes(),
            ),
        )
        self._pending += 1
        if self._pending >= 64:
            self.commit()

    def commit(self) -> None:
        self._db.commit()
        self._pending = 0

    def close(self) -> None:
        self._db.commit()
        self._db.close()


def _as_array(blob: bytes | None) -> np.ndarray | None:
    return np.frombuffer(blob, np.float32).copy() if blob is not None else None

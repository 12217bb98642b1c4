"""Nearest-face search over the gallery of one descriptor model.

:class:`ExactIndex` keeps every embedding in one numpy matrix and computes all distances per
query (exact; the default). :class:`IvfIndex` is an in-process approximate index (FAISS IVF-Flat)
for large galleries on either database; :class:`PgvectorIndex` searches pgvector's HNSW index inside
PostgreSQL instead (on request: at 1M faces its recall was far lower). All return Euclidean distances,
nearest first, as :class:`Neighbours`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection as _SQLALCHEMY_CONNECTION
from sqlalchemy.engine import Engine

from faceid.thresholds import (
    IVF_MIN_POINTS_PER_CELL,
    IVF_NPROBE,
    IVF_PARALLEL_MIN_SCANNED,
    IVF_RETRAIN_GROWTH,
    IVF_TRAIN_POINTS_PER_CELL,
    PGVECTOR_EF_SEARCH,
    PGVECTOR_HNSW_EF_CONSTRUCTION,
    PGVECTOR_HNSW_M,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Neighbours:
    face_ids: np.ndarray  # (k,) int64
    person_ids: np.ndarray  # (k,) int64
    distances: np.ndarray  # (k,) float32, ascending

    def __len__(self) -> int:
        return len(self.face_ids)


class FaceIndex(Protocol):
    kind: str

    def __len__(self) -> int: ...

    def upsert(self, face_ids: np.ndarray, person_ids: np.ndarray, embeddings: np.ndarray) -> None: ...

    def remove(self, face_ids: Iterable[int]) -> None: ...

    def person_of(self, face_ids: Iterable[int]) -> dict[int, int]: ...

    def clear(self) -> None: ...

    def search(self, query: np.ndarray, k: int) -> Neighbours: ...


def _empty() -> Neighbours:
    return Neighbours(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))


class ExactIndex:
    """Every embedding in a dense matrix; a query costs one matrix-vector product and a partial sort."""

    kind = "exact"

    def __init__(self, dim: int = 128) -> None:
        self.dim = dim
        self._lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._embeddings = np.empty((0, self.dim), np.float32)
            self._sq_norms = np.empty(0, np.float32)
            self._face_ids = np.empty(0, np.int64)
            self._person_ids = np.empty(0, np.int64)
            self._slots: dict[int, int] = {}
            self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def embeddings(self) -> np.ndarray:
        return self._embeddings[: self._size]

    @property
    def face_ids(self) -> np.ndarray:
        return self._face_ids[: self._size]

    @property
    def person_ids(self) -> np.ndarray:
        return self._person_ids[: self._size]

    def _reserve(self, extra: int) -> None:
        needed = self._size + extra
        capacity = len(self._face_ids)
        if needed <= capacity:
            return
        new_capacity = max(needed, int(capacity * 1.5) + 1024)
        embeddings = np.empty((new_capacity, self.dim), np.float32)
        embeddings[: self._size] = self._embeddings[: self._size]
        self._embeddings = embeddings
        for name in ("_sq_norms", "_face_ids", "_person_ids"):
            old = getattr(self, name)
            grown = np.empty(new_capacity, old.dtype)
            grown[: self._size] = old[: self._size]
            setattr(self, name, grown)

    def upsert(self, face_ids: np.ndarray, person_ids: np.ndarray, embeddings: np.ndarray) -> None:
        face_ids = np.asarray(face_ids, np.int64)
        person_ids = np.asarray(person_ids, np.int64)
        with self._lock:
            if self._size == 0 and len(face_ids) and np.asarray(embeddings).size != len(face_ids) * self.dim:
                self.dim = np.asarray(embeddings).size // len(face_ids)  # an empty index takes the model's length
                self.clear()
            embeddings = np.asarray(embeddings, np.float32).reshape(-1, self.dim)
            self._reserve(len(face_ids))
            for face_id, person_id, embedding in zip(face_ids.tolist(), person_ids.tolist(), embeddings, strict=True):
                slot = self._slots.get(face_id)
                if slot is None:
                    slot = self._size
                    self._slots[face_id] = slot
                    self._size += 1
                    self._face_ids[slot] = face_id
                self._person_ids[slot] = person_id
                self._embeddings[slot] = embedding
                self._sq_norms[slot] = float(embedding @ embedding)

    def person_of(self, face_ids: Iterable[int]) -> dict[int, int]:
        """The person of each of ``face_ids`` that the index holds."""
        with self._lock:
            return {
                int(f): int(self._person_ids[slot]) for f in face_ids if (slot := self._slots.get(int(f))) is not None
            }

    def remove(self, face_ids: Iterable[int]) -> None:
        with self._lock:
            for face_id in face_ids:
                slot = self._slots.pop(int(face_id), None)
                if slot is None:
                    continue
                last = self._size - 1
                if slot != last:  # keep the matrix dense: move the last row into the hole
                    moved = int(self._face_ids[last])
                    self._embeddings[slot] = self._embeddings[last]
                    self._sq_norms[slot] = self._sq_norms[last]
                    self._face_ids[slot] = moved
                    self._person_ids[slot] = self._person_ids[last]
                    self._slots[moved] = slot
                self._size = last

    def distances(self, query: np.ndarray) -> np.ndarray:
        """Distances from ``query`` to every face, in index order."""
        query = np.asarray(query, np.float32).reshape(self.dim)
        with self._lock:
            n = self._size
            squared = self._sq_norms[:n] - 2.0 * (self._embeddings[:n] @ query) + float(query @ query)
        return np.sqrt(np.maximum(squared, 0.0))

    def search(self, query: np.ndarray, k: int) -> Neighbours:
        with self._lock:
            n = self._size
            if n == 0 or k <= 0:
                return _empty()
            distances = self.distances(query)
            face_ids, person_ids = self._face_ids[:n], self._person_ids[:n]
            k = min(k, n)
            top = np.argpartition(distances, k - 1)[:k] if k < n else np.arange(n)
            top = top[np.argsort(distances[top], kind="stable")]
            return Neighbours(face_ids[top].copy(), person_ids[top].copy(), distances[top].astype(np.float32))


class IvfIndex:
    """FAISS inverted-file index (IVF-Flat): k-means cells over the gallery, a query scans the nearest cells.

    Chosen over HNSW graphs because it builds several times faster (a k-means and one assignment pass
    instead of a graph insertion per face), and at 1M faces it kept recall@1 at 0.9975 where pgvector's
    HNSW fell to 0.77 (bench/RESULTS.md, "Gallery search"). Cells are learned when the index is built;
    when the gallery has grown well past that size, :attr:`stale` asks for a rebuild.
    """

    kind = "ivf"

    def __init__(self, dim: int = 128, nprobe: int = IVF_NPROBE, threads: int = 0) -> None:
        self.dim = dim
        self.nprobe = nprobe
        self.threads = threads or (os.cpu_count() or 1)
        self._lock = threading.RLock()
        self.trained_size = 0
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._index: object | None = None
            self._persons: dict[int, int] = {}
            self.trained_size = 0

    def __len__(self) -> int:
        return len(self._persons)

    @staticmethod
    def cells_for(size: int) -> int:
        """About 4 sqrt(n) cells, each trained on at least IVF_MIN_POINTS_PER_CELL faces."""
        return int(max(1, min(4 * np.sqrt(max(size, 1)), size // IVF_MIN_POINTS_PER_CELL, 65536)))

    def build(self, face_ids: np.ndarray, person_ids: np.ndarray, embeddings: np.ndarray) -> None:
        """Learn the cells from these faces and index them (replacing anything held)."""
        import faiss

        embeddings = np.ascontiguousarray(np.asarray(embeddings, np.float32).reshape(-1, self.dim))
        cells = self.cells_for(len(embeddings))
        with self._lock:
            faiss.omp_set_num_threads(self.threads)
            # Past a thousand cells, finding the nearest cells by brute force costs more than scanning them.
            quantizer = faiss.IndexHNSWFlat(self.dim, 32) if cells >= 1024 else faiss.IndexFlatL2(self.dim)
            if isinstance(quantizer, faiss.IndexHNSWFlat):
                quantizer.hnsw.efSearch = max(64, self.nprobe)
            index = faiss.IndexIVFFlat(quantizer, self.dim, cells, faiss.METRIC_L2)
            # The store asks one query at a time: spread its cells over the threads (FAISS's default splits a
            # batch by query, which leaves all but one core idle). 1.7x faster single queries on 2 cores.
            index.parallel_mode = 1
            rng = np.random.default_rng(0)
            sample = embeddings
            if len(embeddings) > IVF_TRAIN_POINTS_PER_CELL * cells:
                sample = embeddings[rng.choice(len(embeddings), IVF_TRAIN_POINTS_PER_CELL * cells, replace=False)]
            index.train(sample)
            index.nprobe = min(self.nprobe, cells)
            index.add_with_ids(embeddings, np.asarray(face_ids, np.int64))
            self._index = index
            self._index_quantizer = quantizer  # faiss does not own it from Python: keep it alive
            self._persons = dict(zip(np.asarray(face_ids).tolist(), np.asarray(person_ids).tolist(), strict=True))
            self.trained_size = len(embeddings)

    def set_nprobe(self, nprobe: int) -> None:
        """Cells scanned per query (more: higher recall, slower)."""
        import faiss

        with self._lock:
            self.nprobe = nprobe
            if self._index is None:
                return
            ivf = faiss.extract_index_ivf(self._index)  # type: ignore[arg-type]
            ivf.nprobe = min(nprobe, ivf.nlist)
            quantizer = faiss.downcast_index(ivf.quantizer)
            if isinstance(quantizer, faiss.IndexHNSWFlat):
                quantizer.hnsw.efSearch = max(64, nprobe)

    @property
    def stale(self) -> bool:
        """The gallery has outgrown the cells it was trained on (scans would grow with it)."""
        return len(self) > IVF_RETRAIN_GROWTH * max(self.trained_size, IVF_MIN_POINTS_PER_CELL)

    def upsert(self, face_ids: np.ndarray, person_ids: np.ndarray, embeddings: np.ndarray) -> None:
        face_ids = np.asarray(face_ids, np.int64)
        embeddings = np.ascontiguousarray(np.asarray(embeddings, np.float32).reshape(-1, self.dim))
        with self._lock:
            if self._index is None:
                self.build(face_ids, person_ids, embeddings)
                return
            existing = [f for f in face_ids.tolist() if f in self._persons]
            if existing:
                self._index.remove_ids(np.asarray(existing, np.int64))  # type: ignore[attr-defined]
            if len(face_ids):
                self._index.add_with_ids(embeddings, face_ids)  # type: ignore[attr-defined]
            self._persons.update(zip(face_ids.tolist(), np.asarray(person_ids, np.int64).tolist(), strict=True))

    def person_of(self, face_ids: Iterable[int]) -> dict[int, int]:
        with self._lock:
            return {int(f): self._persons[int(f)] for f in face_ids if int(f) in self._persons}

    def keys(self) -> list[int]:
        with self._lock:
            return list(self._persons)

    def remove(self, face_ids: Iterable[int]) -> None:
        with self._lock:
            present = [int(f) for f in face_ids if int(f) in self._persons]
            if not present or self._index is None:
                return
            self._index.remove_ids(np.asarray(present, np.int64))  # type: ignore[attr-defined]
            for face_id in present:
                del self._persons[face_id]

    def search(self, query: np.ndarray, k: int) -> Neighbours:
        import faiss

        with self._lock:
            if not self._persons or k <= 0 or self._index is None:
                return _empty()
            # A small scan is over before threads could help, and on a busy machine waiting for them costs
            # milliseconds; a large one (a big gallery) is split over the cores by cells (parallel_mode 1).
            ivf = faiss.extract_index_ivf(self._index)  # type: ignore[arg-type]
            scanned = ivf.nprobe * ivf.ntotal / max(ivf.nlist, 1)
            faiss.omp_set_num_threads(self.threads if scanned >= IVF_PARALLEL_MIN_SCANNED else 1)
            squared, keys = self._index.search(  # type: ignore[attr-defined]
                np.asarray(query, np.float32).reshape(1, self.dim), min(k, len(self._persons))
            )
            found = keys[0] >= 0
            keys, squared = keys[0][found].astype(np.int64), squared[0][found]
            persons = np.fromiter((self._persons[int(key)] for key in keys), np.int64, len(keys))
        return Neighbours(keys, persons, np.sqrt(np.maximum(squared, 0.0)).astype(np.float32))

    def save(self, path: Path) -> None:
        """Write the index and the person map (temporary names, then rename: never half a file)."""
        import faiss

        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._index is None:
                return
            index_tmp = path.with_suffix(".faiss.part")
            faiss.write_index(self._index, str(index_tmp))  # type: ignore[call-overload]
            pairs = np.array(list(self._persons.items()), np.int64).reshape(-1, 2)
            map_tmp = path.with_suffix(".persons.part.npy")
            np.save(map_tmp, np.concatenate([[[self.trained_size, 0]], pairs]))
        os.replace(map_tmp, path.with_suffix(".persons.npy"))
        os.replace(index_tmp, path.with_suffix(".faiss"))

    def load(self, path: Path) -> bool:
        import faiss

        index_path, map_path = path.with_suffix(".faiss"), path.with_suffix(".persons.npy")
        if not index_path.is_file() or not map_path.is_file():
            return False
        with self._lock:
            try:
                index = faiss.read_index(str(index_path))
                table = np.load(map_path)
            except (OSError, ValueError, RuntimeError) as error:
                log.warning("ignoring the saved index at %s: %s", index_path, error)
                return False
            if index.ntotal != len(table) - 1 or index.d != self.dim:
                log.warning("ignoring the saved index at %s: it does not match its person map", index_path)
                return False
            self._index = index
            self.set_nprobe(self.nprobe)
            self.trained_size = int(table[0, 0])
            self._persons = dict(zip(table[1:, 0].tolist(), table[1:, 1].tolist(), strict=True))
        return True


def hnsw_index_name(model_id: str) -> str:
    """The name of the partial HNSW index over one model's faces."""
    import hashlib

    return "ix_faces_hnsw_" + hashlib.sha256(model_id.encode()).hexdigest()[:12]


def create_hnsw_index(
    connection: Any,
    model_id: str,
    dim: int,
    m: int = PGVECTOR_HNSW_M,
    ef_construction: int = PGVECTOR_HNSW_EF_CONSTRUCTION,
) -> str:
    """``CREATE INDEX IF NOT EXISTS`` the partial HNSW index over ``model_id``'s faces: the column holds
    descriptors of any length, so the index is on ``embedding::vector(dim)`` and only that model's rows
    (which also keeps a re-embedding's second model out of the graph). ``connection`` runs SQL text
    (SQLAlchemy or psycopg); returns the index name."""
    name = hnsw_index_name(model_id)
    literal = model_id.replace("'", "''")
    sql = (
        f"CREATE INDEX IF NOT EXISTS {name} ON faces USING hnsw ((embedding::vector({int(dim)})) vector_l2_ops) "
        f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) WHERE model_id = '{literal}'"
    )
    execute = connection.execute
    execute(text(sql) if isinstance(connection, _SQLALCHEMY_CONNECTION) else sql)
    return name


class PgvectorIndex:
    """Approximate search by pgvector's HNSW index inside PostgreSQL; nothing is held in memory.

    Each model has its own partial index (:func:`create_hnsw_index`), made when its gallery is first searched
    this way."""

    kind = "pgvector"

    def __init__(
        self,
        engine: Engine,
        model_id: str,
        ef_search: int = PGVECTOR_EF_SEARCH,
        iterative_scan: str = "relaxed_order",
    ) -> None:
        if iterative_scan not in ("off", "relaxed_order", "strict_order"):
            raise ValueError(f"iterative_scan must be off, relaxed_order or strict_order, not {iterative_scan!r}")
        self.engine = engine
        self.model_id = model_id
        self.ef_search = ef_search
        self.iterative_scan = iterative_scan
        self._size = 0
        from faceid.vision.sface import descriptor_dimensions

        self.dim = descriptor_dimensions(model_id)

    def ensure_index(self) -> None:
        with self.engine.begin() as connection:
            create_hnsw_index(connection, self.model_id, self.dim)

    def __len__(self) -> int:
        return self._size

    def upsert(self, face_ids: np.ndarray, person_ids: np.ndarray, embeddings: np.ndarray) -> None:
        self._size += len(face_ids)  # the rows are in the database already; only the count is kept

    def person_of(self, face_ids: Iterable[int]) -> dict[int, int]:
        return {}  # not held in memory

    def remove(self, face_ids: Iterable[int]) -> None:
        self._size = max(0, self._size - sum(1 for _ in face_ids))

    def clear(self) -> None:
        self._size = 0

    def set_size(self, size: int) -> None:
        self._size = size

    def search(self, query: np.ndarray, k: int) -> Neighbours:
        if k <= 0:
            return _empty()
        if np.asarray(query).size != self.dim:
            raise ValueError(f"a {self.model_id} descriptor has {self.dim} values, not {np.asarray(query).size}")
        literal = "[" + ",".join(f"{v:.8g}" for v in np.asarray(query, np.float32).reshape(-1).tolist()) + "]"
        with self.engine.connect() as connection, connection.begin():
            # SET LOCAL lasts for this transaction only; iterative scans keep k results despite the model filter.
            connection.execute(text(f"SET LOCAL hnsw.ef_search = {int(max(self.ef_search, k))}"))
            connection.execute(text(f"SET LOCAL hnsw.iterative_scan = {self.iterative_scan}"))
            # A generic plan cannot use an index built for one model only (WHERE model_id = '...').
            connection.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            rows = connection.execute(
                text(
                    f"SELECT id, person_id, embedding::vector({self.dim}) <-> CAST(:q AS vector({self.dim})) "
                    f"AS distance FROM faces WHERE model_id = :model "
                    f"ORDER BY embedding::vector({self.dim}) <-> CAST(:q AS vector({self.dim})) LIMIT :k"
                ),
                {"q": literal, "model": self.model_id, "k": int(k)},
            ).all()
        if not rows:
            return _empty()
        face_ids = np.array([r[0] for r in rows], np.int64)
        person_ids = np.array([r[1] for r in rows], np.int64)
        distances = np.array([r[2] for r in rows], np.float32)
        order = np.argsort(distances, kind="stable")  # relaxed order: sort what came back
        return Neighbours(face_ids[order], person_ids[order], distances[order])

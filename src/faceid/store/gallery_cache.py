"""The searchable gallery of one descriptor model, kept in step with the database.

Every transaction that adds, removes or moves faces bumps ``store_state.gallery_version`` and logs
the face ids it touched in ``face_log``. A gallery remembers the version it reflects; before a
search it reads the current version (one cheap query) and, if another process or thread changed
faces since, re-reads just those faces. The row lock on ``store_state`` (PostgreSQL) or the single
writer (SQLite) makes versions commit in order, so no change is missed.

Besides the face index it keeps, per person, the number of faces and (on demand) the centroid of
their descriptors, which is what identification scores against.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import distinct, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from faceid.errors import BadInputError
from faceid.store.index import ExactIndex, FaceIndex, IvfIndex, Neighbours, PgvectorIndex
from faceid.store.schema import Face, FaceLog, Person, StoreState
from faceid.thresholds import APPROX_INDEX_MIN_FACES
from faceid.vision.sface import descriptor_dimensions

log = logging.getLogger(__name__)

INDEX_CHOICES = ("auto", "exact", "approx", "pgvector")
LOAD_BATCH = 20_000
IN_CHUNK = 500
# Past this many changed faces a full reload is cheaper than fetching the changes one by one.
FULL_RELOAD_FRACTION = 0.5


_VERSION_QUERY = select(StoreState.gallery_version).where(StoreState.id == 1)


def current_version(session: Session | Connection) -> int:
    return int(session.scalar(_VERSION_QUERY) or 0)


class Gallery:
    def __init__(self, engine: Engine, model_id: str, index: str = "auto", cache_dir: Path | None = None) -> None:
        if index not in INDEX_CHOICES:
            raise ValueError(f"index must be one of {', '.join(INDEX_CHOICES)}, not {index!r}")
        self.engine = engine
        self.model_id = model_id
        self.requested = index
        self.cache_dir = cache_dir
        self.postgres = engine.dialect.name == "postgresql"
        self.version = -1
        self._lock = threading.RLock()
        self._index: FaceIndex | None = None
        self._faces_per_person: dict[int, int] = {}  # in-memory indexes only
        self._people_count: int | None = None  # pgvector: counted in the database, per version
        self._centroids: dict[int, np.ndarray] = {}
        self._centroid_counts: dict[int, int] = {}  # faces averaged by each cached centroid
        self._names: dict[int, str] = {}  # person id -> name, dropped whenever the version moves

    # -- choosing and loading ---------------------------------------------------------------

    def _count(self, session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(Face).where(Face.model_id == self.model_id)) or 0)

    def _choose(self, size: int) -> str:
        if self.requested == "auto":
            return "approx" if size >= APPROX_INDEX_MIN_FACES else "exact"
        return self.requested

    @property
    def kind(self) -> str:
        return self._index.kind if self._index is not None else "none"

    def _saved_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(f"{self.engine.url}|{self.model_id}".encode()).hexdigest()[:16]
        return self.cache_dir / f"ivf-{digest}"

    def load(self) -> None:
        """Build the index from the database (at start, or when it fell too far behind)."""
        with self._lock, Session(self.engine) as session:
            self._centroids.clear()
            self._centroid_counts.clear()
            self._names.clear()
            self._faces_per_person = {}
            self._people_count = None
            version = current_version(session)
            size = self._count(session)
            choice = self._choose(size)
            if choice == "pgvector":
                if not self.postgres:
                    raise ValueError("the pgvector index needs a PostgreSQL database")
                pgvector = PgvectorIndex(self.engine, self.model_id)
                pgvector.ensure_index()
                pgvector.set_size(size)
                self._index, self.version = pgvector, version
                log.info("gallery %s: %d faces, searched by pgvector's HNSW index", self.model_id, size)
                return
            index: FaceIndex
            if choice == "approx":
                ivf = IvfIndex(self._dimensions(session))
                saved = self._saved_path()
                if saved is not None and self._load_saved(ivf, saved, session, version):
                    return
                index = ivf
            else:
                index = ExactIndex(self._dimensions(session))
            self._fill(index, session)
            self._index = index
            self.version = version
            log.info("gallery %s: %d faces in the %s index", self.model_id, len(index), index.kind)
            if isinstance(index, IvfIndex) and (saved := self._saved_path()) is not None:
                self._save(index, saved, version)

    def _dimensions(self, session: Session) -> int:
        """The length of this model's descriptors: as stored, or as its id says when none is."""
        stored = session.scalar(select(Face.embedding).where(Face.model_id == self.model_id).limit(1))
        return int(np.asarray(stored).size) if stored is not None else descriptor_dimensions(self.model_id)

    def _fill(self, index: FaceIndex, session: Session) -> None:
        last_id = 0
        held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # the IVF index learns from all faces at once
        while True:
            rows = session.execute(
                select(Face.id, Face.person_id, Face.embedding)
                .where(Face.model_id == self.model_id, Face.id > last_id)
                .order_by(Face.id)
                .limit(LOAD_BATCH)
            ).all()
            if not rows:
                break
            batch = (
                np.array([r[0] for r in rows], np.int64),
                np.array([r[1] for r in rows], np.int64),
                np.stack([r[2] for r in rows]),
            )
            if isinstance(index, IvfIndex):
                held.append(batch)
            else:
                index.upsert(*batch)
            for person in batch[1].tolist():
                self._faces_per_person[person] = self._faces_per_person.get(person, 0) + 1
            last_id = rows[-1][0]
        if held and isinstance(index, IvfIndex):
            index.build(*(np.concatenate(parts) for parts in zip(*held, strict=True)))

    def _save(self, index: IvfIndex, path: Path, version: int) -> None:
        try:
            index.save(path)
            path.with_suffix(".version").write_text(str(version))
        except OSError as error:
            log.warning("could not save the approximate index to %s: %s", path, error)

    def _load_saved(self, index: IvfIndex, path: Path, session: Session, version: int) -> bool:
        try:
            saved_version = int(path.with_suffix(".version").read_text())
        except (OSError, ValueError):
            return False
        if saved_version > version or not index.load(path):
            return False
        self._index, self.version = index, saved_version
        counts: dict[int, int] = {}
        for person in index.person_of(index.keys()).values():
            counts[person] = counts.get(person, 0) + 1
        self._faces_per_person = counts
        self._catch_up(session, version)
        log.info("gallery %s: loaded the saved approximate index (%d faces)", self.model_id, len(index))
        return True

    def save(self) -> None:
        """Persist an in-process approximate index so the next start need not rebuild it."""
        with self._lock:
            path = self._saved_path()
            if isinstance(self._index, IvfIndex) and path is not None:
                self._save(self._index, path, self.version)

    # -- keeping in step --------------------------------------------------------------------

    def sync(self) -> None:
        with self._lock:
            if self._index is None:
                self.load()
                return
            with self.engine.connect() as connection:  # Core, not a Session: this runs before every search
                version = current_version(connection)
            if version != self.version:
                self._names.clear()
                with Session(self.engine) as session:
                    self._catch_up(session, version)

    def _catch_up(self, session: Session, version: int) -> None:
        assert self._index is not None
        changed = list(
            session.scalars(
                select(FaceLog.face_id).where(FaceLog.version > self.version, FaceLog.version <= version).distinct()
            )
        )
        if len(changed) > max(1000, FULL_RELOAD_FRACTION * len(self._index)):
            self._index = None
            self.load()
            return
        if isinstance(self._index, PgvectorIndex):
            self._index.set_size(self._count(session))
            self._people_count = None
            self._centroids.clear()  # the faces' former owners are not known here
            self._centroid_counts.clear()
            self.version = version
            return
        before = self._index.person_of(changed)
        rows: list[Any] = []
        for start in range(0, len(changed), IN_CHUNK):
            rows.extend(
                session.execute(
                    select(Face.id, Face.person_id, Face.embedding).where(
                        Face.id.in_(changed[start : start + IN_CHUNK]), Face.model_id == self.model_id
                    )
                ).all()
            )
        present = {r[0] for r in rows}
        for person in before.values():
            self._faces_per_person[person] -= 1
            if self._faces_per_person[person] <= 0:
                del self._faces_per_person[person]
        if rows:
            self._index.upsert(
                np.array([r[0] for r in rows], np.int64),
                np.array([r[1] for r in rows], np.int64),
                np.stack([r[2] for r in rows]),
            )
        self._index.remove(f for f in changed if f not in present)
        for _, person, _ in rows:
            self._faces_per_person[person] = self._faces_per_person.get(person, 0) + 1
        for person in {*before.values(), *(r[1] for r in rows)}:
            self._centroids.pop(person, None)
            self._centroid_counts.pop(person, None)
        self.version = version
        if self.requested == "auto" and self._choose(len(self._index)) == "approx" and self.kind == "exact":
            log.info(
                "gallery %s grew past %d faces: switching to the approximate index", self.model_id, len(self._index)
            )
            self._index = None
            self.load()

    # -- searching --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index) if self._index is not None else 0

    def search(self, query: np.ndarray, k: int) -> Neighbours:
        self.sync()
        with self._lock:
            assert self._index is not None
            dim = getattr(self._index, "dim", None)
            size = np.asarray(query).size
            if dim is not None and len(self._index) and size != dim:
                # A descriptor of another model (dlib's 128 values against a fused gallery's 256): say so.
                raise BadInputError(
                    f"a descriptor of {size} values cannot be searched among {self.model_id}'s faces, which have "
                    f"{dim}: describe faces with the store's own analyzer (store.analyzer, store.identify)"
                )
            return self._index.search(query, k)

    def names(self, person_ids: Sequence[int]) -> dict[int, str]:
        """Display names, cached until the next change to the store's people or faces."""
        with self._lock:
            missing = [p for p in person_ids if p not in self._names]
            if missing:
                with self.engine.connect() as connection:
                    rows = connection.execute(select(Person.id, Person.name).where(Person.id.in_(missing)))
                    self._names.update({int(person_id): str(name) for person_id, name in rows})
            return {p: self._names[p] for p in person_ids if p in self._names}

    def people_count(self, refresh: bool = True) -> int:
        """How many people have at least one face of this model (``refresh=False``: as of the last search)."""
        if refresh or self._index is None:
            self.sync()
        with self._lock:
            if not isinstance(self._index, PgvectorIndex):
                return len(self._faces_per_person)
            if self._people_count is None:
                with Session(self.engine) as session:
                    self._people_count = int(
                        session.scalar(
                            select(func.count(distinct(Face.person_id))).where(Face.model_id == self.model_id)
                        )
                        or 0
                    )
            return self._people_count

    def face_counts(self, person_ids: Sequence[int]) -> dict[int, int]:
        """How many faces of this model each person's centroid averages (after :meth:`centroids`)."""
        with self._lock:
            return {p: self._centroid_counts[p] for p in person_ids if p in self._centroid_counts}

    def centroids(self, person_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The mean descriptor of each person's faces of this model (people without any are left out).

        The arrays are cached and replaced, never changed in place, when a person's faces change.
        """
        with self._lock:
            missing = [p for p in dict.fromkeys(person_ids) if p not in self._centroids]
            if missing:
                sums: dict[int, np.ndarray] = {}
                counts: dict[int, int] = {}
                with Session(self.engine) as session:
                    for start in range(0, len(missing), IN_CHUNK):
                        rows = session.execute(
                            select(Face.person_id, Face.embedding).where(
                                Face.person_id.in_(missing[start : start + IN_CHUNK]), Face.model_id == self.model_id
                            )
                        )
                        for person, embedding in rows:
                            vector = np.asarray(embedding, np.float64)
                            sums[person] = sums[person] + vector if person in sums else vector
                            counts[person] = counts.get(person, 0) + 1
                for person in missing:
                    if person in sums:
                        self._centroids[person] = (sums[person] / counts[person]).astype(np.float32)
                        self._centroid_counts[person] = counts[person]
            return {p: self._centroids[p] for p in person_ids if p in self._centroids}

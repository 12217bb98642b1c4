"""What the maps are drawn from: the gallery's descriptors by person, and descriptors of unknown events.

Events do not store a descriptor. An unknown event's descriptor is taken from its metadata when the device that
sent it put one there (``metadata["embedding"]``, 128 numbers, same model), and otherwise computed from its
stored snapshot: the face whose box overlaps the event's box most (the largest face when the event has no box).
Events are never changed once recorded, so :class:`EventEmbeddings` keeps what it computed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from faceid.errors import FaceidError
from faceid.vision.boxes import iou
from faceid.vision.sface import descriptor_dimensions

if TYPE_CHECKING:
    from faceid.store import EventRecord, Store
    from faceid.vision.analyzer import Analyzer

log = logging.getLogger(__name__)

EVENT_CACHE_SIZE = 20_000


@dataclass
class GalleryEmbeddings:
    model_id: str
    face_ids: np.ndarray  # (N,) int64
    person_ids: np.ndarray  # (N,) int64
    embeddings: np.ndarray  # (N, D) float32
    has_image: np.ndarray  # (N,) bool: a stored photo (for thumbnails and re-embedding)
    names: dict[int, str] = field(default_factory=dict)
    total_faces: int = 0  # in the store for this model, before any sampling

    def __len__(self) -> int:
        return len(self.face_ids)

    @property
    def people(self) -> int:
        return len(np.unique(self.person_ids))


@dataclass
class UnknownEmbeddings:
    event_ids: np.ndarray  # (M,) int64
    embeddings: np.ndarray  # (M, D) float32
    times: list[str]
    sources: list[str | None]
    has_snapshot: np.ndarray  # (M,) bool
    skipped: int = 0  # unknown events with neither a descriptor nor a usable face in their snapshot

    def __len__(self) -> int:
        return len(self.event_ids)


def face_models(store: Store) -> dict[str, int]:
    """Faces per descriptor model id."""
    return store.faces_by_model()


def choose_model(store: Store, model_id: str | None = None) -> str:
    """``model_id``, or the store's own model, or (when the store holds no face of it) the model with most faces."""
    if model_id:
        return model_id
    counts = face_models(store)
    own = store.model_id
    if counts.get(own) or not counts:
        return own
    return max(counts, key=lambda m: counts[m])


def load_gallery(
    store: Store, model_id: str | None = None, max_faces: int | None = None, seed: int = 0
) -> GalleryEmbeddings:
    """Every face of ``model_id`` with its descriptor; over ``max_faces``, whole people drawn at random (with
    ``seed``) until about that many faces, so that every person shown is shown with all their faces."""
    model = choose_model(store, model_id)
    faces = store.gallery_faces(model)
    total = len(faces)
    if not total:
        return GalleryEmbeddings(
            model,
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, descriptor_dimensions(model)), np.float32),
            np.zeros(0, bool),
        )
    face_ids, person_ids, embeddings, has_image = faces.face_ids, faces.person_ids, faces.embeddings, faces.has_image
    if max_faces is not None and total > max_faces:
        people, counts = np.unique(person_ids, return_counts=True)
        order = np.random.default_rng(seed).permutation(len(people))
        cumulative = np.cumsum(counts[order])
        keep_people = people[order[: int(np.searchsorted(cumulative, max_faces, side="right")) or 1]]
        keep = np.isin(person_ids, keep_people)
        face_ids, person_ids, embeddings, has_image = (
            face_ids[keep],
            person_ids[keep],
            embeddings[keep],
            has_image[keep],
        )
    names = store.person_names(int(p) for p in person_ids)
    return GalleryEmbeddings(model, face_ids, person_ids, embeddings, has_image, names, total)


class EventEmbeddings:
    """Descriptors of events by (event id, model), computed once per process (events never change)."""

    def __init__(self, size: int = EVENT_CACHE_SIZE) -> None:
        self._cache: OrderedDict[tuple[int, str], np.ndarray | None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str]) -> tuple[bool, np.ndarray | None]:
        with self._lock:
            if key not in self._cache:
                return False, None
            self._cache.move_to_end(key)
            return True, self._cache[key]

    def put(self, key: tuple[int, str], value: np.ndarray | None) -> None:
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)


def event_embedding(
    store: Store, event: EventRecord, model_id: str, analyzer: Analyzer | None, dim: int | None = None
) -> np.ndarray | None:
    """The descriptor of one event (see the module notes), or None when it has none to give."""
    meta = event.metadata or {}
    stored = meta.get("embedding")
    dim = dim or descriptor_dimensions(model_id)
    if isinstance(stored, list) and len(stored) == dim and (event.model_id in (None, model_id)):
        try:
            return np.asarray(stored, np.float32)
        except (TypeError, ValueError):
            pass
    if analyzer is None or not event.snapshot_sha256 or not event.snapshot_type:
        return None
    if getattr(analyzer, "model_id", model_id) != model_id:
        return None  # the snapshot would be described by another model than the map's
    try:
        faces = analyzer.analyze(store.files.read(event.snapshot_sha256, event.snapshot_type))
    except (OSError, FaceidError) as error:
        log.debug("event %d: snapshot not usable (%s)", event.id, error)
        return None
    if not faces:
        return None
    if event.box and len(event.box) == 4:
        box = [float(v) for v in event.box]
        best = max(faces, key=lambda f: iou(box, [float(v) for v in f.box]))
        return np.asarray(best.embedding, np.float32)
    return np.asarray(faces[0].embedding, np.float32)  # analyze() lists the largest face first


def load_unknown_events(
    store: Store,
    model_id: str,
    analyzer: Analyzer | None = None,
    limit: int = 200,
    cache: EventEmbeddings | None = None,
    progress: bool = False,
) -> UnknownEmbeddings:
    """The ``limit`` most recent unknown events that have (or whose snapshot gives) a descriptor of ``model_id``."""
    dim = descriptor_dimensions(model_id)
    empty = UnknownEmbeddings(np.zeros(0, np.int64), np.zeros((0, dim), np.float32), [], [], np.zeros(0, bool))
    if limit <= 0:
        return empty
    events = store.list_events(unknown_only=True, limit=limit)  # newest first
    ids, vectors, times, sources, snapshots = [], [], [], [], []
    skipped = 0
    for event in tqdm(events, desc="unknown events", unit="event", disable=not progress, leave=False):
        key = (int(event.id), model_id)
        found, vector = cache.get(key) if cache is not None else (False, None)
        if not found:
            vector = event_embedding(store, event, model_id, analyzer)
            if cache is not None:
                cache.put(key, vector)
        if vector is None:
            skipped += 1
            continue
        ids.append(int(event.id))
        vectors.append(vector)
        times.append(event.time.isoformat())
        sources.append(event.source)
        snapshots.append(bool(event.snapshot_sha256))
    if not ids:
        empty.skipped = skipped
        return empty
    return UnknownEmbeddings(
        np.array(ids, np.int64), np.stack(vectors), times, sources, np.array(snapshots, bool), skipped
    )

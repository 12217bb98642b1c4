"""The unknown-faces inbox: unknown events clustered into visitors as they arrive, and what a person does with them.

Clustering (incremental, in the order events are recorded): an unknown event with a descriptor (the monitor's
track template, kept in the event's metadata) is scored against the centroid of every open or ignored visitor
with the model's own decision rule (:mod:`faceid.store.match`: cohort-normalised distance to the centroid). It
joins the best visitor when that score passes the calibrated threshold for a gallery of as many people as there
are visitors, clear of the second-best visitor; otherwise it starts a new visitor. The visitors are the gallery a
newly arrived stranger is compared with, so the calibration's stranger rate is the rate at which a stranger is
glued onto someone else's visitor (``faceid bench visitors``, bench/RESULTS.md "Visitors").

Quality gate: only faces at or above ``VISITOR_ANCHOR_MIN_QUALITY`` (anchors) shape a visitor's centroid and make
a visitor joinable; a poorer face joins only when it passes the much stricter threshold of a
``VISITOR_WEAK_STRICTNESS`` times larger gallery. So a blurred, tiny face never moves a centroid towards
someone else, and never merges two visitors.

Ids are stable: a visitor keeps its id as it grows; :meth:`Inbox.recluster` (after a model or threshold change)
keeps the id of every visitor whose membership comes out unchanged, or mostly unchanged. Visitors a person shaped
(merged, split, named, ignored) are kept as they are by re-clustering.

Every action (name, merge, split, ignore, discard) is one transaction, with its audit row written in it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from faceid.errors import BadInputError, ConflictError, NotFoundError
from faceid.store.audit import audit_log
from faceid.store.inbox_schema import InboxState, Visitor, VisitorMember, from_bytes, to_bytes
from faceid.store.match import cohort_means, is_ambiguous
from faceid.store.schema import Event, Face, Person, name_key
from faceid.store.types import utcnow
from faceid.thresholds import (
    COHORT_K,
    UNCALIBRATED_CENTROID_THRESHOLD,
    VISITOR_ANCHOR_MIN_QUALITY,
    VISITOR_ENROLL_CAP,
    VISITOR_WEAK_STRICTNESS,
)

if TYPE_CHECKING:
    from faceid.store.match import Matcher
    from faceid.store.store import Store

log = logging.getLogger(__name__)

OPEN, IGNORED, NAMED = "open", "ignored", "named"
JOINABLE = (OPEN, IGNORED)
BEST_CROPS = 3
# The uncalibrated rule has no stranger distribution to read a stricter threshold from: a fixed share of it.
UNCALIBRATED_WEAK_FACTOR = 0.85


@dataclass(frozen=True)
class Actor:
    """Who asked for a change, for the audit log (the server passes the signed-in user or key)."""

    name: str | None = None
    kind: str = "system"
    address: str | None = None


SYSTEM = Actor()


def audit(
    session: Session, actor: Actor, action: str, target_type: str, target_id: Any, details: dict[str, Any]
) -> None:
    """The audit row of a change, written in the change's own transaction."""
    session.execute(
        insert(audit_log).values(
            time=utcnow(),
            actor=(actor.name or None) and actor.name[:120],
            actor_type=actor.kind,
            action=action[:60],
            target_type=target_type,
            target_id=None if target_id is None else str(target_id)[:100],
            details=details,
            address=(actor.address or "")[:64] or None,
        )
    )


def event_template(meta: dict[str, Any] | None) -> np.ndarray | None:
    values = (meta or {}).get("template")
    if not values:
        return None
    vector = np.asarray(values, np.float32).reshape(-1)
    return vector if np.all(np.isfinite(vector)) else None


def event_quality(meta: dict[str, Any] | None) -> float | None:
    quality = (meta or {}).get("quality")
    if isinstance(quality, dict) and isinstance(quality.get("score"), int | float):
        return float(quality["score"])
    return None


def is_anchor(quality: float | None) -> bool:
    """Events without a quality (posted by other clients) count as good: the gate is for the monitor's poor frames."""
    return quality is None or quality >= VISITOR_ANCHOR_MIN_QUALITY


# -- the clustering rule, shared by the store and the benchmark -------------------------------------------------


class Clusters:
    """Centroids of the joinable visitors of one model, and the rule that places a new face among them."""

    def __init__(self, matcher: Matcher | None, dim: int) -> None:
        self.cohort = None if matcher is None else matcher.cohort
        self._cohort_sq = None if self.cohort is None else (self.cohort * self.cohort).sum(1)
        self.calibration = matcher.calibration if matcher is not None and matcher.calibrated else None
        self.dim = dim
        self.ids: list[int] = []
        self.index: dict[int, int] = {}
        self.sums = np.zeros((16, dim), np.float64)
        self.counts = np.zeros(16, np.int64)
        self.centres = np.zeros((16, dim), np.float32)
        self.means = np.ones(16, np.float32)
        self._thresholds: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def mean_of(self, vectors: np.ndarray) -> np.ndarray:
        if self.cohort is None:
            return np.ones(len(vectors), np.float32)
        return cohort_means(vectors, self.cohort, COHORT_K, self._cohort_sq)

    def threshold(self, weak: bool = False) -> float:
        people = max(len(self.ids), 1) * (VISITOR_WEAK_STRICTNESS if weak else 1)
        if self.calibration is None:
            return UNCALIBRATED_CENTROID_THRESHOLD * (UNCALIBRATED_WEAK_FACTOR if weak else 1.0)
        cached = self._thresholds.get(people)
        if cached is None:
            cached = self._thresholds[people] = self.calibration.threshold_for(people)
        return cached

    def scores(self, vector: np.ndarray, mean: float | None = None) -> np.ndarray:
        n = len(self.ids)
        if n == 0:
            return np.empty(0, np.float32)
        diff = self.centres[:n] - vector[None, :]
        distances = np.sqrt(np.maximum((diff * diff).sum(1), 0.0))
        if self.cohort is None:
            return distances.astype(np.float32)
        m = float(self.mean_of(vector[None, :])[0]) if mean is None else mean
        return (distances / np.sqrt(np.maximum(m * self.means[:n], 1e-12))).astype(np.float32)

    def place(self, vector: np.ndarray, anchor: bool, mean: float | None = None) -> tuple[int | None, float | None]:
        """The visitor this face joins (None: a new one) and its score there."""
        scores = self.scores(vector, mean)
        if len(scores) == 0:
            return None, None
        order = np.argsort(scores)[:2]
        best = float(scores[order[0]])
        threshold = self.threshold(weak=not anchor)
        if best > threshold or is_ambiguous([float(scores[i]) for i in order], threshold):
            return None, best
        return self.ids[int(order[0])], best

    def add(self, visitor_id: int, vectors: np.ndarray) -> None:
        """Add anchors to a visitor (a new one is created)."""
        if len(vectors) == 0:
            return
        slot = self.index.get(visitor_id)
        if slot is None:
            slot = len(self.ids)
            if slot >= len(self.counts):
                grow = len(self.counts)
                self.sums = np.concatenate([self.sums, np.zeros((grow, self.dim))])
                self.counts = np.concatenate([self.counts, np.zeros(grow, np.int64)])
                self.centres = np.concatenate([self.centres, np.zeros((grow, self.dim), np.float32)])
                self.means = np.concatenate([self.means, np.ones(grow, np.float32)])
            self.ids.append(visitor_id)
            self.index[visitor_id] = slot
        self.sums[slot] += np.asarray(vectors, np.float64).sum(0)
        self.counts[slot] += len(vectors)
        centre = (self.sums[slot] / self.counts[slot]).astype(np.float32)
        self.centres[slot] = centre
        self.means[slot] = float(self.mean_of(centre[None, :])[0])


def cluster_stream(
    clusters: Clusters, vectors: np.ndarray, anchors: Sequence[bool], first_id: int = 1
) -> tuple[list[int], int]:
    """Place faces one after the other (as they arrive): the visitor id of each, and the next free id."""
    labels: list[int] = []
    next_id = first_id
    means = clusters.mean_of(vectors) if clusters.cohort is not None else None
    for i, vector in enumerate(np.asarray(vectors, np.float32)):
        visitor, _ = clusters.place(vector, bool(anchors[i]), None if means is None else float(means[i]))
        if visitor is None:
            visitor = next_id
            next_id += 1
        if anchors[i]:
            clusters.add(visitor, vector[None, :])
        labels.append(visitor)
    return labels, next_id


def farthest_point_sample(vectors: np.ndarray, cap: int) -> list[int]:
    """Up to ``cap`` rows, varied: the one nearest the centroid first (the most typical face), then each time the
    one farthest from all chosen."""
    if len(vectors) <= cap:
        return list(range(len(vectors)))
    centre = vectors.mean(0)
    chosen = [int(np.argmin(((vectors - centre) ** 2).sum(1)))]
    nearest = np.sqrt(((vectors - vectors[chosen[0]]) ** 2).sum(1))
    while len(chosen) < cap:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.sqrt(((vectors - vectors[pick]) ** 2).sum(1)))
    return chosen


# -- what the inbox shows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisitorSummary:
    id: int
    model_id: str
    status: str
    pinned: bool
    person_id: int | None
    person_name: str | None
    events: int
    cameras: list[str]
    first_seen: datetime | None
    last_seen: datetime | None
    best_events: list[int] = field(default_factory=list)  # event ids whose crops show the visitor best

    @property
    def label(self) -> str:
        return f"Visitor {self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "model_id": self.model_id,
            "status": self.status,
            "pinned": self.pinned,
            "person_id": self.person_id,
            "person_name": self.person_name,
            "events": self.events,
            "cameras": self.cameras,
            "first_seen": None if self.first_seen is None else self.first_seen.isoformat(),
            "last_seen": None if self.last_seen is None else self.last_seen.isoformat(),
            "best_events": self.best_events,
        }

    def headline(self) -> str:
        when = "" if self.last_seen is None else f", last {self.last_seen:%Y-%m-%d %H:%M}"
        where = " and ".join(self.cameras) if self.cameras else "no camera"
        who = f" ({self.status}{': ' + self.person_name if self.person_name else ''})" if self.status != OPEN else ""
        return f"{self.label}{who}: seen {self.events} time(s), {where}{when}"


# -- the inbox --------------------------------------------------------------------------------------------------


_INBOXES: weakref.WeakKeyDictionary[Any, Inbox] = weakref.WeakKeyDictionary()
_INBOXES_LOCK = threading.Lock()


def inbox(store: Store) -> Inbox:
    """The store's inbox (one per store object: it caches the visitors' centroids)."""
    with _INBOXES_LOCK:
        found = _INBOXES.get(store)
        if found is None:
            found = _INBOXES[store] = Inbox(store)
        return found


def observe_event(store: Store, event_id: int, model_id: str | None = None) -> None:
    """Called by the store after it recorded an unknown event: cluster it (and any event still waiting). A failure
    here never fails the recording; the event is picked up by the next one, or by :meth:`Inbox.recluster`."""
    try:
        inbox(store).observe(model_id)
    except Exception:  # the event is recorded; clustering catches up later
        log.exception("clustering unknown event %d failed; it will be clustered later", event_id)


class Inbox:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[int, Clusters]] = {}  # model -> (inbox version it reflects, centroids)
        self._scanned: dict[str, int] = {}  # model -> highest event id looked at without finding a template

    # -- plumbing ----------------------------------------------------------------------------------------------

    @staticmethod
    def _bump(session: Session) -> int:
        return int(
            session.execute(
                update(InboxState)
                .where(InboxState.id == 1)
                .values(version=InboxState.version + 1)
                .returning(InboxState.version)
            ).scalar_one()
        )

    def version(self) -> int:
        with self.store._read() as session:
            return int(session.scalar(select(InboxState.version).where(InboxState.id == 1)) or 0)

    def _matcher(self, model_id: str) -> Matcher | None:
        try:
            return self.store.matcher(model_id)
        except Exception:  # no gallery for this model yet is not an error here
            log.debug("no matcher for %s; clustering uncalibrated", model_id, exc_info=True)
            return None

    def _dim(self, model_id: str, fallback: int) -> int:
        matcher = self._matcher(model_id)
        if matcher is not None and matcher.calibration is not None:
            return matcher.calibration.dim
        return fallback

    def _load_clusters(self, session: Session, model_id: str, dim: int) -> Clusters:
        clusters = Clusters(self._matcher(model_id), dim)
        rows = session.execute(
            select(VisitorMember.visitor_id, VisitorMember.embedding)
            .join(Visitor, Visitor.id == VisitorMember.visitor_id)
            .where(Visitor.model_id == model_id, Visitor.status.in_(JOINABLE), VisitorMember.anchor.is_(True))
            .order_by(VisitorMember.visitor_id)
        ).all()
        grouped: dict[int, list[np.ndarray]] = {}
        for visitor_id, data in rows:
            vector = from_bytes(data)
            if vector.shape == (dim,):
                grouped.setdefault(int(visitor_id), []).append(vector)
        for visitor_id, vectors in grouped.items():
            clusters.add(visitor_id, np.stack(vectors))
        return clusters

    def _clusters(self, session: Session, model_id: str, dim: int, version: int) -> Clusters:
        """The centroids as of ``version`` (the one this transaction's bump replaced): the cache when it is that
        one, else read again (another process changed the visitors)."""
        cached = self._cache.get(model_id)
        if cached is not None and cached[0] == version and cached[1].dim == dim:
            return cached[1]
        return self._load_clusters(session, model_id, dim)

    # -- clustering --------------------------------------------------------------------------------------------

    def observe(self, model_id: str | None = None) -> int:
        """Cluster every unknown event of ``model_id`` (the active model) that is not in a visitor yet; returns
        how many joined."""
        model_id = model_id or self.store.model_id
        with self._lock:
            after = self._scanned.get(model_id, 0)
            with self.store._read() as session:
                pending = session.execute(
                    select(Event.id, Event.meta)
                    .where(
                        Event.id > after,
                        Event.person_id.is_(None),
                        or_(Event.model_id == model_id, Event.model_id.is_(None)),  # None: the sender did not say
                        ~exists().where(VisitorMember.event_id == Event.id),
                    )
                    .order_by(Event.id)
                ).all()
            items = [(int(i), meta) for i, meta in pending if event_template(meta) is not None]
            done = self._assign(model_id, items) if items else 0
            if pending:
                # Everything up to here is clustered or has no descriptor: the next look starts after it (an event
                # made unknown again by a correction resets this; re-clustering catches any other straggler).
                self._scanned[model_id] = max(int(i) for i, _ in pending)
            return done

    def _assign(self, model_id: str, items: list[tuple[int, dict[str, Any]]]) -> int:
        dim = self._dim(model_id, len(event_template(items[0][1])))  # type: ignore[arg-type]
        try:
            with self.store._write() as session:
                version = self._bump(session)
                clusters = self._clusters(session, model_id, dim, version - 1)
                self._cache.pop(model_id, None)  # until this transaction commits, the cache is not to be trusted
                done = self._place(session, clusters, model_id, items)
            self._cache[model_id] = (version, clusters)
        except Exception:
            self._cache.pop(model_id, None)
            raise
        return done

    def _place(
        self, session: Session, clusters: Clusters, model_id: str, items: list[tuple[int, dict[str, Any]]]
    ) -> int:
        done = 0
        now = utcnow()
        for event_id, meta in items:
            if session.get(VisitorMember, event_id) is not None:
                continue  # another process clustered it first
            vector = event_template(meta)
            if vector is None or vector.shape != (clusters.dim,):
                continue
            quality = event_quality(meta)
            anchor = is_anchor(quality)
            visitor_id, _ = clusters.place(vector, anchor)
            if visitor_id is None:
                visitor = Visitor(model_id=model_id, status=OPEN, pinned=False, created_at=now, updated_at=now)
                session.add(visitor)
                session.flush()
                visitor_id = visitor.id
            else:
                session.execute(update(Visitor).where(Visitor.id == visitor_id).values(updated_at=now))
            session.add(
                VisitorMember(
                    event_id=event_id,
                    visitor_id=visitor_id,
                    model_id=model_id,
                    embedding=to_bytes(vector),
                    quality=quality,
                    anchor=anchor,
                )
            )
            if anchor:
                clusters.add(visitor_id, vector[None, :])
            done += 1
        session.flush()
        return done

    def follow_model(self, model_id: str, describe: Any, actor: Actor = SYSTEM) -> dict[str, int]:
        """After a model change: describe every clustered event of another model again from its face crop with
        ``describe`` (crop bytes -> descriptor), so that visitors keep their ids and members under ``model_id``;
        then :meth:`recluster` lets the new model regroup the open ones. A member without a crop cannot follow (it
        leaves its visitor); visitors left empty are removed."""
        import base64

        stats = {"described": 0, "without_crop": 0, "visitors_moved": 0}
        with self._lock, self.store._write() as session:
            rows = session.execute(
                select(VisitorMember.event_id, VisitorMember.visitor_id, Event.meta)
                .join(Event, Event.id == VisitorMember.event_id)
                .where(VisitorMember.model_id != model_id)
            ).all()
            for event_id, _visitor_id, meta in rows:
                crop = (meta or {}).get("crop_jpeg")
                vector = None
                if isinstance(crop, str):
                    try:
                        vector = np.asarray(describe(base64.b64decode(crop)), np.float32).reshape(-1)
                    except Exception as error:  # no face in the crop for this model's detector: it cannot follow
                        log.info("event %d cannot be described by %s: %s", event_id, model_id, error)
                if vector is None:
                    session.execute(delete(VisitorMember).where(VisitorMember.event_id == event_id))
                    stats["without_crop"] += 1
                    continue
                template = [round(float(v), 6) for v in vector]
                session.execute(
                    update(Event)
                    .where(Event.id == event_id)
                    .values(meta={**(meta or {}), "template": template}, model_id=model_id)
                )
                session.execute(
                    update(VisitorMember)
                    .where(VisitorMember.event_id == event_id)
                    .values(embedding=to_bytes(vector), model_id=model_id)
                )
                stats["described"] += 1
            moved = session.execute(
                update(Visitor).where(Visitor.model_id != model_id).values(model_id=model_id, updated_at=utcnow())
            )
            stats["visitors_moved"] = int(getattr(moved, "rowcount", 0) or 0)
            empty = select(VisitorMember.event_id).where(VisitorMember.visitor_id == Visitor.id).exists()
            session.execute(delete(Visitor).where(~empty))
            self._bump(session)
            audit(session, actor, "visitors.follow_model", "model", model_id, dict(stats))
        self._cache.clear()
        self._scanned.clear()
        return stats | self.recluster(model_id, actor)

    def recluster(self, model_id: str | None = None, actor: Actor = SYSTEM) -> dict[str, int]:
        """Cluster again (after a model or threshold change) every event of the open visitors no one shaped, plus
        any unknown event not yet clustered. A new cluster keeps the id of the old visitor with the same members,
        or, failing that, of the one holding more than half of its members and more than half of theirs."""
        model_id = model_id or self.store.model_id
        with self._lock, self.store._write() as session:
            self._bump(session)
            self._cache.pop(model_id, None)
            loose = (
                select(Visitor.id)
                .where(Visitor.model_id == model_id, Visitor.status == OPEN, Visitor.pinned.is_(False))
                .scalar_subquery()
            )
            old: dict[int, set[int]] = {}
            for event_id, visitor_id in session.execute(
                select(VisitorMember.event_id, VisitorMember.visitor_id).where(VisitorMember.visitor_id.in_(loose))
            ):
                old.setdefault(int(visitor_id), set()).add(int(event_id))
            moved = [e for members in old.values() for e in members]
            rows = session.execute(
                select(Event.id, Event.meta)
                .where(
                    Event.person_id.is_(None),
                    or_(Event.model_id == model_id, Event.model_id.is_(None)),
                    ~exists().where(VisitorMember.event_id == Event.id),
                )
                .order_by(Event.time, Event.id)
            ).all()
            fresh = {int(i): meta for i, meta in rows if event_template(meta) is not None}
            for chunk in _chunks(moved):
                session.execute(delete(VisitorMember).where(VisitorMember.event_id.in_(chunk)))
                for event_id, meta in session.execute(select(Event.id, Event.meta).where(Event.id.in_(chunk))):
                    fresh[int(event_id)] = meta
            times = dict(
                session.execute(select(Event.id, Event.time).where(Event.id.in_(list(fresh)))).all()
                if len(fresh) < 30_000
                else []
            )
            order = sorted(fresh, key=lambda e: (times.get(e) or utcnow(), e))
            first = next((event_template(m) for m in fresh.values()), None)
            dim = self._dim(model_id, 0 if first is None else len(first))
            clusters = self._load_clusters(session, model_id, dim)  # the visitors kept: ignored, pinned
            keep_ids = set(clusters.ids)
            vectors, anchors, kept_order = [], [], []
            for event_id in order:
                vector = event_template(fresh[event_id])
                if vector is not None and vector.shape == (dim,):
                    vectors.append(vector)
                    anchors.append(is_anchor(event_quality(fresh[event_id])))
                    kept_order.append(event_id)
            labels, _ = _stream_with_temporary_ids(clusters, vectors, anchors)
            new: dict[int, set[int]] = {}
            for event_id, label in zip(kept_order, labels, strict=True):
                new.setdefault(label, set()).add(event_id)
            # Ids: temporary (negative) labels are new clusters; map them onto the old visitors.
            mapping: dict[int, int] = {}
            used: set[int] = set()
            by_event = {e: v for v, members in old.items() for e in members}
            for label, members in sorted(new.items(), key=lambda kv: -len(kv[1])):
                if label in keep_ids:
                    continue
                overlap: dict[int, int] = {}
                for e in members:
                    if e in by_event:
                        overlap[by_event[e]] = overlap.get(by_event[e], 0) + 1
                for visitor_id, count in sorted(overlap.items(), key=lambda kv: -kv[1]):
                    if visitor_id in used:
                        continue
                    if old[visitor_id] == members or (2 * count > len(members) and 2 * count > len(old[visitor_id])):
                        mapping[label] = visitor_id
                        used.add(visitor_id)
                    break
            now = utcnow()
            stats = {"events": len(kept_order), "kept": 0, "unchanged": 0, "new": 0, "removed": 0}
            for label, members in new.items():
                if label in keep_ids:
                    target = label
                elif label in mapping:
                    target = mapping[label]
                    stats["kept"] += 1
                    stats["unchanged"] += int(old[target] == members)
                else:
                    visitor = Visitor(model_id=model_id, status=OPEN, pinned=False, created_at=now, updated_at=now)
                    session.add(visitor)
                    session.flush()
                    target = visitor.id
                    stats["new"] += 1
                mapping[label] = target
            gone = [v for v in old if v not in used]
            stats["removed"] = len(gone)
            for chunk in _chunks(gone):
                session.execute(delete(Visitor).where(Visitor.id.in_(chunk)))
            position = {e: i for i, e in enumerate(kept_order)}
            session.add_all(
                VisitorMember(
                    event_id=e,
                    visitor_id=mapping[label],
                    model_id=model_id,
                    embedding=to_bytes(vectors[position[e]]),
                    quality=event_quality(fresh[e]),
                    anchor=anchors[position[e]],
                )
                for label, members in new.items()
                for e in members
            )
            session.flush()
            audit(session, actor, "visitors.recluster", "model", model_id, dict(stats))
        self._cache.pop(model_id, None)
        return stats

    # -- reading -----------------------------------------------------------------------------------------------

    def _visitor(self, session: Session, visitor_id: int) -> Visitor:
        if isinstance(visitor_id, bool) or not isinstance(visitor_id, int):
            raise BadInputError("a visitor is named by its id (a number)")
        visitor = session.get(Visitor, visitor_id)
        if visitor is None:
            raise NotFoundError(f"no visitor with id {visitor_id}")
        return visitor

    def _summaries(self, session: Session, visitors: Sequence[Visitor]) -> list[VisitorSummary]:
        ids = [v.id for v in visitors]
        rows: list[Any] = []
        for chunk in _chunks(ids):
            rows += session.execute(
                select(VisitorMember.visitor_id, Event.id, Event.time, Event.source, VisitorMember.quality)
                .join(Event, Event.id == VisitorMember.event_id)
                .where(VisitorMember.visitor_id.in_(chunk))
            ).all()
        per: dict[int, list[Any]] = {}
        for row in rows:
            per.setdefault(int(row[0]), []).append(row)
        people = {v.person_id for v in visitors if v.person_id is not None}
        names = dict(session.execute(select(Person.id, Person.name).where(Person.id.in_(list(people)))).all())
        out = []
        for v in visitors:
            members = per.get(v.id, [])
            best = sorted(members, key=lambda r: (-(r[4] if r[4] is not None else 0.5), -r[1]))[:BEST_CROPS]
            out.append(
                VisitorSummary(
                    id=v.id,
                    model_id=v.model_id,
                    status=v.status,
                    pinned=bool(v.pinned),
                    person_id=v.person_id,
                    person_name=names.get(v.person_id) if v.person_id is not None else None,
                    events=len(members),
                    cameras=sorted({r[3] for r in members if r[3]}),
                    first_seen=min((r[2] for r in members), default=None),
                    last_seen=max((r[2] for r in members), default=None),
                    best_events=[int(r[1]) for r in best],
                )
            )
        return out

    def list_visitors(
        self, status: str | None = None, limit: int = 100, offset: int = 0, model_id: str | None = None
    ) -> list[VisitorSummary]:
        """Visitors with at least one event, the most recently seen first."""
        if status is not None and status not in (OPEN, IGNORED, NAMED):
            raise BadInputError(f"a visitor's status is one of {OPEN}, {IGNORED}, {NAMED}")
        last = (
            select(VisitorMember.visitor_id, func.max(Event.time).label("last"))
            .join(Event, Event.id == VisitorMember.event_id)
            .group_by(VisitorMember.visitor_id)
            .subquery()
        )
        statement = (
            select(Visitor)
            .join(last, last.c.visitor_id == Visitor.id)
            .where(Visitor.model_id == (model_id or self.store.model_id))
            .order_by(last.c.last.desc(), Visitor.id.desc())
            .limit(limit)
            .offset(offset)
        )
        if status is not None:
            statement = statement.where(Visitor.status == status)
        with self.store._read() as session:
            return self._summaries(session, list(session.scalars(statement)))

    def get(self, visitor_id: int) -> VisitorSummary:
        with self.store._read() as session:
            return self._summaries(session, [self._visitor(session, visitor_id)])[0]

    def events(self, visitor_id: int) -> list[int]:
        """The visitor's event ids, newest first."""
        with self.store._read() as session:
            self._visitor(session, visitor_id)
            return [
                int(i)
                for i in session.scalars(
                    select(Event.id)
                    .join(VisitorMember, VisitorMember.event_id == Event.id)
                    .where(VisitorMember.visitor_id == visitor_id)
                    .order_by(Event.time.desc(), Event.id.desc())
                )
            ]

    def visitor_of(self, event_ids: Iterable[int]) -> dict[int, int]:
        """event id -> visitor id, for those in a visitor."""
        found: dict[int, int] = {}
        with self.store._read() as session:
            for chunk in _chunks(list(event_ids)):
                found.update(
                    {
                        int(e): int(v)
                        for e, v in session.execute(
                            select(VisitorMember.event_id, VisitorMember.visitor_id).where(
                                VisitorMember.event_id.in_(chunk)
                            )
                        )
                    }
                )
        return found

    def centroid(self, visitor_id: int) -> tuple[str, np.ndarray]:
        with self.store._read() as session:
            visitor = self._visitor(session, visitor_id)
            vectors = [from_bytes(e) for e, a in self._member_vectors(session, visitor_id)]
        if not vectors:
            raise NotFoundError(f"visitor {visitor_id} has no faces")
        return visitor.model_id, np.stack(vectors).mean(0)

    @staticmethod
    def _member_vectors(session: Session, visitor_id: int) -> list[tuple[bytes, bool]]:
        rows = session.execute(
            select(VisitorMember.embedding, VisitorMember.anchor).where(VisitorMember.visitor_id == visitor_id)
        ).all()
        anchored = [(e, bool(a)) for e, a in rows if a]
        return anchored or [(e, bool(a)) for e, a in rows]

    # -- actions -----------------------------------------------------------------------------------------------

    def name(
        self,
        visitor_id: int,
        name: str | None = None,
        *,
        person: int | str | None = None,
        cap: int = VISITOR_ENROLL_CAP,
        actor: Actor = SYSTEM,
    ) -> dict[str, Any]:
        """Name a visitor: a new person called ``name``, or the existing ``person``. Enrolls up to ``cap`` varied
        faces of the visitor's good ones (farthest-point sampling) and labels all its events with the person."""
        from faceid.store.store import _clean_name

        if (name is None) == (person is None):
            raise BadInputError("name a visitor either as a new person (a name) or as an existing person")
        if cap < 1:
            raise BadInputError("at least one face must be enrolled")
        clean = _clean_name(name) if name is not None else None
        with self.store._read() as session:  # which faces: chosen first, described outside any transaction
            visitor = self._visitor(session, visitor_id)
            chosen_ids = [int(r.event_id) for r in self._choose(self._name_rows(session, visitor_id), cap)]
            model_id = visitor.model_id
        described = self._describe_events(chosen_ids, model_id)
        with self.store._write() as session:
            visitor = self._visitor(session, visitor_id)
            if visitor.status == NAMED:
                raise ConflictError(f"visitor {visitor_id} is already named (person {visitor.person_id})")
            rows = self._name_rows(session, visitor_id)
            if not rows:
                raise ConflictError(f"visitor {visitor_id} has no events left")
            chosen = [r for r in rows if int(r.event_id) in set(chosen_ids)] or self._choose(rows, cap)
            now = utcnow()
            if clean is not None:
                self.store._check_free(session, clean, None)
                target = Person(name=clean, name_key=name_key(clean), meta={}, created_at=now, updated_at=now)
                session.add(target)
                session.flush()
                created = True
            else:
                assert person is not None
                target = self.store._person(session, person, lock=True)
                target.updated_at = now
                created = False
            faces = [self._face_of(target.id, visitor.model_id, r, described.get(int(r.event_id)), now) for r in chosen]
            session.add_all(faces)
            session.flush()
            self.store._log_faces(session, [f.id for f in faces])
            event_ids = [int(r.event_id) for r in rows]
            for chunk in _chunks(event_ids):
                session.execute(update(Event).where(Event.id.in_(chunk)).values(person_id=target.id))
            visitor.status, visitor.person_id, visitor.updated_at = NAMED, target.id, now
            self._bump(session)
            result = {
                "visitor_id": visitor_id,
                "person_id": target.id,
                "person_name": target.name,
                "created": created,
                "faces_enrolled": len(faces),
                "events_labelled": len(event_ids),
            }
            audit(session, actor, "visitor.name", "visitor", visitor_id, result)
        self._cache.clear()
        log.info(
            "visitor %d named %s: %d face(s) enrolled, %d event(s) labelled",
            visitor_id,
            result["person_name"],
            len(faces),
            len(event_ids),
        )
        return result

    @staticmethod
    def _name_rows(session: Session, visitor_id: int) -> list[Any]:
        return list(
            session.execute(
                select(
                    VisitorMember.event_id,
                    VisitorMember.embedding,
                    VisitorMember.quality,
                    VisitorMember.anchor,
                    Event.snapshot_sha256,
                    Event.snapshot_type,
                    Event.box,
                    Event.meta,
                )
                .join(Event, Event.id == VisitorMember.event_id)
                .where(VisitorMember.visitor_id == visitor_id)
                .order_by(Event.id)
            ).all()
        )

    @staticmethod
    def _choose(rows: list[Any], cap: int) -> list[Any]:
        pool = [r for r in rows if r.anchor] or list(rows)
        if not pool:
            return []
        vectors = np.stack([from_bytes(r.embedding) for r in pool])
        return [pool[i] for i in farthest_point_sample(vectors, cap)]

    def _describe_events(self, event_ids: list[int], model_id: str) -> dict[int, Any]:
        """The face each event is about, found again in its snapshot by the store's analyzer (so that the enrolled
        face has its photo and landmarks, and a new model version can describe it again), when the store follows
        its analyzer's model and that is the visitor's. Events whose face is not found are left out."""
        from faceid.store.photos import prepared_from_face
        from faceid.thresholds import EVENT_FACE_MIN_IOU
        from faceid.vision.image import load_image

        store = self.store
        if store._model_id is not None and store._analyzer is None:
            return {}  # a store on embeddings alone (benchmarks): no analyzer to describe with
        with store._read() as session:
            events = {int(e.id): e for e in session.scalars(select(Event).where(Event.id.in_(event_ids)))}
        wanted = [e for e in events.values() if e.snapshot_sha256 and e.snapshot_type and e.box and len(e.box) == 4]
        if not wanted:
            return {}
        analyzer = store.analyzer
        if analyzer.model_id != model_id:
            return {}
        found: dict[int, Any] = {}
        for event in wanted:
            try:
                data = store.files.read(str(event.snapshot_sha256), str(event.snapshot_type))
                faces = analyzer.analyze(load_image(data))
            except Exception as error:  # an unreadable snapshot: the face is enrolled from its descriptor alone
                log.info("event %d: its snapshot cannot be described (%s)", event.id, error)
                continue
            box = [float(v) for v in (event.box or [])]
            best = max(faces, key=lambda f: _iou([float(v) for v in np.asarray(f.box).reshape(-1)], box), default=None)
            if (
                best is not None
                and _iou([float(v) for v in np.asarray(best.box).reshape(-1)], box) >= EVENT_FACE_MIN_IOU
            ):
                found[int(event.id)] = prepared_from_face(
                    best, model_id, None, event.snapshot_type, f"event {event.id}"
                )
        return found

    @staticmethod
    def _face_of(person_id: int, model_id: str, row: Any, described: Any, now: datetime) -> Face:
        """A face row for a chosen member: as described again from its snapshot when it could be, else from the
        descriptor it was clustered by (no landmarks: a new model version cannot describe it again)."""
        meta = row.meta if isinstance(row.meta, dict) else {}
        size = (meta.get("quality") or {}).get("size") if isinstance(meta.get("quality"), dict) else None
        return Face(
            person_id=person_id,
            model_id=model_id,
            embedding=from_bytes(row.embedding) if described is None else np.asarray(described.embedding, np.float32),
            image_sha256=row.snapshot_sha256,
            image_type=row.snapshot_type if row.snapshot_sha256 else None,
            box=row.box if described is None else described.box,
            landmarks=None if described is None else described.landmarks,
            quality=row.quality,
            size=size,
            created_at=now,
        )

    def merge(self, into: int, other: int, actor: Actor = SYSTEM) -> VisitorSummary:
        """Move ``other``'s events into ``into`` (both unnamed; to add to a named visitor, name ``other`` as its
        person)."""
        if into == other:
            raise BadInputError("a visitor cannot be merged with itself")
        with self.store._write() as session:
            kept, gone = self._visitor(session, into), self._visitor(session, other)
            if NAMED in (kept.status, gone.status):
                raise ConflictError("a named visitor is not merged: name the other one as the same person instead")
            if kept.model_id != gone.model_id:
                raise ConflictError("the two visitors were clustered with different models")
            result = session.execute(
                update(VisitorMember).where(VisitorMember.visitor_id == other).values(visitor_id=into)
            )
            moved = int(getattr(result, "rowcount", 0) or 0)
            session.delete(gone)
            kept.pinned, kept.updated_at = True, utcnow()
            self._bump(session)
            audit(session, actor, "visitor.merge", "visitor", into, {"into": into, "merged": other, "events": moved})
        self._cache.clear()
        return self.get(into)

    def split(self, visitor_id: int, event_ids: Sequence[int], actor: Actor = SYSTEM) -> VisitorSummary:
        """Pick events out of a visitor into a new one. Out of a named visitor, they lose the person's name."""
        picked = sorted({int(e) for e in event_ids})
        if not picked:
            raise BadInputError("pick at least one event to split out")
        with self.store._write() as session:
            source = self._visitor(session, visitor_id)
            members = set(session.scalars(select(VisitorMember.event_id).where(VisitorMember.visitor_id == visitor_id)))
            strangers = [e for e in picked if e not in members]
            if strangers:
                raise BadInputError(f"event(s) {strangers} are not in visitor {visitor_id}")
            if len(picked) == len(members):
                raise BadInputError("a split leaves some events behind; to move them all, merge instead")
            now = utcnow()
            new = Visitor(model_id=source.model_id, status=OPEN, pinned=True, created_at=now, updated_at=now)
            session.add(new)
            session.flush()
            session.execute(update(VisitorMember).where(VisitorMember.event_id.in_(picked)).values(visitor_id=new.id))
            if source.status == NAMED:
                session.execute(update(Event).where(Event.id.in_(picked)).values(person_id=None))
            source.pinned, source.updated_at = True, now
            self._bump(session)
            audit(session, actor, "visitor.split", "visitor", visitor_id, {"new_visitor": new.id, "events": picked})
            new_id = new.id
        self._cache.clear()
        return self.get(new_id)

    def ignore(self, visitor_id: int, ignored: bool = True, actor: Actor = SYSTEM) -> VisitorSummary:
        """Never alert for this visitor again (its events are still clustered into it); ``ignored=False`` undoes."""
        with self.store._write() as session:
            visitor = self._visitor(session, visitor_id)
            if visitor.status == NAMED:
                raise ConflictError(f"visitor {visitor_id} is named; its person's alerts are set on the person")
            visitor.status, visitor.updated_at = (IGNORED if ignored else OPEN), utcnow()
            self._bump(session)
            audit(session, actor, "visitor.ignore" if ignored else "visitor.unignore", "visitor", visitor_id, {})
        self._cache.clear()
        return self.get(visitor_id)

    def is_ignored(self, event_id: int) -> bool:
        """Whether the event belongs to an ignored visitor (alerts skip it)."""
        with self.store._read() as session:
            status = session.scalar(
                select(Visitor.status)
                .join(VisitorMember, VisitorMember.visitor_id == Visitor.id)
                .where(VisitorMember.event_id == event_id)
            )
        return status == IGNORED

    def discard(self, visitor_id: int, actor: Actor = SYSTEM) -> dict[str, Any]:
        """Delete an unnamed visitor with its events and their snapshots."""
        store = self.store
        with store.files.removing(store.referenced_images) as batch, store._write() as session:
            visitor = self._visitor(session, visitor_id)
            if visitor.status == NAMED:
                raise ConflictError(f"visitor {visitor_id} is named: forget or edit the person instead")
            events = session.execute(
                select(Event.id, Event.snapshot_sha256, Event.snapshot_type)
                .join(VisitorMember, VisitorMember.event_id == Event.id)
                .where(VisitorMember.visitor_id == visitor_id)
            ).all()
            batch.declare([(sha, kind) for _, sha, kind in events if sha and kind])
            ids = [int(e[0]) for e in events]
            for chunk in _chunks(ids):
                session.execute(delete(VisitorMember).where(VisitorMember.event_id.in_(chunk)))
                session.execute(delete(Event).where(Event.id.in_(chunk)))
            session.delete(visitor)
            self._bump(session)
            result = {"visitor_id": visitor_id, "events_deleted": len(ids)}
            audit(session, actor, "visitor.discard", "visitor", visitor_id, result)
        self._cache.clear()
        return result


def _stream_with_temporary_ids(
    clusters: Clusters, vectors: list[np.ndarray], anchors: list[bool]
) -> tuple[list[int], int]:
    """Like :func:`cluster_stream`, new clusters numbered -1, -2, ... so they never collide with kept ids."""
    labels: list[int] = []
    next_id = -1
    if not vectors:
        return labels, next_id
    stacked = np.stack(vectors).astype(np.float32)
    means = clusters.mean_of(stacked) if clusters.cohort is not None else None
    for i, vector in enumerate(stacked):
        visitor, _ = clusters.place(vector, anchors[i], None if means is None else float(means[i]))
        if visitor is None:
            visitor = next_id
            next_id -= 1
        if anchors[i]:
            clusters.add(visitor, vector[None, :])
        labels.append(visitor)
    return labels, next_id


def _chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _iou(a: list[float], b: list[float]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0

"""Corrections that stick, and the history searched by face.

"Not this person" on an event named P keeps the event's face as a negative exemplar of P. From then on a decision
names P only when the face is closer to P (its score against P's centroid) than to every negative of P (its score
against that face, by the same cohort-normalised rule) by more than ``NEGATIVE_MARGIN`` (measured by
``faceid bench visitors``, bench/RESULTS.md "Corrections"). The event itself becomes unknown again and goes back
into the inbox. "This is X" on any event labels it X.

Negatives are kept per descriptor model with the face's crop (a JPEG), so that a new model (a fine-tune) describes
them again (:func:`reembed_negatives`), and archives carry them (:func:`export_negatives` / :func:`import_negatives`).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import weakref
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from faceid.errors import BadInputError, ConflictError, FaceidError, NotFoundError
from faceid.store.inbox_schema import FaceNegative, InboxState, VisitorMember, from_bytes, to_bytes
from faceid.store.match import cohort_means
from faceid.store.records import Identification
from faceid.store.schema import Event, Face
from faceid.store.types import utcnow
from faceid.store.visitors import SYSTEM, Actor, Inbox, audit, event_template, inbox
from faceid.thresholds import COHORT_K, NEGATIVE_MARGIN

if TYPE_CHECKING:
    from faceid.store.match import Matcher
    from faceid.store.store import PersonRef, Store

log = logging.getLogger(__name__)

NEGATIVES_REFRESH_SECONDS = 2.0  # another process's corrections are seen within this long


def negative_scores(
    probe: np.ndarray, negatives: np.ndarray, cohort: np.ndarray | None, negative_means: np.ndarray | None = None
) -> np.ndarray:
    """The decision rule's score of ``probe`` against each negative exemplar (lower = more alike)."""
    probe = np.asarray(probe, np.float32).reshape(-1)
    distances = np.sqrt(np.maximum(((negatives - probe[None, :]) ** 2).sum(1), 0.0))
    if cohort is None:
        return distances.astype(np.float32)
    means = cohort_means(negatives, cohort, COHORT_K) if negative_means is None else negative_means
    probe_mean = float(cohort_means(probe[None, :], cohort, COHORT_K)[0])
    return (distances / np.sqrt(np.maximum(probe_mean * means, 1e-12))).astype(np.float32)


def accepts(positive_score: float, negative: np.ndarray, margin: float = NEGATIVE_MARGIN) -> bool:
    """Whether a face scoring ``positive_score`` against P is still P given its scores against P's negatives."""
    return len(negative) == 0 or float(negative.min()) - positive_score > margin


class _Negatives:
    """Per model: person -> (negative descriptors, their cohort means), reloaded when the inbox version moves."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked = 0.0
        self.version = -1
        self.by_model: dict[str, dict[int, tuple[np.ndarray, np.ndarray | None]]] = {}


_CACHES: weakref.WeakKeyDictionary[Any, _Negatives] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache(store: Store) -> _Negatives:
    with _CACHES_LOCK:
        found = _CACHES.get(store)
        if found is None:
            found = _CACHES[store] = _Negatives()
        return found


def invalidate(store: Store) -> None:
    cache = _cache(store)
    with cache.lock:
        cache.checked, cache.version = 0.0, -1
        cache.by_model.clear()


def _negatives_of(store: Store, matcher: Matcher, person_id: int) -> tuple[np.ndarray, np.ndarray | None] | None:
    cache = _cache(store)
    model = matcher.gallery.model_id
    with cache.lock:
        now = time.monotonic()
        if now - cache.checked > NEGATIVES_REFRESH_SECONDS:
            with store._read() as session:
                version = int(session.scalar(select(InboxState.version).where(InboxState.id == 1)) or 0)
            cache.checked = now
            if version != cache.version:
                cache.version = version
                cache.by_model.clear()
        if model not in cache.by_model:
            grouped: dict[int, list[np.ndarray]] = {}
            with store._read() as session:
                for person, data in session.execute(
                    select(FaceNegative.person_id, FaceNegative.embedding).where(FaceNegative.model_id == model)
                ):
                    grouped.setdefault(int(person), []).append(from_bytes(data))
            table: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
            for person, vectors in grouped.items():
                stacked = np.stack(vectors)
                means = cohort_means(stacked, matcher.cohort, COHORT_K) if matcher.cohort is not None else None
                table[person] = (stacked, means)
            cache.by_model[model] = table
        return cache.by_model[model].get(person_id)


def apply_negatives(store: Store, result: Identification, embedding: np.ndarray, matcher: Matcher) -> Identification:
    """The decision with the named person's negatives taken into account (called by the store for every answer)."""
    if result.person is None:
        return result
    found = _negatives_of(store, matcher, result.person.person_id)
    if found is None:
        return result
    scores = negative_scores(embedding, found[0], matcher.cohort, found[1])
    if accepts(result.person.score, scores):
        return result
    log.debug("person %d not named: the face is as close to one of their negatives", result.person.person_id)
    return replace(result, person=None, outcome="unknown", confidence=0.0, stranger_rate=None)


@dataclass(frozen=True)
class NegativeRecord:
    id: int
    person_id: int
    model_id: str
    event_id: int | None
    has_crop: bool
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "person_id": self.person_id,
            "model_id": self.model_id,
            "event_id": self.event_id,
            "has_crop": self.has_crop,
            "created_at": self.created_at.isoformat(),
        }


def _event_face(store: Store, event: Event) -> tuple[np.ndarray | None, bytes | None]:
    """The event's descriptor (its clustering one, its template, or its crop described again) and its crop."""
    meta = event.meta or {}
    crop = None
    if isinstance(meta.get("crop_jpeg"), str):
        try:
            crop = base64.b64decode(meta["crop_jpeg"])
        except ValueError:
            crop = None
    vector = event_template(meta)
    if vector is None and crop is not None:
        try:
            vector = np.asarray(store.prepare(crop, pick="largest").embedding, np.float32)
        except Exception as error:  # a crop the detector finds no face in gives no exemplar
            log.info("event %d: its crop gives no descriptor (%s)", event.id, error)
    return vector, crop


def not_this_person(store: Store, event_id: int, actor: Actor = SYSTEM) -> dict[str, Any]:
    """The event's face is not the person it was named: keep it as a negative of theirs, make the event unknown."""
    with store._read() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise NotFoundError(f"no event with id {event_id}")
        if event.person_id is None:
            raise ConflictError(f"event {event_id} names nobody")
        member = session.get(VisitorMember, event_id)
        vector, crop = _event_face(store, event)
        if member is not None:
            vector = from_bytes(member.embedding)
    if vector is None:
        raise BadInputError(f"event {event_id} keeps no face to learn from (no descriptor and no crop)")
    model_id = event.model_id or store.model_id
    person_id = int(event.person_id)
    with store._write() as session:
        current = session.get(Event, event_id)
        if current is None or current.person_id != person_id:
            raise ConflictError(f"event {event_id} changed meanwhile")
        negative = FaceNegative(
            person_id=person_id,
            model_id=model_id,
            embedding=to_bytes(vector),
            crop=crop,
            event_id=event_id,
            created_at=utcnow(),
        )
        session.add(negative)
        meta = dict(current.meta or {})
        meta["template"] = [round(float(v), 6) for v in vector]
        meta["corrected"] = {"not_person": person_id, "at": utcnow().isoformat()}
        current.meta, current.person_id = meta, None
        session.execute(delete(VisitorMember).where(VisitorMember.event_id == event_id))
        session.flush()
        Inbox._bump(session)
        store._bump(session)  # answers cached by name change
        result = {"event_id": event_id, "person_id": person_id, "negative_id": negative.id}
        audit(session, actor, "event.not_person", "event", event_id, result)
    invalidate(store)
    box = inbox(store)
    box._cache.clear()
    box._scanned.pop(model_id, None)  # an older event is unknown again: look at every event
    box.observe(model_id)
    return result


def this_is(store: Store, event_id: int, person: PersonRef, actor: Actor = SYSTEM) -> dict[str, Any]:
    """Label an event (named or unknown) as ``person``; it leaves its visitor."""
    with store._write() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise NotFoundError(f"no event with id {event_id}")
        target = store._person(session, person)
        before = event.person_id
        meta = dict(event.meta or {})
        meta["corrected"] = {"person": target.id, "was": before, "at": utcnow().isoformat()}
        event.meta, event.person_id = meta, target.id
        session.execute(delete(VisitorMember).where(VisitorMember.event_id == event_id))
        # Saying it is X after all takes back an earlier "not X" on this very event.
        withdrawn = session.execute(
            delete(FaceNegative).where(FaceNegative.event_id == event_id, FaceNegative.person_id == target.id)
        )
        Inbox._bump(session)
        result = {
            "event_id": event_id,
            "person_id": target.id,
            "was": before,
            "negatives_withdrawn": int(getattr(withdrawn, "rowcount", 0) or 0),
        }
        audit(session, actor, "event.this_is", "event", event_id, result)
    inbox(store)._cache.clear()
    invalidate(store)
    return result


def negatives(store: Store, person: PersonRef | None = None) -> list[NegativeRecord]:
    with store._read() as session:
        statement = select(FaceNegative).order_by(FaceNegative.id)
        if person is not None:
            statement = statement.where(FaceNegative.person_id == store._person(session, person).id)
        return [
            NegativeRecord(n.id, n.person_id, n.model_id, n.event_id, n.crop is not None, n.created_at)
            for n in session.scalars(statement)
        ]


def reembed_negatives(store: Store, model_id: str, describe: Any) -> int:
    """Describe every negative that has a crop and no descriptor of ``model_id`` yet with ``describe`` (crop bytes
    -> descriptor, e.g. a fine-tuned version's analyzer); returns how many were added. A negative without a crop
    cannot follow a new model and is left out of its decisions (logged)."""
    with store._read() as session:
        rows = list(session.scalars(select(FaceNegative).order_by(FaceNegative.id)))
    have = {(n.person_id, n.event_id) for n in rows if n.model_id == model_id}
    added = 0
    with store._write() as session:
        for n in rows:
            if n.model_id == model_id or (n.person_id, n.event_id) in have:
                continue
            if n.crop is None:
                log.warning("negative %d has no crop: it cannot be described by %s", n.id, model_id)
                continue
            try:
                vector = np.asarray(describe(n.crop), np.float32).reshape(-1)
            except FaceidError as error:  # no face found in the crop by this version's detector
                log.warning("negative %d cannot be described by %s: %s", n.id, model_id, error)
                continue
            session.add(
                FaceNegative(
                    person_id=n.person_id,
                    model_id=model_id,
                    embedding=to_bytes(vector),
                    crop=n.crop,
                    event_id=n.event_id,
                    created_at=n.created_at,
                )
            )
            have.add((n.person_id, n.event_id))
            added += 1
        Inbox._bump(session)
    invalidate(store)
    return added


def export_negatives(store: Store) -> list[dict[str, Any]]:
    """Every negative as JSON (person by name, so an import into another store finds them)."""
    with store._read() as session:
        from faceid.store.schema import Person

        names = dict(session.execute(select(Person.id, Person.name)).all())
        return [
            {
                "person": names.get(n.person_id),
                "model_id": n.model_id,
                "embedding": base64.b64encode(bytes(n.embedding)).decode("ascii"),
                "crop": None if n.crop is None else base64.b64encode(n.crop).decode("ascii"),
                "created_at": n.created_at.isoformat(),
            }
            for n in session.scalars(select(FaceNegative).order_by(FaceNegative.id))
        ]


def import_negatives(store: Store, items: list[dict[str, Any]]) -> int:
    """Add exported negatives to the people of the same name here (those of people missing here are skipped)."""
    with store._write() as session:
        added = add_negatives(session, store, items)
    invalidate(store)
    return added


def add_negatives(session: Session, store: Store, items: Any, only: set[str] | None = None) -> int:
    """Within a transaction (an archive's import): add exported negatives of the people named in ``only`` (all if
    None); malformed items and people missing here are skipped."""
    added = 0
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("person"), str):
            continue
        if only is not None and item["person"] not in only:
            continue
        try:
            person = store._person(session, item["person"])
            embedding = base64.b64decode(item["embedding"], validate=True)
            crop = base64.b64decode(item["crop"], validate=True) if item.get("crop") else None
            created = datetime.fromisoformat(item["created_at"]) if item.get("created_at") else utcnow()
        except (NotFoundError, KeyError, TypeError, ValueError):
            continue
        session.add(
            FaceNegative(
                person_id=person.id,
                model_id=str(item.get("model_id") or store.model_id),
                embedding=embedding,
                crop=crop,
                event_id=None,
                created_at=created,
            )
        )
        added += 1
    if added:
        session.flush()
        Inbox._bump(session)
    return added


# -- the history, searched by face ------------------------------------------------------------------------------


def search_history(
    store: Store,
    *,
    embedding: np.ndarray | None = None,
    person: PersonRef | None = None,
    visitor: int | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """Every past event within the decision rule of a face (a descriptor), a person or a visitor, across cameras,
    newest first, each with its distance and score. Unknown events are compared by their descriptor; events named
    someone are found through the person the face is (their descriptors are not kept)."""
    if sum(x is not None for x in (embedding, person, visitor)) != 1:
        raise BadInputError("search by one of: a photo, a person, a visitor")
    model_id = store.model_id
    person_id: int | None = None
    own_events: set[int] = set()
    if visitor is not None:
        model_id, probe = inbox(store).centroid(visitor)
        own_events = set(inbox(store).events(visitor))
        person_id = inbox(store).get(visitor).person_id
    elif person is not None:
        with store._read() as session:
            person_id = store._person(session, person).id
            faces = list(
                session.scalars(select(Face.embedding).where(Face.person_id == person_id, Face.model_id == model_id))
            )
        if not faces:
            raise NotFoundError(f"person {person} has no face of model {model_id}")
        probe = np.stack(faces).mean(0)
    else:
        probe = np.asarray(embedding, np.float32).reshape(-1)
        answer = store.identify_embedding(probe, top_k=2, model_id=model_id)
        person_id = answer.person.person_id if answer.person is not None else None
    matcher = store.matcher(model_id)
    threshold = matcher.threshold()
    hits: dict[int, dict[str, Any]] = {}
    with store._read() as session:
        rows = session.execute(
            select(VisitorMember.event_id, VisitorMember.embedding)
            .join(Event, Event.id == VisitorMember.event_id)
            .where(VisitorMember.model_id == model_id, Event.person_id.is_(None))
        ).all()
        if rows:
            vectors = np.stack([from_bytes(e) for _, e in rows])
            distances = np.sqrt(np.maximum(((vectors - probe[None, :]) ** 2).sum(1), 0.0))
            scores = negative_scores(probe, vectors, matcher.cohort)
            for (event_id, _), distance, score in zip(rows, distances.tolist(), scores.tolist(), strict=True):
                if score <= threshold or int(event_id) in own_events:
                    hits[int(event_id)] = {"distance": round(distance, 6), "score": round(score, 6), "via": "face"}
        for event_id in own_events:
            hits.setdefault(event_id, {"distance": None, "score": None, "via": "visitor"})
        if person_id is not None:
            for event_id, distance in session.execute(
                select(Event.id, Event.distance).where(Event.person_id == person_id)
            ):
                hits.setdefault(int(event_id), {"distance": distance, "score": None, "via": "person"})
        events = []
        for chunk in _chunked(list(hits)):
            events += list(session.scalars(select(Event).where(Event.id.in_(chunk))))
    from faceid.store.records import EventRecord

    events.sort(key=lambda e: (e.time, e.id), reverse=True)
    return {
        "model_id": model_id,
        "threshold": round(threshold, 6),
        "person_id": person_id,
        "total": len(events),
        "events": [
            {**EventRecord.of(e).to_dict(), "match": hits[e.id]}
            | {"metadata": {k: v for k, v in (e.meta or {}).items() if k not in ("template", "crop_jpeg")}}
            for e in events[:limit]
        ],
    }


def _chunked(items: list[int], size: int = 500) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]

"""Retention and erasure you can check.

Retention: per kind of record, how many days it is kept (``faceid retention set KIND DAYS``): known events,
unknown events (rows and snapshots deleted), snapshots (the event is kept, its snapshot file goes), crops (the
face crop kept in an event's metadata goes). :class:`RetentionJob` applies the rules in the background (the server
runs one); each pass that removed something writes an audit row with the counts.

Erasure: :func:`forget` removes a person with everything of theirs in one transaction: the person, their faces and
every descriptor of them (all model versions), their events with snapshots and crops, the visitors named after
them and their memberships, their "not this person" exemplars. Monitors drop their cached copy at their next
gallery refresh (the gallery version moves). The audit log gets an erasure receipt: counts per table and per
folder, never the name. Fine-tuned model versions made after the person was enrolled are listed for the admin
(they may have learnt from the person's faces; a model cannot forget by itself).
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from faceid.errors import BadInputError
from faceid.store.inbox_schema import FaceNegative, RetentionRule, Visitor, VisitorMember
from faceid.store.schema import Event, Face, Person
from faceid.store.types import utcnow
from faceid.store.visitors import SYSTEM, Actor, Inbox, audit, inbox
from faceid.thresholds import RETENTION_JOB_SECONDS, RETENTION_KINDS

if TYPE_CHECKING:
    from faceid.store.store import PersonRef, Store

log = logging.getLogger(__name__)

RETENTION_BATCH = 500


def retention_rules(store: Store) -> dict[str, int | None]:
    """Days kept per kind (None: for ever)."""
    with store._read() as session:
        found = {r.kind: r.days for r in session.scalars(select(RetentionRule))}
    return {kind: found.get(kind) for kind in RETENTION_KINDS}


def set_retention(store: Store, kind: str, days: int | None, actor: Actor = SYSTEM) -> dict[str, int | None]:
    if kind not in RETENTION_KINDS:
        raise BadInputError(f"a retention kind is one of {', '.join(RETENTION_KINDS)}, not {kind!r}")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0 or days > 100_000):
        raise BadInputError("days is a whole number from 0 to 100000, or none (kept for ever)")
    with store._write() as session:
        row = session.get(RetentionRule, kind)
        before = None if row is None else row.days
        if row is None:
            session.add(RetentionRule(kind=kind, days=days, updated_at=utcnow()))
        else:
            row.days, row.updated_at = days, utcnow()
        audit(session, actor, "retention.set", "retention", kind, {"days": days, "was": before})
    return retention_rules(store)


def _delete_events(store: Store, where: Any) -> int:
    deleted = 0
    while True:
        with store.files.removing(store.referenced_images) as batch, store._write() as session:
            rows = session.execute(
                select(Event.id, Event.snapshot_sha256, Event.snapshot_type).where(where).limit(RETENTION_BATCH)
            ).all()
            if not rows:
                return deleted
            batch.declare([(sha, kind) for _, sha, kind in rows if sha and kind])
            ids = [int(r[0]) for r in rows]
            session.execute(delete(VisitorMember).where(VisitorMember.event_id.in_(ids)))
            session.execute(delete(Event).where(Event.id.in_(ids)))
            deleted += len(ids)


def apply_retention(store: Store, now: datetime | None = None, actor: Actor = SYSTEM) -> dict[str, int]:
    """Apply every rule once; returns what each removed."""
    now = now or utcnow()
    rules = retention_rules(store)
    counts = dict.fromkeys(RETENTION_KINDS, 0)
    cutoff = {k: now - timedelta(days=d) for k, d in rules.items() if d is not None}
    if "known_events" in cutoff:
        counts["known_events"] = _delete_events(
            store, (Event.person_id.is_not(None)) & (Event.time < cutoff["known_events"])
        )
    if "unknown_events" in cutoff:
        counts["unknown_events"] = _delete_events(
            store, (Event.person_id.is_(None)) & (Event.time < cutoff["unknown_events"])
        )
    if "snapshots" in cutoff:
        while True:
            with store.files.removing(store.referenced_images) as batch, store._write() as session:
                rows = session.execute(
                    select(Event.id, Event.snapshot_sha256, Event.snapshot_type)
                    .where(Event.snapshot_sha256.is_not(None), Event.time < cutoff["snapshots"])
                    .limit(RETENTION_BATCH)
                ).all()
                if not rows:
                    break
                batch.declare([(sha, kind) for _, sha, kind in rows if sha and kind])
                session.execute(
                    update(Event)
                    .where(Event.id.in_([int(r[0]) for r in rows]))
                    .values(snapshot_sha256=None, snapshot_type=None)
                )
                counts["snapshots"] += len(rows)
    if "crops" in cutoff:
        with store._write() as session:
            for event in session.scalars(select(Event).where(Event.time < cutoff["crops"])):
                meta = event.meta or {}
                if "crop_jpeg" in meta:
                    event.meta = {k: v for k, v in meta.items() if k not in ("crop_jpeg", "crop_box")}
                    counts["crops"] += 1
    emptied = _drop_empty_visitors(store)
    if any(counts.values()):
        with store._write() as session:
            audit(session, actor, "retention.apply", "retention", None, {**counts, "empty_visitors": emptied})
        log.info("retention: %s", counts)
    return counts


def _drop_empty_visitors(store: Store) -> int:
    with store._write() as session:
        empty = select(VisitorMember.event_id).where(VisitorMember.visitor_id == Visitor.id).exists()
        gone = int(getattr(session.execute(delete(Visitor).where(~empty)), "rowcount", 0) or 0)
        if gone:
            Inbox._bump(session)
    if gone:
        inbox(store)._cache.clear()
    return gone


class RetentionJob:
    """Applies the retention rules every ``interval`` seconds in a daemon thread."""

    def __init__(self, store: Store, interval: float = RETENTION_JOB_SECONDS) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: dict[str, Any] | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="faceid-retention", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def run_once(self) -> dict[str, int]:
        counts = apply_retention(self.store)
        self.last = {"time": utcnow().isoformat(), "removed": counts}
        return counts

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a failed pass is retried at the next one
                log.exception("applying the retention rules failed")
            self._stop.wait(self.interval)


# -- erasure ----------------------------------------------------------------------------------------------------


def _count(session: Session, statement: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(statement.subquery())) or 0)


def forget(store: Store, ref: PersonRef, actor: Actor = SYSTEM) -> dict[str, Any]:
    """Remove the person and every trace of them; returns the erasure receipt (also written to the audit log)."""
    from faceid.store.versions import DescriptorVersion, FaceEmbedding

    receipt = uuid.uuid4().hex
    with store.files.removing(store.referenced_images) as batch, store._write() as session:
        person = store._person(session, ref, lock=True)
        pid = person.id
        enrolled_at = person.created_at
        face_ids = [int(f) for f in session.scalars(select(Face.id).where(Face.person_id == pid))]
        files = list(session.execute(select(Face.image_sha256, Face.image_type).where(Face.person_id == pid)).all())
        files += session.execute(select(Event.snapshot_sha256, Event.snapshot_type).where(Event.person_id == pid)).all()
        declared = {(sha, kind) for sha, kind in files if sha and kind}
        visitor_ids = [int(v) for v in session.scalars(select(Visitor.id).where(Visitor.person_id == pid))]
        event_ids = [int(e) for e in session.scalars(select(Event.id).where(Event.person_id == pid))]
        # Events of the person's visitors that were split out unnamed stay (they are not known to be the person).
        counts = {
            "people": 1,
            "faces": len(face_ids),
            "face_embeddings": _count(session, select(FaceEmbedding.face_id).where(FaceEmbedding.face_id.in_(face_ids)))
            if face_ids
            else 0,
            "events": len(event_ids),
            "visitors": len(visitor_ids),
            "visitor_members": _count(
                session,
                select(VisitorMember.event_id).where(
                    VisitorMember.event_id.in_(event_ids) | VisitorMember.visitor_id.in_(visitor_ids)
                ),
            ),
            "face_negatives": _count(session, select(FaceNegative.id).where(FaceNegative.person_id == pid)),
        }
        shas = sorted({sha for sha, _ in declared})
        shared: set[str] = set()
        for chunk in _chunks(shas):
            shared.update(
                session.scalars(select(Face.image_sha256).where(Face.image_sha256.in_(chunk), Face.person_id != pid))
            )
            shared.update(
                session.scalars(
                    select(Event.snapshot_sha256).where(
                        Event.snapshot_sha256.in_(chunk), (Event.person_id != pid) | Event.person_id.is_(None)
                    )
                )
            )
        batch.declare(sorted(declared))
        for chunk in _chunks(face_ids):
            session.execute(delete(FaceEmbedding).where(FaceEmbedding.face_id.in_(chunk)))
        for chunk in _chunks(event_ids):
            session.execute(delete(VisitorMember).where(VisitorMember.event_id.in_(chunk)))
        for chunk in _chunks(visitor_ids):
            session.execute(delete(VisitorMember).where(VisitorMember.visitor_id.in_(chunk)))
            session.execute(delete(Visitor).where(Visitor.id.in_(chunk)))
        session.execute(delete(FaceNegative).where(FaceNegative.person_id == pid))
        session.execute(delete(Event).where(Event.person_id == pid))
        session.execute(delete(Face).where(Face.person_id == pid))
        session.execute(delete(Person).where(Person.id == pid))
        store._log_faces(session, face_ids)  # every process's index drops them at its next refresh
        Inbox._bump(session)
        versions = [
            v.model_id
            for v in session.scalars(select(DescriptorVersion).where(DescriptorVersion.kind == "finetuned"))
            if v.created_at is not None and enrolled_at is not None and v.created_at >= enrolled_at
        ]
        details = {
            "receipt": receipt,
            "person_id": pid,
            "rows": counts,
            "files": {
                "images": len([1 for sha, _ in declared if sha not in shared]),
                "images_shared_kept": len(shared),
            },
            "finetuned_versions_to_review": versions,
        }
        audit(session, actor, "person.forget", "person", pid, details)
    # The saved approximate indexes must not keep the vectors either.
    for gallery in list(store._galleries.values()):
        gallery.sync()
        gallery.save()
    inbox(store)._cache.clear()
    from faceid.store.corrections import invalidate

    invalidate(store)
    log.info("forgot person %d (receipt %s): %s", pid, receipt, counts)
    return details


def _chunks(items: list[Any], size: int = 500) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]

"""Retention per kind, applied by a job, and forgetting a person with a receipt that names no one."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from faceid.errors import BadInputError, NotFoundError
from faceid.store.audit import AuditLog
from faceid.store.corrections import negatives, not_this_person
from faceid.store.inbox_schema import FaceNegative, Visitor, VisitorMember
from faceid.store.retention import RetentionJob, apply_retention, forget, retention_rules, set_retention
from faceid.store.schema import Event, Face, Person
from faceid.store.store import Store
from faceid.store.types import utcnow
from faceid.store.visitors import inbox

from .test_visitors import MODEL, face_of, people


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def event(store: Store, vector: np.ndarray, days_ago: float, seed: int, person_id: int | None = None) -> int:
    meta = {"template": [float(v) for v in vector], "crop_jpeg": "AAAA", "crop_box": [0, 0, 1, 1]}
    return store.record_event(
        person_id=person_id,
        source="gate",
        time=utcnow() - timedelta(days=days_ago),
        snapshot=jpeg(seed),
        box=[0, 0, 10, 10],
        model_id=MODEL,
        metadata=meta,
    ).id


def test_retention_per_kind(store: Store) -> None:
    rng = np.random.default_rng(1)
    a, b = people(2)
    ada = store.enroll_embeddings("Ada", face_of(a, rng)[None, :]).id
    event(store, face_of(a, rng), 40, 1, ada)
    new_known = event(store, face_of(a, rng), 1, 2, ada)
    event(store, face_of(b, rng), 40, 3)
    new_unknown = event(store, face_of(b, rng), 1, 4)
    crops_only = event(store, face_of(b, rng), 10, 5)
    assert retention_rules(store) == dict.fromkeys(retention_rules(store))  # for ever until set
    with pytest.raises(BadInputError):
        set_retention(store, "faces", 3)
    with pytest.raises(BadInputError):
        set_retention(store, "crops", -1)
    set_retention(store, "known_events", 30)
    set_retention(store, "unknown_events", 30)
    set_retention(store, "snapshots", 20)
    set_retention(store, "crops", 5)
    removed = RetentionJob(store).run_once()
    assert removed == {"known_events": 1, "unknown_events": 1, "snapshots": 0, "crops": 1}
    left = {e.id: e for e in store.list_events(limit=50)}
    assert set(left) == {new_known, new_unknown, crops_only}
    assert "crop_jpeg" not in left[crops_only].metadata and "crop_jpeg" in left[new_unknown].metadata
    assert store.check()["ok"], store.check()  # the snapshots of the deleted events are gone from disk
    set_retention(store, "snapshots", 5)
    assert apply_retention(store)["snapshots"] == 1
    assert store.check()["ok"]
    assert all(v.events for v in inbox(store).list_visitors())  # no empty visitor left
    assert AuditLog(store.database).entries(action="retention.apply")


def test_forget_removes_every_trace_with_a_receipt(store: Store) -> None:
    rng = np.random.default_rng(2)
    (a,) = people(1)
    events = [event(store, face_of(a, rng), 1, 10 + k) for k in range(3)]
    (visitor,) = inbox(store).list_visitors()
    named = inbox(store).name(visitor.id, "Ada Lovelace")
    ada = named["person_id"]
    wrong = event(store, face_of(a, rng), 0, 20, person_id=ada)
    not_this_person(store, wrong)  # a negative of hers (the event itself is someone else's: it stays)
    stray = event(store, face_of(a, rng), 0, 21, person_id=ada)
    assert negatives(store, ada)
    receipt = forget(store, "Ada Lovelace")
    assert receipt["rows"]["people"] == 1 and receipt["rows"]["faces"] == named["faces_enrolled"]
    assert receipt["rows"]["events"] == 4 and receipt["rows"]["face_negatives"] == 1
    assert receipt["rows"]["visitors"] == 1 and receipt["files"]["images"] == 4
    with store._read() as session:
        for table, where in (
            (Person, Person.id == ada),
            (Face, Face.person_id == ada),
            (Event, Event.id.in_([*events, stray])),
            (VisitorMember, VisitorMember.event_id.in_(events)),
            (Visitor, Visitor.person_id == ada),
            (FaceNegative, FaceNegative.person_id == ada),
        ):
            assert session.scalar(select(func.count()).select_from(table).where(where)) == 0, table
    assert store.check()["ok"]
    (entry,) = AuditLog(store.database).entries(action="person.forget")
    assert "Ada" not in json.dumps(entry.details) and "Lovelace" not in json.dumps(entry.details)
    assert entry.details["receipt"] == receipt["receipt"]
    assert store.identify_embedding(face_of(a, rng)).person is None
    with pytest.raises(NotFoundError):
        forget(store, "Ada Lovelace")

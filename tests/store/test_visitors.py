"""The unknown-faces inbox at the store level: clustering as events arrive, the quality gate, stable ids, actions."""

from __future__ import annotations

import numpy as np
import pytest

from faceid.errors import BadInputError, ConflictError
from faceid.store.audit import AuditLog
from faceid.store.store import Store
from faceid.store.visitors import Actor, farthest_point_sample, inbox

from .helpers import TEST_MODEL

MODEL = TEST_MODEL  # the store fixture's (tests/store/conftest.py): SQLite and PostgreSQL
DIM = 128


def people(n: int, seed: int = 0) -> np.ndarray:
    """Centres far apart (pairwise ~1.0, over twice the uncalibrated threshold 0.46)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n, DIM)).astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True) * 0.71


def face_of(centre: np.ndarray, rng: np.random.Generator, spread: float = 0.12) -> np.ndarray:
    return (centre + rng.normal(scale=spread / np.sqrt(DIM), size=DIM)).astype(np.float32)


def unknown(store: Store, vector: np.ndarray, source: str = "gate", quality: float | None = 0.8) -> int:
    meta: dict = {"template": [float(v) for v in vector]}
    if quality is not None:
        meta["quality"] = {"score": quality, "size": 100.0}
    return store.record_event(person_id=None, source=source, model_id=MODEL, metadata=meta).id


def test_events_cluster_into_visitors_as_they_arrive(store: Store) -> None:
    rng = np.random.default_rng(1)
    centres = people(4)
    truth: dict[int, int] = {}
    for k in rng.permutation(np.repeat(np.arange(4), 5)):
        truth[unknown(store, face_of(centres[k], rng), source=["gate", "garage"][k % 2])] = int(k)
    box = inbox(store)
    visitors = box.list_visitors()
    assert len(visitors) == 4
    for visitor in visitors:
        members = box.events(visitor.id)
        assert len({truth[e] for e in members}) == 1 and len(members) == 5
        assert visitor.events == 5 and len(visitor.best_events) == 3
    # The summary says where and when.
    assert {tuple(v.cameras) for v in visitors} == {("gate",), ("garage",)}
    assert "seen 5 time(s)" in visitors[0].headline()


def test_a_poor_face_between_two_visitors_glues_nothing(store: Store) -> None:
    rng = np.random.default_rng(2)
    a, b = people(2)
    for _ in range(3):
        unknown(store, face_of(a, rng))
        unknown(store, face_of(b, rng))
    box = inbox(store)
    before = {v.id: v.events for v in box.list_visitors()}
    # Half-way between the two, blurred: it must not join either, nor move a centroid.
    blurred = unknown(store, ((a + b) / 2).astype(np.float32), quality=0.02)
    after = box.list_visitors()
    assert box.visitor_of([blurred])[blurred] not in before
    assert {v.id: v.events for v in after if v.id in before} == before
    # A poor face clearly close to a visitor still joins it, without shaping its centroid.
    close = unknown(store, face_of(a, rng, 0.02), quality=0.02)
    assert box.visitor_of([close])[close] in before


def test_reclustering_keeps_the_ids_of_unchanged_visitors(store: Store) -> None:
    rng = np.random.default_rng(3)
    centres = people(3)
    for k in rng.permutation(np.repeat(np.arange(3), 4)):
        unknown(store, face_of(centres[k], rng))
    box = inbox(store)
    before = {v.id: set(box.events(v.id)) for v in box.list_visitors()}
    stats = box.recluster(MODEL)
    after = {v.id: set(box.events(v.id)) for v in box.list_visitors()}
    assert after == before
    assert stats["unchanged"] == 3 and stats["new"] == 0


def test_name_enrolls_a_varied_subset_and_labels_past_events(store: Store) -> None:
    rng = np.random.default_rng(4)
    (centre,) = people(1)
    events = [unknown(store, face_of(centre, rng)) for _ in range(8)]
    box = inbox(store)
    (visitor,) = box.list_visitors()
    result = box.name(visitor.id, "Ada", cap=3, actor=Actor("admin", "user"))
    assert result["faces_enrolled"] == 3 and result["events_labelled"] == 8
    assert all(e.person_id == result["person_id"] for e in store.list_events(person="Ada"))
    assert len(store.list_events(person="Ada")) == len(events)
    assert store.identify_embedding(face_of(centre, rng)).person.name == "Ada"
    assert box.get(visitor.id).status == "named"
    (entry,) = AuditLog(store.database).entries(action="visitor.name")
    assert entry.actor == "admin" and entry.details["faces_enrolled"] == 3
    with pytest.raises(ConflictError):
        box.name(visitor.id, "Ada again")


def test_merge_split_ignore_discard(store: Store) -> None:
    rng = np.random.default_rng(5)
    a, b = people(2, seed=9)
    ids_a = [unknown(store, face_of(a, rng)) for _ in range(3)]
    ids_b = [unknown(store, face_of(b, rng)) for _ in range(3)]
    box = inbox(store)
    va, vb = box.visitor_of([ids_a[0]])[ids_a[0]], box.visitor_of([ids_b[0]])[ids_b[0]]
    merged = box.merge(va, vb)
    assert merged.id == va and merged.events == 6 and merged.pinned
    split = box.split(va, ids_b)
    assert split.events == 3 and set(box.events(split.id)) == set(ids_b)
    with pytest.raises(BadInputError):
        box.split(va, [999_999])
    ignored = box.ignore(split.id)
    assert ignored.status == "ignored" and box.is_ignored(ids_b[0])
    # Still recognised as that visitor.
    later = unknown(store, face_of(b, rng))
    assert box.visitor_of([later])[later] == split.id
    # Re-clustering leaves what a person shaped alone.
    box.recluster(MODEL)
    assert set(box.events(va)) == set(ids_a)
    gone = box.discard(va)
    assert gone["events_deleted"] == 3
    assert not {e.id for e in store.list_events(limit=100)} & set(ids_a)


def test_farthest_point_sample_spreads() -> None:
    points = np.array([[0, 0], [0.1, 0], [5, 0], [0, 5], [0.05, 0.05]], np.float32)
    chosen = farthest_point_sample(points, 3)
    assert {2, 3} <= set(chosen)


def test_an_event_that_does_not_say_its_model_is_clustered_with_the_active_one(store: Store) -> None:
    rng = np.random.default_rng(6)
    (centre,) = people(1)
    first = unknown(store, face_of(centre, rng))
    second = store.record_event(person_id=None, metadata={"template": [float(v) for v in face_of(centre, rng)]}).id
    found = inbox(store).visitor_of([first, second])
    assert found[first] == found[second]


def test_visitors_follow_a_new_model_with_their_ids(store: Store) -> None:
    import base64

    rng = np.random.default_rng(7)
    a, b = people(2, seed=4)
    ids = []
    for k in range(6):
        centre = (a, b)[k % 2]
        meta = {
            "template": [float(v) for v in face_of(centre, rng)],
            "crop_jpeg": base64.b64encode(b"ab"[k % 2 : k % 2 + 1]).decode(),
        }
        ids.append(store.record_event(person_id=None, model_id=MODEL, metadata=meta).id)
    no_crop = unknown(store, face_of(a, rng))
    box = inbox(store)
    before = {v.id: set(box.events(v.id)) for v in box.list_visitors()}
    # The "new model": the same people, another space (a fixed rotation), described from the crop bytes.
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(DIM, DIM)))
    centres = {b"a": a @ rotation, b"b": b @ rotation}
    stats = box.follow_model("next-model", lambda crop: face_of(centres[crop].astype(np.float32), rng))
    assert stats["described"] == 6 and stats["without_crop"] == 1
    after = {v.id: set(box.events(v.id)) for v in box.list_visitors(model_id="next-model")}
    assert after == {v: members - {no_crop} for v, members in before.items()}

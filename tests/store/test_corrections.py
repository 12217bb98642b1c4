"""Corrections that stick ("not this person", "this is X") and the history searched by face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceid.errors import BadInputError
from faceid.store.corrections import (
    export_negatives,
    import_negatives,
    negatives,
    not_this_person,
    reembed_negatives,
    search_history,
    this_is,
)
from faceid.store.store import Store
from faceid.store.visitors import inbox

from .test_visitors import MODEL, face_of, people, unknown


def test_not_this_person_stops_a_look_alike_and_keeps_the_person(store: Store) -> None:
    rng = np.random.default_rng(7)
    (ada,) = people(1)
    # A look-alike: close enough to be named Ada, on one side of her.
    direction = rng.normal(size=ada.shape).astype(np.float32)
    direction /= np.linalg.norm(direction)
    twin = (ada + 0.3 * direction).astype(np.float32)
    store.enroll_embeddings("Ada", np.stack([face_of(ada, rng) for _ in range(3)]))
    seen = store.identify_embedding(face_of(twin, rng, 0.03))
    assert seen.person is not None and seen.person.name == "Ada"
    event = store.record_event(person_id=seen.person.person_id, source="gate", model_id=MODEL, metadata={}).id
    with pytest.raises(BadInputError, match="no face"):
        not_this_person(store, event)  # no descriptor kept: nothing to learn from
    event = store.record_event(
        person_id=seen.person.person_id,
        source="gate",
        model_id=MODEL,
        metadata={"template": [float(v) for v in face_of(twin, rng, 0.03)]},
    ).id
    result = not_this_person(store, event)
    assert result["person_id"] == seen.person.person_id
    # The event is unknown again, back in the inbox.
    assert store.list_events(unknown_only=True)[0].id == event
    assert inbox(store).visitor_of([event])
    # The look-alike's later faces are no longer named Ada; Ada's own still are.
    later = [store.identify_embedding(face_of(twin, rng, 0.03)) for _ in range(10)]
    assert all(r.person is None for r in later)
    own = [store.identify_embedding(face_of(ada, rng)) for _ in range(10)]
    assert all(r.person is not None and r.person.name == "Ada" for r in own)
    # Carried by export/import and by a new model.
    items = export_negatives(store)
    assert len(items) == 1 and items[0]["person"] == "Ada"
    assert reembed_negatives(store, "other-model", lambda crop: np.zeros(128)) == 0  # no crop: left out (logged)


def test_export_import_negatives(tmp_path: Path, store: Store) -> None:
    rng = np.random.default_rng(8)
    (ada,) = people(1)
    ada_id = store.enroll_embeddings("Ada", face_of(ada, rng)[None, :]).id
    event = store.record_event(
        person_id=ada_id, model_id=MODEL, metadata={"template": [float(v) for v in face_of(ada, rng)]}
    ).id
    not_this_person(store, event)
    with Store(tmp_path / "other", model_id=MODEL, index="exact") as other:
        other.enroll_embeddings("Ada", face_of(ada, rng)[None, :])
        assert import_negatives(other, export_negatives(store)) == 1
        assert len(negatives(other, "Ada")) == 1


def test_this_is_labels_any_event(store: Store) -> None:
    rng = np.random.default_rng(9)
    (ada,) = people(1)
    store.enroll_embeddings("Ada", face_of(ada, rng)[None, :])
    event = unknown(store, face_of(ada, rng))
    assert inbox(store).visitor_of([event])
    this_is(store, event, "Ada")
    assert store.list_events(person="Ada")[0].id == event
    assert not inbox(store).visitor_of([event])


def test_search_history_by_face_person_and_visitor(store: Store) -> None:
    rng = np.random.default_rng(10)
    a, b = people(2, seed=3)
    seen_a = [unknown(store, face_of(a, rng), source=cam) for cam in ("gate", "garage", "gate")]
    unknown(store, face_of(b, rng))
    found = search_history(store, embedding=face_of(a, rng))
    assert [e["id"] for e in found["events"]] == seen_a[::-1]  # newest first, across cameras
    assert all(e["match"]["score"] <= found["threshold"] for e in found["events"])
    visitor = inbox(store).visitor_of([seen_a[0]])[seen_a[0]]
    assert {e["id"] for e in search_history(store, visitor=visitor)["events"]} == set(seen_a)
    inbox(store).name(visitor, "Ada")
    assert {e["id"] for e in search_history(store, person="Ada")["events"]} == set(seen_a)


def test_negatives_travel_in_archives(tmp_path: Path, store: Store) -> None:
    from faceid.store.archive import export_archive, import_archive

    rng = np.random.default_rng(11)
    (ada,) = people(1)
    ada_id = store.enroll_embeddings("Ada", face_of(ada, rng)[None, :]).id
    event = store.record_event(
        person_id=ada_id, model_id=MODEL, metadata={"template": [float(v) for v in face_of(ada, rng)]}
    ).id
    not_this_person(store, event)
    export_archive(store, tmp_path / "a.zip", progress=False)
    with Store(tmp_path / "other", model_id=MODEL, index="exact") as other:
        import_archive(other, tmp_path / "a.zip", progress=False)
        (negative,) = negatives(other, "Ada")
        assert negative.model_id == MODEL


def test_reembedding_describes_negatives_from_their_crops(store: Store) -> None:
    rng = np.random.default_rng(12)
    (ada,) = people(1)
    ada_id = store.enroll_embeddings("Ada", face_of(ada, rng)[None, :]).id
    meta = {"template": [float(v) for v in face_of(ada, rng)], "crop_jpeg": "AAAA"}
    not_this_person(store, store.record_event(person_id=ada_id, model_id=MODEL, metadata=meta).id)
    assert reembed_negatives(store, "next-model", lambda crop: np.ones(64)) == 1
    assert {n.model_id for n in negatives(store, "Ada")} == {MODEL, "next-model"}
    assert reembed_negatives(store, "next-model", lambda crop: np.ones(64)) == 0  # once


def test_merging_people_keeps_their_visitors_and_negatives(store: Store) -> None:
    rng = np.random.default_rng(13)
    a, b = people(2, seed=5)
    seen = [unknown(store, face_of(a, rng)) for _ in range(2)]
    visitor = inbox(store).visitor_of(seen)[seen[0]]
    named = inbox(store).name(visitor, "Ada")["person_id"]
    other = store.enroll_embeddings("Ada L", face_of(a, rng)[None, :]).id
    wrong = store.record_event(
        person_id=other, model_id=MODEL, metadata={"template": [float(v) for v in face_of(b, rng)]}
    )
    not_this_person(store, wrong.id)
    store.merge_people(named, other)
    assert inbox(store).get(visitor).person_id == named
    assert [n.person_id for n in negatives(store)] == [named]

"""People, faces, events and identification through the Store API, on SQLite and on PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from faceid.errors import BadInputError, ConflictError, NotFoundError
from faceid.store import Store

from .helpers import PNG_1PX, TEST_MODEL, random_embeddings, table_counts


def test_enroll_list_get_find(store: Store) -> None:
    vectors = random_embeddings(3)
    ada = store.enroll_embeddings("Ada  Lovelace", vectors[:1], external_id="E-1", notes="first", metadata={"team": 1})
    grace = store.enroll_embeddings("Grace Hopper", vectors[1:3])
    assert ada.name == "Ada Lovelace" and ada.face_count == 1 and ada.metadata == {"team": 1}
    assert grace.face_count == 2
    assert [p.name for p in store.list_people()] == ["Ada Lovelace", "Grace Hopper"]
    assert store.get_person(ada.id).external_id == "E-1"
    assert store.get_person("ada lovelace").id == ada.id  # names match whatever the case and spacing
    assert store.get_person(str(grace.id)).id == grace.id
    assert store.get_person("E-1").id == ada.id
    assert [p.name for p in store.find_people("hop")] == ["Grace Hopper"]
    assert store.list_people(limit=1, offset=1)[0].name == "Grace Hopper"
    assert store.count_people() == 2 and store.count_faces() == 3


def test_bad_input_changes_nothing(store: Store) -> None:
    vectors = random_embeddings(4)
    store.enroll_embeddings("Ada", vectors[:1], external_id="E-1")
    before = table_counts(store)
    with pytest.raises(ConflictError, match="already exists"):
        store.enroll_embeddings("ADA", vectors[1:2])
    with pytest.raises(ConflictError, match="external id"):
        store.enroll_embeddings("Bob", vectors[1:2], external_id="E-1")
    with pytest.raises(BadInputError):
        store.enroll_embeddings("   ", vectors[1:2])
    with pytest.raises(BadInputError, match="non-finite"):
        store.enroll_embeddings("Nan", np.full((1, 128), np.nan, np.float32))
    with pytest.raises(NotFoundError):
        store.get_person(999)
    with pytest.raises(NotFoundError):
        store.delete_person("nobody")
    with pytest.raises(NotFoundError):
        store.update_person(999, name="x")
    with pytest.raises(NotFoundError):
        store.merge_people("Ada", "nobody")
    with pytest.raises(NotFoundError):
        store.remove_face(12345)
    with pytest.raises(NotFoundError):
        store.record_event(person_id=999, source="cam")
    assert table_counts(store) == before
    assert store.check()["ok"]


def test_edit_rename_and_metadata(store: Store) -> None:
    vectors = random_embeddings(2)
    ada = store.enroll_embeddings("Ada", vectors[:1], metadata={"a": 1})
    store.enroll_embeddings("Bob", vectors[1:2], external_id="B")
    edited = store.update_person(ada.id, name="Ada King", notes="countess", metadata={"b": 2}, merge_metadata=True)
    assert (edited.name, edited.notes, edited.metadata) == ("Ada King", "countess", {"a": 1, "b": 2})
    assert store.update_person("Ada King", metadata={"c": 3}).metadata == {"c": 3}
    with pytest.raises(ConflictError):
        store.update_person(ada.id, name="bob")
    with pytest.raises(ConflictError):
        store.update_person(ada.id, external_id="B")
    assert store.update_person("Bob", clear_external_id=True).external_id is None
    assert store.identify_embedding(vectors[0]).candidates[0].name == "Ada King"  # cached names follow renames


def test_merge_moves_faces_and_events(store: Store) -> None:
    vectors = random_embeddings(3)
    keep = store.enroll_embeddings("Keep", vectors[:1], metadata={"x": 1})
    gone = store.enroll_embeddings("Gone", vectors[1:3], external_id="G", notes="n", metadata={"x": 2, "y": 3})
    store.record_event(person_id=gone.id, source="door", distance=0.3)
    merged = store.merge_people("Keep", gone.id)
    assert merged.face_count == 3 and merged.external_id == "G" and merged.notes == "n"
    assert merged.metadata == {"x": 1, "y": 3}
    assert store.list_events(person=keep.id)[0].source == "door"
    with pytest.raises(NotFoundError):
        store.get_person(gone.id)
    assert store.identify_embedding(vectors[2]).candidates[0].person_id == keep.id
    with pytest.raises(BadInputError):
        store.merge_people(keep.id, keep.id)


def test_delete_leaves_nothing(store: Store) -> None:
    vectors = random_embeddings(3)
    ada = store.enroll_embeddings("Ada", vectors[:2])
    bob = store.enroll_embeddings("Bob", vectors[2:3])
    store.record_event(person_id=ada.id, source="door", snapshot=PNG_1PX, idempotency_key="ada-1")
    store.record_event(person_id=None, source="door", distance=0.9)
    assert len(list(store.files.all_files())) == 1
    summary = store.delete_person("Ada")
    assert summary == {"id": ada.id, "name": "Ada", "faces": 2, "events": 1}
    with store.engine.connect() as connection:
        for table, column in (("people", "id"), ("faces", "person_id"), ("events", "person_id")):
            left = connection.execute(text(f"SELECT count(*) FROM {table} WHERE {column} = :id"), {"id": ada.id})
            assert left.scalar_one() == 0, table
        embeddings = connection.execute(text("SELECT embedding FROM faces")).all()
    assert len(embeddings) == 1  # Bob's only
    assert list(store.files.all_files()) == []  # the snapshot went with the event
    assert table_counts(store) == {"people": 1, "faces": 1, "events": 1}
    result = store.identify_embedding(vectors[0])
    assert [c.person_id for c in result.candidates] == [bob.id]


def test_add_and_remove_faces_keep_the_index_in_step(store: Store) -> None:
    vectors = random_embeddings(4)
    ada = store.enroll_embeddings("Ada", vectors[:1])
    assert store.identify_embedding(vectors[1]).candidates[0].distance > 1.0
    from faceid.store import PreparedFace

    added = store.add_prepared("Ada", [PreparedFace(embedding=vectors[1], model_id=TEST_MODEL)])
    assert len(store.faces(ada.id)) == 2
    # The person's centroid moved: the probe is now halfway between the two faces.
    centre = vectors[:2].mean(axis=0)
    assert store.identify_embedding(centre).candidates[0].distance == pytest.approx(0.0, abs=1e-5)
    store.remove_face(added[0].id)
    assert store.identify_embedding(vectors[0]).candidates[0].distance == pytest.approx(0.0, abs=1e-5)
    assert store.get_face(store.faces(ada.id)[0].id).embedding is not None


def test_identify_open_set_decision(store: Store) -> None:
    vectors = random_embeddings(20, seed=3)
    people = [store.enroll_embeddings(f"P{i}", vectors[i : i + 1]) for i in range(10)]
    near = vectors[4] + 0.02 * random_embeddings(1, seed=9)[0]
    result = store.identify_embedding(near, top_k=3)
    assert result.known and result.person is not None and result.person.person_id == people[4].id
    assert len(result.candidates) == 3
    assert result.candidates[0].score <= result.candidates[1].score <= result.candidates[2].score
    stranger = store.identify_embedding(vectors[15])
    assert not stranger.known and stranger.person is None and stranger.confidence == 0.0
    as_dict = result.to_dict()
    assert as_dict["known"] and as_dict["person"]["name"] == "P4" and "uncalibrated" in as_dict["method"]


def test_a_second_store_sees_changes_made_by_the_first(data_dir, db_url) -> None:
    vectors = random_embeddings(3)
    with Store(data_dir, db_url, model_id=TEST_MODEL) as first, Store(data_dir, db_url, model_id=TEST_MODEL) as second:
        ada = first.enroll_embeddings("Ada", vectors[:1])
        assert second.identify_embedding(vectors[0]).candidates[0].person_id == ada.id
        bob = first.enroll_embeddings("Bob", vectors[1:2])
        assert second.identify_embedding(vectors[1]).candidates[0].person_id == bob.id
        first.delete_person(bob.id)
        assert [c.person_id for c in second.identify_embedding(vectors[1]).candidates] == [ada.id]
        first.update_person(ada.id, name="Ada L")
        assert second.identify_embedding(vectors[0]).candidates[0].name == "Ada L"


def test_events_idempotency_and_filters(store: Store) -> None:
    ada = store.enroll_embeddings("Ada", random_embeddings(1))
    first = store.record_event(person_id=ada.id, source="door", idempotency_key="k1", distance=0.2, track_id="t1")
    again = store.record_event(person_id=ada.id, source="door", idempotency_key="k1", distance=0.9)
    assert again.id == first.id and again.distance == 0.2
    store.record_event(person_id=None, source="yard", box=[1, 2, 3, 4])
    assert len(store.list_events()) == 2
    assert [e.source for e in store.list_events(unknown_only=True)] == ["yard"]
    assert [e.source for e in store.list_events(person="Ada")] == ["door"]
    assert [e.source for e in store.list_events(source="yard")] == ["yard"]
    assert store.list_events()[0].time >= store.list_events()[1].time
    assert store.delete_events([first.id]) == 1
    assert len(store.list_events()) == 1


def test_stats_and_check(store: Store) -> None:
    store.enroll_embeddings("Ada", random_embeddings(2))
    stats = store.stats()
    assert stats["people"] == 1 and stats["faces_by_model"] == {TEST_MODEL: 2}
    report = store.check()
    assert report["ok"] and report["people"] == 1 and report["faces"] == 2

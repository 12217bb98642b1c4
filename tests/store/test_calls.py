"""The calls the rest of faceid reads the store through (events, thumbnails, gallery rows, face photos), the
one-transaction enrollment from an event, and the one database per URL that the store, the accounts and the
audit log share. Both backends."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceid.errors import BadInputError, NotFoundError
from faceid.store import Database, PreparedFace, Store, open_database
from faceid.store.accounts import Accounts
from faceid.store.audit import AuditLog
from faceid.store.config import resolve_database_url
from faceid.store.types import utcnow

from .helpers import PNG_1PX, TEST_MODEL, random_embeddings, table_counts


def _png(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(out, format="PNG")
    return out.getvalue()


def _face(seed: int, image: bytes | None = None) -> PreparedFace:
    return PreparedFace(
        embedding=random_embeddings(1, seed)[0],
        model_id=TEST_MODEL,
        image=image,
        image_type="png" if image is not None else None,
        box=[1.0, 1.0, 6.0, 6.0],
        landmarks=[[2.0, 2.0], [5.0, 2.0]],
    )


def test_event_lookups(store: Store) -> None:
    ada = store.enroll_embeddings("Ada", random_embeddings(1, 1), TEST_MODEL)
    assert store.last_event_id() == 0 and store.events_after(0) == []
    earlier = utcnow() - timedelta(days=2)
    first = store.record_event(person_id=None, source="door", time=earlier, idempotency_key="k1")
    second = store.record_event(person_id=ada.id, source="yard")
    third = store.record_event(person_id=None, source="yard")
    assert store.get_event(second.id) == second
    with pytest.raises(NotFoundError):
        store.get_event(third.id + 100)
    assert store.event_by_key("k1") == first and store.event_by_key("nope") is None
    assert [e.id for e in store.events_after(first.id)] == [second.id, third.id]
    assert [e.id for e in store.events_after(0, limit=1)] == [first.id]
    assert store.last_event_id() == third.id
    assert store.last_event_id(unknown_only=True) == third.id
    assert store.count_events() == 3
    assert store.count_events(unknown_only=True) == 2
    assert store.count_events(unknown_only=True, since=utcnow() - timedelta(days=1)) == 1
    assert store.cameras() == ["door", "yard"]


def test_people_faces_and_gallery_rows(store: Store) -> None:
    version = store.gallery_version()
    ada = store.enroll_prepared("Ada", [_face(1), _face(2, _png(10)), _face(3, _png(20))])
    bob = store.enroll_embeddings("Bob", random_embeddings(1, 4), TEST_MODEL)
    other = store.enroll_embeddings("Cy", random_embeddings(2, 5), "other-model")
    assert store.gallery_version() > version
    assert store.person_names([bob.id, None, ada.id, 999_999]) == {ada.id: "Ada", bob.id: "Bob"}
    assert store.person_names([]) == {}

    faces = {f.id: f for f in store.faces(ada.id)}
    ada_ids = sorted(faces)
    first = store.first_faces([ada.id, bob.id])
    assert list(first) == [ada.id]  # Bob has no stored photo
    assert first[ada.id] == (ada_ids[1], faces[ada_ids[1]].image_sha256)
    assert first[ada.id].face_id == ada_ids[1]

    gallery = store.gallery_faces(TEST_MODEL)
    assert gallery.model_id == TEST_MODEL and gallery.version == store.gallery_version()
    assert len(gallery) == 4 and list(gallery.face_ids) == sorted(gallery.face_ids)
    assert list(gallery.person_ids) == [ada.id, ada.id, ada.id, bob.id]
    assert list(gallery.has_image) == [False, True, True, False]
    assert gallery.embeddings.shape == (4, 128) and gallery.embeddings.dtype == np.float32
    np.testing.assert_allclose(gallery.embeddings[0], random_embeddings(1, 1)[0], atol=1e-6)
    assert store.gallery_faces("other-model").embeddings.shape == (2, 128)
    assert len(store.gallery_faces("no-such-model")) == 0
    assert store.faces_by_model() == {TEST_MODEL: 4, "other-model": 2}

    images = store.face_images()
    assert [i.face_id for i in images] == sorted(i.face_id for i in images) and len(images) == 6
    chosen = store.face_images([ada_ids[2], 999_999, ada_ids[0]])
    assert [i.face_id for i in chosen] == [ada_ids[0], ada_ids[2]]
    photo = chosen[1]
    assert (photo.person_id, photo.person_name, photo.image_type) == (ada.id, "Ada", "png")
    assert photo.image_sha256 == faces[ada_ids[2]].image_sha256 and photo.landmarks == [[2.0, 2.0], [5.0, 2.0]]
    assert chosen[0].image_sha256 is None and other.id not in {i.person_id for i in chosen}


def test_enroll_from_event_is_one_change(store: Store) -> None:
    event = store.record_event(person_id=None, source="door", snapshot=PNG_1PX, box=[0, 0, 1, 1])
    person, updated = store.enroll_from_event(event.id, "Ada", _face(1, PNG_1PX), notes="at the door")
    assert person.name == "Ada" and person.face_count == 1 and person.notes == "at the door"
    assert updated.id == event.id and updated.person_id == person.id
    assert store.get_event(event.id).person_id == person.id
    assert store.identify_embedding(random_embeddings(1, 1)[0]).person.person_id == person.id  # type: ignore[union-attr]
    # An event already of someone stays theirs; the new person is enrolled all the same.
    known = store.record_event(person_id=person.id, source="door")
    other, unchanged = store.enroll_from_event(known.id, "Bob", _face(2))
    assert unchanged.person_id == person.id and other.face_count == 1
    assert store.check()["ok"]


def _state(store: Store, event_id: int) -> tuple[object, ...]:
    return (
        table_counts(store),
        store.get_event(event_id),
        store.gallery_version(),
        sorted(p.name for _, p in store.files.all_files()),
    )


def test_a_failure_between_the_two_steps_leaves_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The person and their face are written, the event is attributed, then the transaction fails before it
    commits: no person, no face, no image file, the event still unknown, the gallery version unmoved."""
    store.enroll_embeddings("Someone", random_embeddings(1, 9), TEST_MODEL)
    event = store.record_event(person_id=None, source="door", snapshot=PNG_1PX, box=[0, 0, 1, 1])
    before = _state(store, event.id)
    attribute = Store._attribute_event
    seen: list[int | None] = []

    def attribute_then_fail(self: Store, session: object, event_id: int, person_id: int) -> object:
        record = attribute(self, session, event_id, person_id)  # type: ignore[arg-type]
        seen.append(record.person_id)
        raise RuntimeError("injected failure after the event was attributed")

    monkeypatch.setattr(Store, "_attribute_event", attribute_then_fail)
    new_photo = _png(200)  # a photo the store does not have yet: it is written, then must go again
    with pytest.raises(RuntimeError, match="injected"):
        store.enroll_from_event(event.id, "Ada", _face(1, new_photo))
    assert seen and seen[0] is not None  # both steps had happened inside the transaction
    assert _state(store, event.id) == before
    assert store.get_event(event.id).person_id is None
    assert store.find_people("Ada") == []
    report = store.check()
    assert report["ok"] and not report["pending_journals"] and not report["orphan_images"]
    assert not any(store.files.tmp.iterdir())
    monkeypatch.undo()
    # The name is still free and the same enrollment now goes through.
    person, updated = store.enroll_from_event(event.id, "Ada", _face(1, new_photo))
    assert updated.person_id == person.id and store.check()["ok"]


def test_enroll_from_a_missing_event_enrolls_nobody(store: Store) -> None:
    event = store.record_event(person_id=None, source="door")
    before = table_counts(store)
    with pytest.raises(NotFoundError):
        store.enroll_from_event(event.id + 1, "Ada", _face(1, _png(30)))
    assert table_counts(store) == before and store.check()["ok"] and store.check()["images"] == 0
    with pytest.raises(BadInputError):
        store.enroll_from_event(event.id, "  ", _face(1))
    assert table_counts(store) == before


def test_one_database_per_url(data_dir: Path, db_url: str | None) -> None:
    url = resolve_database_url(db_url, data_dir)
    database = open_database(url)
    assert open_database(url.render_as_string(hide_password=False)) is database
    assert open_database(db_url or str(data_dir / "faceid.sqlite3")) is database  # as the --db option gives it
    with Store(data_dir, db_url, model_id=TEST_MODEL) as store:
        assert store.database is database and store.engine is database.engine and store.url == url
        accounts, audit = Accounts(store.database), AuditLog(store.database)
        accounts.create_user("alice", "a-long-password", "admin")
        audit.record("user.create", actor="alice", actor_type="user")
        with Store(data_dir, database=database, model_id=TEST_MODEL) as again:
            assert again.database is database
            again.enroll_embeddings("Ada", random_embeddings(1, 1), TEST_MODEL)
        # One owner closing gives back the pooled connections; the others carry on.
        assert store.count_people() == 1 and database.ping()
    assert accounts.find_user("alice") is not None and [e.action for e in audit.entries()] == ["user.create"]
    with pytest.raises(BadInputError):
        Store(data_dir, db_url or "elsewhere.sqlite3", database=database)
    assert isinstance(database, Database) and database.backend in ("sqlite", "postgresql")
    other = open_database(resolve_database_url(None, data_dir / "other"))
    assert other is not database

"""Ids are never reused: a person, face or event id that a monitor or an integration holds keeps its meaning
after a delete, on both backends, and on a store made before the ids were protected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from faceid.store import Store, open_store
from faceid.store.accounts import Accounts
from faceid.store.config import resolve_database_url
from faceid.store.database import _alembic_config, create_store_engine, migration_connection

from .helpers import PNG_1PX, TEST_MODEL, random_embeddings


def _delete_newest_and_add_again(store: Store) -> None:
    first = store.enroll_embeddings("First", random_embeddings(1, seed=1))
    second = store.enroll_embeddings("Second", random_embeddings(2, seed=2))
    event = store.record_event(person_id=None, source="cam", snapshot=PNG_1PX)
    second_faces = [f.id for f in store.faces(second.id)]
    store.delete_person(second.id)  # the newest person and faces: the ids SQLite would hand out again
    store.delete_events([event.id])
    third = store.enroll_embeddings("Third", random_embeddings(1, seed=3))
    again = store.record_event(person_id=None, source="cam", snapshot=PNG_1PX)
    assert third.id not in (first.id, second.id)
    assert not {f.id for f in store.faces(third.id)} & set(second_faces)
    assert again.id != event.id


@pytest.fixture
def id_store(data_dir: Path, db_url: str | None) -> Iterator[Store]:
    with open_store(data_dir, db_url, index="exact", model_id=TEST_MODEL) as opened:
        yield opened


def test_ids_are_never_reused_after_a_delete(id_store: Store) -> None:
    _delete_newest_and_add_again(id_store)


def test_user_and_key_ids_are_never_reused(id_store: Store) -> None:
    store = id_store
    accounts = Accounts(store.database)
    accounts.create_user("keeper", "password-1234", "viewer")
    gone = accounts.create_user("gone", "password-1234", "viewer")
    accounts.delete_user(gone.id)
    assert accounts.create_user("later", "password-1234", "viewer").id != gone.id


def test_a_store_made_before_the_fix_is_migrated_with_its_data(data_dir: Path, db_url: str | None) -> None:
    """The migration rebuilds SQLite's tables without losing a row or a link between them."""
    with open_store(data_dir, db_url, index="exact", model_id=TEST_MODEL) as store:
        kept = store.enroll_embeddings("Kept", random_embeddings(3, seed=4))
        store.record_event(person_id=kept.id, source="cam", snapshot=PNG_1PX)
        store.record_event(person_id=None, source="cam")
        face_ids = [f.id for f in store.faces(kept.id)]
    engine = create_store_engine(resolve_database_url(db_url, data_dir))
    with migration_connection(engine) as connection:  # back to the tables as they were before
        command.downgrade(_alembic_config(connection), "0004")
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            tables = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'people'").scalar()
            assert "AUTOINCREMENT" not in tables
    engine.dispose()
    with open_store(data_dir, db_url, index="exact", model_id=TEST_MODEL) as store:
        assert [f.id for f in store.faces(kept.id)] == face_ids
        assert len(store.list_events(limit=10)) == 2
        assert [e.person_id for e in store.list_events(person=kept.id)] == [kept.id]
        with store.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        _delete_newest_and_add_again(store)
        store.delete_person(kept.id)  # the cascade still works after the rebuild
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM faces")).scalar_one() == 2  # First and Third

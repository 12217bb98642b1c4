"""Schema migrations run on open, ship inside the package, and refuse a database from a newer faceid."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from faceid.errors import BadInputError, StoreError
from faceid.store import Store
from faceid.store.config import resolve_database_url
from faceid.store.database import MIGRATIONS_DIR, head_revision, schema_head


def test_schema_head_constant_names_the_newest_migration() -> None:
    assert head_revision() == schema_head()
    assert (MIGRATIONS_DIR / "env.py").is_file() and any((MIGRATIONS_DIR / "versions").glob("0001_*.py"))


def test_open_creates_the_schema_once(data_dir: Path, db_url: str | None, backend: str) -> None:
    with Store(data_dir, db_url, model_id="m") as store:
        tables = set(inspect(store.engine).get_table_names())
        assert {"people", "faces", "events", "model_versions", "store_state", "face_log"} <= tables
        if backend == "postgresql":
            with store.engine.connect() as connection:
                # Descriptors of any length since 0006: HNSW indexes are per model (faceid.store.index).
                indexes = connection.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'faces'"))
                assert "ix_faces_embedding_hnsw" not in {row[0] for row in indexes}
                kind = connection.execute(
                    text(
                        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'faces'::regclass "
                        "AND attname = 'embedding'"
                    )
                ).scalar()
                assert kind == "vector"
        else:
            with store.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        store.enroll_embeddings("Kept", [[0.1] * 128])
    with Store(data_dir, db_url, model_id="m") as again:  # a second open migrates nothing and keeps the data
        assert [p.name for p in again.list_people()] == ["Kept"]


def test_newer_schema_is_refused(data_dir: Path, db_url: str | None) -> None:
    Store(data_dir, db_url, model_id="m").close()
    with Store(data_dir, db_url, model_id="m") as store, store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer"):
        Store(data_dir, db_url, model_id="m")


def test_database_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEID_DB", raising=False)
    monkeypatch.delenv("FACEID_DATABASE_URL", raising=False)
    assert resolve_database_url(None, tmp_path).database == str(tmp_path / "faceid.sqlite3")
    assert resolve_database_url("postgresql://u@h/db", tmp_path).drivername == "postgresql+psycopg"
    assert resolve_database_url("postgres://u@h/db", tmp_path).drivername == "postgresql+psycopg"
    assert resolve_database_url(str(tmp_path / "x.db"), tmp_path).database == str(tmp_path / "x.db")
    monkeypatch.setenv("FACEID_DB", "postgresql://env@h/db")
    assert resolve_database_url(None, tmp_path).username == "env"
    with pytest.raises(BadInputError):
        resolve_database_url("mysql://u@h/db", tmp_path)


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        Store(tmp_path, "postgresql://nobody@/nowhere?host=/nonexistent-socket-dir")

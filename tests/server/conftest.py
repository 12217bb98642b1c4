"""Server fixtures: an app on a fresh store with one logged-in client per role, and API keys. A real PostgreSQL
(``pg_url``), real server processes and the browser come from the shared ``support`` package."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from faceid.server import ServerConfig, create_app

# Kept importable from here: the server tests' password, and their real server processes.
from support.server_process import ADMIN_PASSWORD, ServerProcess, free_port, http_login, serve, serve_many  # noqa: F401

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

"""Integration fixtures: a real mosquitto broker per test, a recorder subscribed as Home Assistant would be,
and a server app (TestClient) that publishes to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# The Hamilton acceptance test uses the monitor tests' gallery: three people enrolled, calibrated on faces-dev.
from monitor.conftest import enrolled_store_dir  # noqa: F401

from .broker import Mosquitto, Recorder

ADMIN_PASSWORD = "admin-password-1"
PUBLIC_URL = "http://faceid.test:8000"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    folder = tmp_path / "broker"
    folder.mkdir()
    server = Mosquitto(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def recorder(broker: Mosquitto) -> Iterator[Recorder]:
    subscriber = Recorder(broker.port, ["faceid/#", "homeassistant/#"])
    try:
        yield subscriber
    finally:
        subscriber.close()


@contextlib.contextmanager
def server_app(data_dir: Path, analyzer: Any, mqtt: str | None, **settings: Any) -> Iterator[Any]:
    """The app on ``data_dir`` with saved integration settings, its lifespan running; yields the TestClient
    logged in as admin (with its CSRF header set)."""
    from fastapi.testclient import TestClient

    from faceid.integrations.settings import IntegrationSettings, integrations_dir
    from faceid.server import ServerConfig, create_app

    IntegrationSettings(**settings).save(integrations_dir(data_dir))
    config = ServerConfig(
        data_dir=data_dir, admin_password=ADMIN_PASSWORD, warm_up=False, mqtt=mqtt, public_url=PUBLIC_URL
    )
    app = create_app(config, analyzer=analyzer)
    with TestClient(app) as client:
        answer = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert answer.status_code == 200, answer.text
        client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
        yield client


def ingest_key(client: Any) -> str:
    services = client.app.state.services
    return str(services.accounts.create_key("camera", ["ingest"]).key)


def enroll(client: Any, name: str, seed: int) -> int:
    """A person from a made-up descriptor (no photo needed to post events about them)."""
    store = client.app.state.services.store
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=128).astype(np.float32)
    return int(store.enroll_embeddings(name, vector / np.linalg.norm(vector), model_id="test-model").id)


def post_event(client: Any, key: str, **fields: Any) -> dict[str, Any]:
    data = {k: str(v) for k, v in fields.items() if v is not None and k != "idempotency_key"}
    headers = {"Authorization": f"Bearer {key}"}
    if fields.get("idempotency_key"):
        headers["Idempotency-Key"] = fields["idempotency_key"]
    answer = client.post("/api/v1/events", data=data, headers=headers)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())

"""The Inbox in a real browser against `faceid serve`: a visitor appears live, is named (its past events take the
name), a wrongly named event is corrected, the person is forgotten and every trace of them is gone (rows and
files checked in the server's own database and image folder)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from faceid.store.versions import VersionedStore
from support.server_process import ServerProcess, serve

from .test_e2e import log_in, shot

pytestmark = [pytest.mark.slow]

ADA, OTHER = "Abdullah_Gul", "Adrien_Brody"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serve(tmp_path_factory.mktemp("e2e-inbox") / "data") as running:
        yield running


def server_data_dir(server: ServerProcess) -> Path:
    return server.log_path.parent / "data"  # conftest.serve keeps the log beside the data folder


def post_event(server: ServerProcess, key: str, analyzer: Any, path: Path, source: str, **extra: str) -> int:
    """What a monitor sends: the frame, the face's box and (for an unknown face) its descriptor."""
    data = path.read_bytes()
    face = analyzer.analyze(data)[0]
    fields = {
        "source": source,
        "box": json.dumps([float(v) for v in np.asarray(face.box).reshape(-1)]),
        "metadata": json.dumps({"template": [float(v) for v in face.embedding], "quality": {"score": 0.9}}),
        **extra,
    }
    response = httpx.post(
        f"{server.url}/api/v1/events",
        data=fields,
        files={"snapshot": (path.name, data, "image/jpeg")},
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"{source}-{path.name}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The analyzer of a store like the server's (its built-in model): what a monitor describes faces with."""
    with VersionedStore(tmp_path_factory.mktemp("camera")) as store:
        return store.analyzer


def test_the_inbox_journey(page: Any, server: ServerProcess, faces_dev_dir: Path, camera: Any) -> None:
    analyzer = camera
    log_in(page)
    key = page.evaluate(
        """async () => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch('/api/v1/api-keys', {method: 'POST', headers: {'Content-Type': 'application/json',
                'X-CSRF-Token': token}, body: JSON.stringify({name: 'inbox camera', scopes: ['ingest']})});
            return (await r.json()).key;
        }"""
    )
    ada_photos = sorted((faces_dev_dir / ADA).glob("*.jpg"))
    other_photos = sorted((faces_dev_dir / OTHER).glob("*.jpg"))

    # A visitor appears live.
    page.goto("/inbox")
    page.wait_for_selector("#live-status.on")
    page.evaluate("window.__notReloaded = true")
    extra = {"model_id": analyzer.model_id}  # the server's built-in model, as the test's analyzer
    ada_events = [
        post_event(server, key, analyzer, p, cam, **extra)
        for p, cam in zip(ada_photos[:3], ("gate", "garage", "gate"), strict=True)
    ]
    page.wait_for_selector(".visitor-card", timeout=20_000)
    page.locator(".visitor-card", has_text="seen 3 times").wait_for(timeout=20_000)
    assert page.evaluate("window.__notReloaded") is True
    assert "garage and gate" in page.inner_text("#visitor-list")
    shot(page, "inbox")

    # Named in one click: its past events take the name.
    page.locator(".visitor-card", has_text="seen 3 times").click()
    page.wait_for_selector("#visitor-panel:not([hidden]) #visitor-events li")
    page.fill("#name-input", "Abdullah Gul")
    page.click("#name-submit")
    page.wait_for_selector(".flash.ok")
    assert "3 event(s) named" in page.inner_text("#flash")
    page.locator("#visitor-events .who.known", has_text="Abdullah Gul").first.wait_for()
    assert page.locator("#visitor-events .who.known").count() == 3
    shot(page, "inbox-named")

    # A wrongly named event (a monitor named someone else Abdullah Gul): found by searching his history, corrected.
    people = page.evaluate("async () => (await (await fetch('/api/v1/people?limit=50')).json()).items")
    ada_id = next(p["id"] for p in people if p["name"] == "Abdullah Gul")
    wrong = post_event(server, key, analyzer, other_photos[0], "door", person_id=str(ada_id), **extra)
    page.select_option("#search-person", str(ada_id))
    page.click("#search-submit")
    row = page.wait_for_selector(f'#search-results [data-event-id="{wrong}"]')
    row.query_selector("button.not-person").click()
    page.wait_for_selector(".flash")
    assert "is not Abdullah Gul" in page.inner_text("#flash")
    corrected = page.evaluate(f"async () => (await (await fetch('/api/v1/events/{wrong}')).json()).person_id")
    assert corrected is None
    negatives = page.evaluate(f"async () => (await (await fetch('/api/v1/people/{ada_id}/negatives')).json())")
    assert len(negatives) == 1

    # Forgotten: the receipt counts, and nothing of him is left.
    page.select_option("#forget-person", str(ada_id))
    page.click("#forget-submit")
    receipt_text = page.wait_for_selector("#forget-receipt:not([hidden])").inner_text()
    assert "Erasure receipt" in receipt_text and "Abdullah" not in receipt_text
    engine = create_engine(f"sqlite:///{server_data_dir(server)}/faceid.sqlite3")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM people")).scalar_one() == 0
        assert connection.execute(text("SELECT count(*) FROM faces")).scalar_one() == 0
        assert connection.execute(text("SELECT count(*) FROM face_negatives")).scalar_one() == 0
        assert connection.execute(text("SELECT count(*) FROM visitors WHERE person_id IS NOT NULL")).scalar_one() == 0
        left = {r[0] for r in connection.execute(text("SELECT id FROM events"))}
        assert not left & set(ada_events)
        members = {r[0] for r in connection.execute(text("SELECT event_id FROM visitor_members"))}
        assert not members & set(ada_events)
        receipt = connection.execute(text("SELECT details FROM audit_log WHERE action = 'person.forget'")).scalar_one()
        assert "Abdullah" not in str(receipt) and "Gul" not in str(receipt)
    engine.dispose()
    images = server_data_dir(server) / "images"
    for photo in ada_photos[:3]:
        sha = hashlib.sha256(photo.read_bytes()).hexdigest()
        assert not list(images.glob(f"??/??/{sha}.*")), f"{photo.name} is still on disk"
    # The corrected event (someone else) stays, unknown, back in the inbox.
    assert wrong in left
    assert re.search(r"Visitor \d+", page.inner_text("#visitor-list"))

"""Webhooks against a real HTTP receiver: retries with backoff, signatures, the delivery log, dead letters,
the "send test" button, filters."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faceid.integrations.webhooks import TIMEOUT_S, RetryPolicy, Webhooks, verify_signature

from .conftest import enroll, ingest_key, post_event, server_app
from .receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


def wait(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


def test_fails_three_times_then_delivered_and_signed(tmp_path: Path, receiver: Receiver) -> None:
    receiver.fail_first = 3
    hooks = Webhooks(tmp_path / "webhooks.sqlite3", RetryPolicy(base=0.1, max_attempts=6))
    hooks.start()
    try:
        subscription = hooks.create(receiver.url, name="doorbell")
        payload = {"idempotency_key": "k-1", "decision": "unknown", "camera": "door", "person_id": None}
        (delivery_id,) = hooks.submit(payload)
        assert hooks.submit(payload) == [delivery_id]  # once per event and subscription
        wait(lambda: hooks.delivery(delivery_id)["status"] == "delivered")
    finally:
        hooks.stop()
    delivery = hooks.delivery(delivery_id)
    assert delivery["attempts"] == 4 and [a["status"] for a in delivery["log"]] == [500, 500, 500, 200]
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39  # exponential backoff: 0.1, 0.2, 0.4 s
    assert len(receiver.succeeded()) == 1
    got = receiver.succeeded()[0]
    assert json.loads(got.body) == payload
    assert got.headers["x-faceid-event"] == "event" and got.headers["x-faceid-delivery"] == str(delivery_id)
    secret, stamp, signature = (
        subscription["secret"],
        got.headers["x-faceid-timestamp"],
        got.headers["x-faceid-signature"],
    )
    # The documented recipe accepts the delivery as sent...
    assert verify_signature(secret, got.body, stamp, signature)
    # ...and refuses a tampered body, a forged timestamp, another secret, and a replay after the window.
    assert not verify_signature(secret, got.body.replace(b"door", b"gate"), stamp, signature)
    assert not verify_signature(secret, got.body, str(int(stamp) + 1), signature)
    assert not verify_signature("whsec_other", got.body, stamp, signature)
    assert not verify_signature(secret, got.body, stamp, signature, now=int(stamp) + 301)
    assert verify_signature(secret, got.body, stamp, signature, now=int(stamp) + 299)
    hooks.close()


def test_filters(tmp_path: Path, receiver: Receiver) -> None:
    hooks = Webhooks(tmp_path / "webhooks.sqlite3")
    unknown_only = hooks.create(receiver.url, decisions=["unknown"])
    ada_at_door = hooks.create(receiver.url, person_id=7, camera="door")
    everything = hooks.create(receiver.url)
    disabled = hooks.create(receiver.url, enabled=False)
    events = {
        "stranger": {"decision": "unknown", "person_id": None, "camera": "door"},
        "ada-door": {"decision": "known", "person_id": 7, "camera": "door"},
        "ada-gate": {"decision": "known", "person_id": 7, "camera": "gate"},
        "split": {"decision": "ambiguous", "person_id": 7, "camera": "door"},
    }
    matched = {
        name: {s["id"] for s in hooks.subscriptions() if hooks.matches(s, event)} for name, event in events.items()
    }
    assert matched == {
        "stranger": {unknown_only["id"], everything["id"]},
        "ada-door": {ada_at_door["id"], everything["id"]},
        "ada-gate": {everything["id"]},
        "split": {ada_at_door["id"], everything["id"]},
    }
    assert disabled["id"] not in set().union(*matched.values())
    with pytest.raises(Exception, match="decision"):
        hooks.create(receiver.url, decisions=["maybe"])
    with pytest.raises(Exception, match="http"):
        hooks.create("ftp://example.org/hook")
    hooks.close()


def test_admin_api_dead_letters_retry_and_send_test(tmp_path: Path, analyzer: Any, receiver: Receiver) -> None:
    receiver.fail_first = 1000
    with server_app(tmp_path / "data", analyzer, None, webhook_retry_base=0.05, webhook_max_attempts=3) as client:
        created = client.post("/api/v1/webhooks", json={"url": receiver.url, "name": "alarm", "decisions": ["unknown"]})
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_") and hook["decisions"] == ["unknown"]
        assert client.post("/api/v1/webhooks", json={"url": "not a url"}).status_code == 422

        key = ingest_key(client)
        ada = enroll(client, "Ada Lovelace", 3)
        post_event(client, key, person_id=ada, source="door", idempotency_key="known-1")  # filtered out
        event = post_event(client, key, source="door", idempotency_key="unknown-1")

        dead = wait(lambda: client.get("/api/v1/webhooks/deliveries", params={"status": "dead"}).json())
        assert [d["event_key"] for d in dead] == ["unknown-1"]
        assert dead[0]["attempts"] == 3 and dead[0]["last_status"] == 500 and dead[0]["payload"]["id"] == event["id"]
        log = client.get(f"/api/v1/webhooks/deliveries/{dead[0]['id']}").json()["log"]
        assert [a["status"] for a in log] == [500, 500, 500]
        assert all(json.loads(r.body)["idempotency_key"] == "unknown-1" for r in receiver.requests)

        receiver.fail_first = 0  # the receiver is fixed: send the dead letter again
        receiver.requests.clear()
        assert client.post(f"/api/v1/webhooks/deliveries/{dead[0]['id']}/retry").status_code == 200
        wait(lambda: client.get(f"/api/v1/webhooks/deliveries/{dead[0]['id']}").json()["status"] == "delivered")
        assert client.get("/api/v1/webhooks/deliveries", params={"status": "dead"}).json() == []

        test = client.post(f"/api/v1/webhooks/{hook['id']}/test")
        assert test.status_code == 202
        wait(lambda: any(r.headers["x-faceid-event"] == "test" for r in receiver.succeeded()))
        sent = next(r for r in receiver.succeeded() if r.headers["x-faceid-event"] == "test")
        assert verify_signature(
            hook["secret"], sent.body, sent.headers["x-faceid-timestamp"], sent.headers["x-faceid-signature"]
        )

        rotated = client.patch(f"/api/v1/webhooks/{hook['id']}", json={"rotate_secret": True, "enabled": False}).json()
        assert rotated["secret"] != hook["secret"] and not rotated["enabled"]
        assert client.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 200
        assert client.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404
        assert client.get("/api/v1/integrations").json()["webhooks"]["subscriptions"] == 0


def test_a_receiver_that_never_answers_holds_up_no_other(tmp_path: Path, receiver: Receiver) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are queued by the kernel, never answered
    hooks = Webhooks(tmp_path / "webhooks.sqlite3", RetryPolicy(base=60, max_attempts=2))
    hooks.start()
    try:
        hooks.create(f"http://127.0.0.1:{silent.getsockname()[1]}/hook", name="silent")
        hooks.create(receiver.url, name="fine")
        for n in range(3):
            hooks.submit({"idempotency_key": f"k-{n}", "decision": "unknown"})
        # All three arrive before the silent receiver's first 10 s timeout could have ended: they did not wait.
        try:
            wait(lambda: len(receiver.succeeded()) == 3, timeout=0.9 * TIMEOUT_S)
        except AssertionError:
            seen = [(r.status, r.headers.get("x-faceid-delivery")) for r in receiver.requests]
            raise AssertionError(f"received {seen}; deliveries {hooks.deliveries()}") from None
    finally:
        hooks.close()
        silent.close()

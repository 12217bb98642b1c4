"""MQTT publishing against a real mosquitto broker: the events, the state topics, Home Assistant discovery,
the availability topic, and the durable queue while the broker is away."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from faceid.errors import BadInputError
from faceid.integrations import IntegrationSettings, MqttTarget
from faceid.integrations.queue import DurableQueue
from faceid.integrations.settings import integrations_dir

from .broker import Mosquitto, Recorder
from .conftest import PUBLIC_URL, enroll, ingest_key, post_event, server_app
from .ha_schema import check_config, is_timestamp, render_state


def test_broker_urls() -> None:
    target = MqttTarget.parse("mqtt://ha:s3cret@broker.lan:1884/home/faces?discovery_prefix=ha")
    assert (target.host, target.port, target.username, target.password) == ("broker.lan", 1884, "ha", "s3cret")
    assert (target.prefix, target.discovery_prefix, target.tls) == ("home/faces", "ha", False)
    assert "s3cret" not in target.redacted() and "s3cret" not in repr(target)
    assert MqttTarget.parse("mqtts://broker").port == 8883
    assert MqttTarget.parse("mqtt://broker").prefix == "faceid"
    for bad in ("http://broker", "mqtt://", "mqtt://broker:99999", "mqtt://broker/a+b", "mqtt://broker/a/%23"):
        with pytest.raises(BadInputError):
            MqttTarget.parse(bad)


def configs(recorder: Recorder) -> dict[str, tuple[str, dict[str, Any]]]:
    out = {}
    for topic in sorted(recorder.topics()):
        if topic.startswith("homeassistant/"):
            message = recorder.last(topic)
            assert message is not None and message.retain
            out[topic] = check_config(topic, message.payload)
    return out


def test_events_state_topics_and_discovery(
    tmp_path: Path, analyzer: Any, broker: Mosquitto, recorder: Recorder
) -> None:
    with server_app(tmp_path / "data", analyzer, broker.url, presence_timeout=2, unknown_timeout=2) as client:
        key = ingest_key(client)
        ada = enroll(client, "Ada Lovelace", 1)
        recorder.wait_for(lambda: recorder.last("faceid/status"), what="online")
        assert recorder.last("faceid/status").text == "online"  # type: ignore[union-attr]

        known = post_event(client, key, person_id=ada, source="Front door", confidence=0.93, idempotency_key="k-1")
        unknown = post_event(client, key, source="Front door", idempotency_key="k-2")
        events = recorder.wait_for(lambda: len(recorder.on("faceid/events")) >= 2 and recorder.on("faceid/events"))
        payloads = [m.json() for m in events]
        assert [p["idempotency_key"] for p in payloads] == ["k-1", "k-2"]
        assert not any(m.retain for m in events)
        first = payloads[0]
        assert first["name"] == "Ada Lovelace" and first["camera"] == "Front door" and first["decision"] == "known"
        assert first["event_url"] == f"{PUBLIC_URL}/api/v1/events/{known['id']}"
        assert payloads[1]["decision"] == "unknown" and payloads[1]["id"] == unknown["id"]

        # Home Assistant's view, as it (re)starts: retained discovery configs, valid, whose retained state
        # topics hold the event.
        ha = Recorder(broker.port, ["homeassistant/#", "faceid/person/#", "faceid/camera/#"], client_id="ha")
        try:
            ha.wait_for(lambda: len([t for t in ha.topics() if t.startswith("homeassistant/")]) >= 4, what="configs")
            time.sleep(0.3)
            found = configs(ha)
            assert all(m.retain for m in ha.messages)
        finally:
            ha.close()
        by_id = {config["unique_id"]: (component, config) for component, config in found.values()}
        assert set(by_id) >= {
            f"faceid_faceid_person_{ada}_last_seen",
            f"faceid_faceid_person_{ada}_presence",
            "faceid_faceid_camera_front_door_last_face",
            "faceid_faceid_camera_front_door_unknown_face",
        }
        _, seen = by_id[f"faceid_faceid_person_{ada}_last_seen"]
        state = recorder.last(seen["state_topic"])
        assert state is not None
        assert is_timestamp(render_state(seen, state.payload))
        attributes = json.loads(recorder.last(seen["json_attributes_topic"]).payload)  # type: ignore[union-attr]
        assert attributes["camera"] == "Front door" and attributes["confidence"] == pytest.approx(0.93)
        assert attributes["event_url"].startswith(PUBLIC_URL) and attributes["id"] == known["id"]
        _, face = by_id["faceid_faceid_camera_front_door_last_face"]
        assert render_state(face, recorder.last(face["state_topic"]).payload) == "unknown"  # type: ignore[union-attr]

        # The binary sensors go on with the sighting and off after their timeout.
        _, presence = by_id[f"faceid_faceid_person_{ada}_presence"]
        _, stranger = by_id["faceid_faceid_camera_front_door_unknown_face"]
        for config in (presence, stranger):
            recorder.wait_for(
                lambda c=config: (
                    [m.text for m in recorder.on(c["state_topic"])][-1:] == ["OFF"]
                    and "ON" in [m.text for m in recorder.on(c["state_topic"])]
                ),
                timeout=10,
                what=f"{config['state_topic']} on then off",
            )
        status = client.get("/api/v1/integrations").json()
        assert status["mqtt"]["connected"] and status["mqtt"]["queued"] == 0
    # A clean stop says offline (the last will says it after a crash).
    recorder.wait_for(lambda: recorder.last("faceid/status").text == "offline", what="offline")  # type: ignore[union-attr]


def test_events_wait_for_the_broker(tmp_path: Path, analyzer: Any, broker: Mosquitto, recorder: Recorder) -> None:
    with server_app(tmp_path / "data", analyzer, broker.url) as client:
        key = ingest_key(client)
        recorder.wait_for(lambda: recorder.last("faceid/status"), what="online")
        broker.stop()
        for n in range(20):
            post_event(client, key, source="gate", idempotency_key=f"down-{n}")
        status = client.get("/api/v1/integrations").json()["mqtt"]
        assert not status["connected"] and status["queued"] >= 20
        broker.start()
        recorder.wait_for(lambda: len({m.json()["idempotency_key"] for m in recorder.on("faceid/events")}) == 20, 60)
        keys = [m.json()["idempotency_key"] for m in recorder.on("faceid/events")]
        assert keys == [f"down-{n}" for n in range(20)]  # in order, once each


def test_the_queue_survives_a_restart(tmp_path: Path, broker: Mosquitto) -> None:
    """Events queued while the broker is unreachable are sent by the next process that starts."""
    from faceid.integrations.mqtt import MqttPublisher

    path = tmp_path / "queue.sqlite3"
    unreachable = MqttTarget.parse(f"mqtt://127.0.0.1:{broker.port + 1 if broker.port < 65535 else 1}/faceid")
    settings = IntegrationSettings()
    queue = DurableQueue(path)
    publisher = MqttPublisher(unreachable, settings, queue)
    publisher.start()
    for n in range(5):
        assert publisher.submit({"idempotency_key": f"q-{n}", "camera": "gate", "known": False, "id": n})
    assert not publisher.submit({"idempotency_key": "q-0", "camera": "gate", "known": False, "id": 0})  # once
    publisher.stop(timeout=0)
    queue.close()

    recorder = Recorder(broker.port, ["faceid/events"], client_id="restart-recorder")
    try:
        queue = DurableQueue(path)
        assert len(queue) > 0
        publisher = MqttPublisher(MqttTarget.parse(broker.url), settings, queue)
        publisher.start()
        recorder.wait_for(lambda: len(recorder.on("faceid/events")) == 5, 20)
        assert [m.json()["idempotency_key"] for m in recorder.on("faceid/events")] == [f"q-{n}" for n in range(5)]
        recorder.wait_for(lambda: len(queue) == 0, 10, "the queue to empty")
        publisher.stop()
    finally:
        recorder.close()
        queue.close()


def test_the_queue_is_bounded(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "queue.sqlite3", max_rows=100)
    for n in range(150):
        queue.put([("faceid/events", {"n": n}, False)])
    assert len(queue) == 100 and queue.dropped == 50
    assert json.loads(queue.after(0, 1)[0].payload) == {"n": 50}  # the oldest went first
    queue.close()


def test_bad_settings_are_refused(tmp_path: Path, analyzer: Any) -> None:
    with server_app(tmp_path / "data", analyzer, None) as client:
        answer = client.put("/api/v1/integrations/mqtt", json={"mqtt_url": "http://nope"})
        assert answer.status_code == 422 and "mqtt://" in answer.json()["detail"]
        answer = client.put("/api/v1/integrations/mqtt", json={"presence_timeout": 0})
        assert answer.status_code == 422


def test_the_last_will_says_offline_when_the_server_dies(tmp_path: Path, broker: Mosquitto, recorder: Recorder) -> None:
    """``faceid serve --mqtt URL`` publishes; killed without a clean stop, the broker says ``offline`` for it."""
    from support.server_process import serve

    with serve(tmp_path / "data", None, "--mqtt", broker.url, "--no-warm-up") as server:
        recorder.wait_for(lambda: (m := recorder.last("faceid/status")) and m.text == "online", 30, "online")
        server.process.kill()  # no clean stop: only the broker can say it
        server.process.wait()
        recorder.wait_for(lambda: recorder.last("faceid/status").text == "offline", 10, "the last will")  # type: ignore[union-attr]
    saved = IntegrationSettings.load(integrations_dir(tmp_path / "data"))
    assert saved.mqtt_url == broker.url  # --mqtt is kept for the next start and shown on the admin page


def test_serve_refuses_a_bad_broker_url(tmp_path: Path) -> None:
    from faceid.cli import main

    assert main(["serve", "--mqtt", "ftp://broker", "--data-dir", str(tmp_path)]) == 2


def test_events_recorded_in_the_store_by_another_process_are_published(
    tmp_path: Path, analyzer: Any, broker: Mosquitto, recorder: Recorder
) -> None:
    """A standalone monitor or the Frigate bridge writes into the store; the server's change listener finds the
    event and publishes it like one posted over HTTP."""
    from faceid.store import Store

    data_dir = tmp_path / "data"
    with server_app(data_dir, analyzer, broker.url) as client:
        recorder.wait_for(lambda: recorder.last("faceid/status"), what="online")
        with Store(data_dir, model_id="test-model") as other:  # another writer on the same SQLite file
            other.record_event(person_id=None, source="garden", idempotency_key="standalone-1")
        message = recorder.wait_for(lambda: recorder.last("faceid/events"), what="the event")
        assert message.json()["idempotency_key"] == "standalone-1" and message.json()["camera"] == "garden"
        assert client.get("/api/v1/integrations").json()["mqtt"]["connected"]


def test_home_assistant_follows_enrollments_and_deletions(
    tmp_path: Path, analyzer: Any, broker: Mosquitto, recorder: Recorder
) -> None:
    def retained() -> dict[str, str]:
        """What Home Assistant would find on (re)starting: every retained message."""
        ha = Recorder(broker.port, ["homeassistant/#", "faceid/person/#"], client_id=f"ha-{time.monotonic_ns()}")
        try:
            time.sleep(1.0)
            return {m.topic: m.text for m in ha.messages}
        finally:
            ha.close()

    with server_app(tmp_path / "data", analyzer, broker.url) as client:
        client.app.state.integrations.mqtt.resync_seconds = 0.3
        key = ingest_key(client)
        ada = enroll(client, "Ada Lovelace", 1)
        post_event(client, key, person_id=ada, source="door", idempotency_key="ada-1")
        recorder.wait_for(lambda: recorder.on("faceid/events"), what="the event")
        cleo = enroll(client, "Cleo", 2)  # enrolled after the start, never seen yet
        cleo_config = f"homeassistant/sensor/faceid/person_{cleo}_last_seen/config"
        recorder.wait_for(lambda: recorder.last(cleo_config), what="Cleo's sensor")
        assert "Cleo last seen" in recorder.last(cleo_config).text  # type: ignore[union-attr]
        ada_config = f"homeassistant/sensor/faceid/person_{ada}_last_seen/config"
        before = retained()
        assert ada_config in before and f"faceid/person/{ada}/last_seen" in before and cleo_config in before

        assert client.delete(f"/api/v1/people/{ada}").status_code == 200
        recorder.wait_for(lambda: recorder.last(ada_config).payload == b"", what="Ada's sensor removed")  # type: ignore[union-attr]
        after = retained()
        assert ada_config not in after and f"faceid/person/{ada}/last_seen" not in after
        assert f"faceid/person/{ada}/presence" not in after
        assert f"homeassistant/binary_sensor/faceid/person_{ada}_presence/config" not in after
        assert cleo_config in after


def test_one_process_publishes_and_another_takes_over(tmp_path: Path, broker: Mosquitto, recorder: Recorder) -> None:
    """Two server processes on one data folder both see every event; one publishes it. When that one stops,
    the other takes over."""
    from faceid.integrations import Integrations
    from faceid.server.views import event_out
    from faceid.store import Store

    data_dir = tmp_path / "data"
    IntegrationSettings(mqtt_url=broker.url).save(integrations_dir(data_dir))
    with Store(data_dir, model_id="test-model") as store:
        first, second = Integrations(store), Integrations(store)
        first.start()
        second.start()
        try:
            assert first.leader and not second.leader
            event = json.loads(
                json.dumps(event_out(store.record_event(person_id=None, source="door", idempotency_key="e-1")))
            )
            first.on_event(event)
            second.on_event(event)
            recorder.wait_for(lambda: recorder.on("faceid/events"), what="the event")
            first.stop()
            recorder.wait_for(lambda: second.leader, 15, "the second process to take over")
            event = json.loads(
                json.dumps(event_out(store.record_event(person_id=None, source="door", idempotency_key="e-2")))
            )
            second.on_event(event)
            recorder.wait_for(lambda: len(recorder.on("faceid/events")) == 2, what="the second event")
            time.sleep(0.5)
            assert [m.json()["idempotency_key"] for m in recorder.on("faceid/events")] == ["e-1", "e-2"]
        finally:
            first.stop()
            second.stop()

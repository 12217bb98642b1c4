"""Acceptance: Home Assistant's view of the Hamilton clip. A real ``faceid serve`` publishes to a real broker;
``monitor`` runs the clip connected to it (Miranda enrolled, the store calibrated on faces-dev as the monitor
tests do); a subscriber reads what Home Assistant would."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from faceid.integrations.settings import IntegrationSettings, integrations_dir
from monitor.conftest import CAMERA, CLIP, api_key, copy_store  # the monitor tests' calibrated gallery
from support.server_process import running_server

from .broker import Mosquitto, Recorder
from .ha_schema import check_config, is_timestamp, render_state

MIRANDA = "Lin-Manuel Miranda"
TIMEOUT_S = 3.0


@pytest.mark.slow
def test_home_assistant_sees_the_hamilton_clip(
    tmp_path: Path,
    enrolled_store_dir: Path,
    media_dir: Path,
    broker: Mosquitto,
    recorder: Recorder,
) -> None:
    from faceid.monitor import Agent, AgentConfig

    data_dir = copy_store(enrolled_store_dir, tmp_path / "server")
    IntegrationSettings(
        mqtt_url=broker.url, public_url="http://faceid.test:8000", presence_timeout=TIMEOUT_S, unknown_timeout=TIMEOUT_S
    ).save(integrations_dir(data_dir))
    key = api_key(data_dir, ["read", "ingest"])
    with running_server(data_dir, tmp_path) as server:
        recorder.wait_for(lambda: (m := recorder.last("faceid/status")) and m.text == "online", 30, "online")
        events: list[Any] = []
        config = AgentConfig(
            source=str(media_dir / CLIP),
            camera=CAMERA,
            server=server.url,
            api_key=key,
            state_dir=tmp_path / "agent",
            drain_timeout=120,
        )
        Agent(config, on_event=events.append).run()
        miranda = [e for e in events if e.name == MIRANDA]
        assert miranda, f"the monitor named nobody Miranda: {[(e.name, e.key) for e in events]}"
        assert any(not e.known for e in events), "the clip's audience has unknown faces"
        person_id = miranda[-1].person_id

        # Every event reached the broker once, with its idempotency key.
        recorder.wait_for(lambda: len(recorder.on("faceid/events")) >= len(events), 30, "every event")
        published = [m.json()["idempotency_key"] for m in recorder.on("faceid/events")]
        assert sorted(published) == sorted(e.key for e in events)

        # Home Assistant (re)starting now: the retained discovery configs are valid...
        ha = Recorder(broker.port, ["homeassistant/#", "faceid/person/#", "faceid/camera/#"], client_id="ha")
        try:
            ha.wait_for(lambda: f"faceid/person/{person_id}/last_seen" in ha.topics(), 15, "Miranda's state")
            time.sleep(0.5)
            configs = {}
            for topic in sorted(t for t in ha.topics() if t.startswith("homeassistant/")):
                _, config = check_config(topic, ha.last(topic).payload)  # type: ignore[union-attr]
                configs[config["unique_id"]] = config
            # ...and Miranda's "last seen" sensor holds her last event.
            seen = configs[f"faceid_faceid_person_{person_id}_last_seen"]
            assert MIRANDA in seen["name"] and seen["device_class"] == "timestamp"
            state = ha.last(seen["state_topic"])
            assert state is not None and state.retain
            rendered = render_state(seen, state.payload)
            assert is_timestamp(rendered)
            attributes = json.loads(ha.last(seen["json_attributes_topic"]).payload)  # type: ignore[union-attr]
            assert attributes["idempotency_key"] == miranda[-1].key and attributes["name"] == MIRANDA
            assert attributes["camera"] == CAMERA and attributes["confidence"] > 0.5
            assert attributes["event_url"].startswith("http://faceid.test:8000/api/v1/events/")
            assert attributes["snapshot_url"].split("?")[0].endswith("/snapshot")
            camera = configs[f"faceid_faceid_camera_{CAMERA}_unknown_face"]
            assert camera["state_topic"] == f"faceid/camera/{CAMERA}/unknown_face"
            assert f"faceid_faceid_camera_{CAMERA}_last_face" in configs
            assert f"faceid_faceid_person_{person_id}_presence" in configs
        finally:
            ha.close()

        # The camera's "unknown face" sensor went on, then off once no stranger was seen for the timeout;
        # Miranda's presence likewise.
        for topic in (f"faceid/camera/{CAMERA}/unknown_face", f"faceid/person/{person_id}/presence"):
            recorder.wait_for(
                lambda t=topic: "ON" in [m.text for m in recorder.on(t)] and recorder.on(t)[-1].text == "OFF",
                TIMEOUT_S + 15,
                f"{topic} on then off",
            )
            states = [m.text for m in recorder.on(topic)]
            assert states.index("OFF", states.index("ON")) > states.index("ON")
        dump = os.environ.get("FACEID_MQTT_DUMP")  # docs/integrations.md shows what this test saw
        if dump:
            seen = [{"topic": m.topic, "retain": m.retain, "payload": m.text} for m in recorder.messages]
            Path(dump).write_text(json.dumps(seen, indent=1))

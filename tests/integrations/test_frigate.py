"""The Frigate bridge against a small fake Frigate: a real HTTP server answering Frigate's documented snapshot
and sub-label endpoints, and a real MQTT client replaying recorded ``frigate/events`` messages through a real
broker."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from faceid.cli import main
from faceid.integrations import MqttTarget
from faceid.integrations.frigate import FrigateApi, FrigateBridge, FrigateListener
from faceid.store import Store

from .broker import Mosquitto

RECORDED = Path(__file__).with_name("frigate_events.json")
KNOWN, STRANGER, CAR = "1733325600.123456-abc123", "1733325700.654321-def456", "1733325750.111111-car789"


class FakeFrigate:
    """``GET /api/events/<id>/snapshot.jpg`` and ``thumbnail.jpg`` answer the image set for that event (404
    while there is none); ``POST /api/events/<id>/sub_label`` is recorded and answered as Frigate does."""

    def __init__(self) -> None:
        self.snapshots: dict[str, bytes] = {}
        self.sub_labels: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _event(self) -> tuple[str, str]:
                parts = urlsplit(self.path).path.split("/")  # /api/events/<id>/<what>
                return unquote(parts[3]), parts[4]

            def do_GET(self) -> None:
                outer.requests.append(f"GET {self.path}")
                event_id, what = self._event()
                image = outer.snapshots.get(event_id)
                if image is None or what not in ("snapshot.jpg", "thumbnail.jpg"):
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(image)))
                self.end_headers()
                self.wfile.write(image)

            def do_POST(self) -> None:
                outer.requests.append(f"POST {self.path}")
                event_id, what = self._event()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                assert what == "sub_label"
                outer.sub_labels.append((event_id, body))
                answer = json.dumps({"success": True, "message": f"Event {event_id} sub label set"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def frigate() -> Iterator[FakeFrigate]:
    fake = FakeFrigate()
    try:
        yield fake
    finally:
        fake.close()


def jpeg(path: Path) -> bytes:
    out = io.BytesIO()
    Image.open(path).convert("RGB").save(out, format="JPEG", quality=92)
    return out.getvalue()


def blank() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (160, 320), (90, 90, 90)).save(out, format="JPEG")
    return out.getvalue()


def test_a_person_gets_a_sub_label_and_a_stranger_none(
    tmp_path: Path, analyzer: Any, media_dir: Path, broker: Mosquitto, frigate: FakeFrigate
) -> None:
    import paho.mqtt.client as mqtt

    messages = json.loads(RECORDED.read_text())["messages"]
    with Store(tmp_path / "store", analyzer=analyzer) as store:
        store.enroll("Barack Obama", media_dir / "obama.jpg")
        bridge = FrigateBridge(store, FrigateApi(frigate.url), camera_prefix="frigate/")
        listener = FrigateListener(bridge, MqttTarget.parse(f"mqtt://127.0.0.1:{broker.port}/frigate"))
        listener.start()
        assert listener.connected.wait(10)
        time.sleep(0.3)  # the subscription is made in the connect callback
        peer = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="frigate")
        peer.connect("127.0.0.1", broker.port)
        peer.loop_start()
        # What Frigate has as the best snapshot when each message goes out: first a frame without a usable
        # face, then a better one (obama2.jpg, another photo than the enrolled one); a stranger.
        snapshots = [
            blank(),
            jpeg(media_dir / "obama2.jpg"),
            None,
            jpeg(media_dir / "knn_examples/test/johnsnow_test1.jpg"),
            blank(),
            None,
        ]
        ids = [m["after"]["id"] for m in messages]
        try:
            for number, (message, image) in enumerate(zip(messages, snapshots, strict=True), start=1):
                if image is not None:
                    frigate.snapshots[ids[number - 1]] = image
                peer.publish("frigate/events", json.dumps(message), qos=1).wait_for_publish(5)
                deadline = time.monotonic() + 60
                while bridge.stats.messages < number and time.monotonic() < deadline:
                    time.sleep(0.02)
                listener.drain(60)
        finally:
            peer.disconnect()
            peer.loop_stop()
            listener.stop()
        # One sub-label call, for the person, with the enrolled name and a score Frigate accepts.
        assert [(event, body["subLabel"]) for event, body in frigate.sub_labels] == [(KNOWN, "Barack Obama")]
        body = frigate.sub_labels[0][1]
        assert 0 < body["subLabelScore"] <= 1 and body["camera"] == "front_door"
        # The snapshots came through Frigate's documented endpoints; the car was never looked at.
        assert any(r.startswith(f"GET /api/events/{KNOWN}/snapshot.jpg?crop=1") for r in frigate.requests)
        assert not any(CAR in r for r in frigate.requests)
        assert bridge.stats.attempts == 3 and bridge.stats.named == 1  # blank, Obama; the stranger once
        # Both people are recorded in faceid once each, the stranger as unknown.
        events = {e.idempotency_key: e for e in store.list_events(limit=10)}
        assert set(events) == {f"frigate-{KNOWN}", f"frigate-{STRANGER}"}
        obama = events[f"frigate-{KNOWN}"]
        assert obama.person_id is not None and obama.source == "frigate/front_door"
        assert obama.metadata["frigate_event"] == KNOWN and obama.snapshot_sha256 is not None
        assert obama.time.timestamp() == pytest.approx(1733325600.123456, abs=1e-3)
        stranger = events[f"frigate-{STRANGER}"]
        assert stranger.person_id is None and stranger.source == "frigate/driveway"


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert main(["frigate", "--url", "ftp://frigate", "--mqtt", "mqtt://127.0.0.1", "--data-dir", str(tmp_path)]) == 2
    assert main(["frigate", "--url", "http://frigate:5000", "--mqtt", "http://x", "--data-dir", str(tmp_path)]) == 2

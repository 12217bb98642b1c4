"""The connected agent's HTTP side against a scripted HTTP endpoint: the uploader's answers to each kind of
reply, and the gallery's pull, refresh (ETag), cache and refusal. (The real server is in test_connected.py.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceid.errors import BadInputError
from faceid.monitor.client import ServerClient
from faceid.monitor.connected import GallerySync, GalleryUnavailableError
from faceid.monitor.outbox import Outbox, Uploader
from faceid.monitor.sources import Backoff

from .mjpeg import closed_port

Reply = tuple[int, dict[str, str], bytes]


class Endpoint:
    """An HTTP server whose replies a test scripts: ``handler(method, path, headers, body) -> (status, headers,
    body)``; every request is recorded."""

    def __init__(self, handler: Callable[[str, str, dict[str, str], bytes], Reply]) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                endpoint.requests.append((self.command, self.path, headers, body))
                status, reply_headers, reply = handler(self.command, self.path, headers, body)
                self.send_response(status)
                for name, value in reply_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Callable[[Callable[..., Reply]], Endpoint]]:
    made: list[Endpoint] = []

    def make(handler: Callable[..., Reply]) -> Endpoint:
        made.append(Endpoint(handler))
        return made[-1]

    yield make
    for item in made:
        item.close()


def form_fields(body: bytes) -> dict[str, str]:
    fields = {}
    for part in body.split(b"--faceid-")[1:]:
        if b'name="' not in part or b"filename=" in part:
            continue
        name = part.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields[name] = part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0].decode()
    return fields


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


def upload_all(outbox: Outbox, url: str, items: int, timeout: float = 20.0) -> Uploader:
    uploader = Uploader(outbox, ServerClient(url, "fid_test"), Backoff(0.05, 0.2, jitter=0.0))
    uploader.start()
    assert uploader.drain(timeout)
    uploader.stop()
    return uploader


def test_uploads_carry_the_key_and_retry_until_the_server_takes_them(tmp_path: Path, endpoint: Any) -> None:
    calls = {"n": 0}

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        calls["n"] += 1
        if calls["n"] <= 2:
            return json_reply(503, {"detail": "starting"})
        if calls["n"] == 3:
            return json_reply(429, {"detail": "slow down"}, {"Retry-After": "0"})
        return json_reply(201, {"id": calls["n"]})

    server = endpoint(handler)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put("mon-a", {"source": "door", "person_id": "3"}, b"\xff\xd8snapshot")
    outbox.put("mon-b", {"source": "door"}, None)
    uploader = upload_all(outbox, server.url, 2)
    assert outbox.counts() == {"pending": 0, "sent": 2, "failed": 0}
    assert uploader.sent == 2 and uploader.retries == 3
    posts = [r for r in server.requests if r[0] == "POST"]
    assert [r[2]["idempotency-key"] for r in posts] == ["mon-a"] * 4 + ["mon-b"]
    assert posts[0][2]["authorization"] == "Bearer fid_test"
    assert form_fields(posts[0][3]) == {"source": "door", "person_id": "3"}
    assert b'filename="snapshot.jpg"' in posts[0][3] and b"\xff\xd8snapshot" in posts[0][3]
    assert b"filename=" not in posts[-1][3]  # no snapshot, no file part


def test_an_unreachable_server_keeps_events_queued(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put("mon-a", {"source": "door"}, None)
    uploader = Uploader(outbox, ServerClient(f"http://127.0.0.1:{closed_port()}", "k"), Backoff(0.05, 0.1))
    uploader.start()
    assert not uploader.drain(1.0)
    uploader.stop()
    assert outbox.counts()["pending"] == 1 and uploader.retries >= 2


def test_a_person_deleted_on_the_server_is_sent_as_unknown_and_a_refusal_set_aside(
    tmp_path: Path, endpoint: Any
) -> None:
    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        fields = form_fields(body)
        if fields.get("person_id") == "9":
            return json_reply(422, {"detail": "no person with id 9", "code": "bad_input"})
        if headers["idempotency-key"] == "mon-bad":
            return json_reply(415, {"detail": "snapshot: not an image"})
        return json_reply(201, {"id": 1})

    server = endpoint(handler)
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put("mon-gone", {"source": "door", "person_id": "9", "metadata": "{}"}, None)
    outbox.put("mon-bad", {"source": "door"}, b"not a jpeg")
    upload_all(outbox, server.url, 2)
    assert outbox.counts() == {"pending": 0, "sent": 1, "failed": 1}
    resent = form_fields(server.requests[1][3])
    assert "person_id" not in resent and json.loads(resent["metadata"]) == {"person_id_refused": 9}


# -- the gallery ----------------------------------------------------------------------------------------------


def gallery(model: str = "dlib-resnet-v1:55533b28", version: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(version)
    return {
        "model_id": model,
        "version": version,
        "threshold": 0.46,
        "method": "centroid-distance",
        "calibrated": False,
        "dim": 128,
        "people": [
            {"id": 1, "name": "Ada", "face_ids": [1], "embeddings": [rng.normal(0, 0.09, 128).round(6).tolist()]},
            {
                "id": 2,
                "name": "Grace",
                "face_ids": [2, 3],
                "embeddings": rng.normal(0, 0.09, (2, 128)).round(6).tolist(),
            },
        ],
    }


def test_the_gallery_is_pulled_refreshed_by_etag_and_cached(tmp_path: Path, endpoint: Any) -> None:
    state = {"version": 1}

    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        etag = f'"{state["version"]}"'
        if headers.get("if-none-match") == etag:
            return 304, {"ETag": etag}, b""
        return json_reply(200, gallery(version=state["version"]), {"ETag": etag})

    server = endpoint(handler)
    cache = tmp_path / "gallery.json"
    sync = GallerySync(ServerClient(server.url, "k"), "dlib-resnet-v1:55533b28", cache, refresh_seconds=0)
    sync.start()
    assert sync.recognizer is not None and sync.recognizer.people == 2 and cache.is_file()
    assert "include_cohort=true" in server.requests[0][1] and "model=dlib-resnet-v1" in server.requests[0][1]
    first = sync.recognizer
    assert not sync._fetch() and sync.recognizer is first  # 304: nothing re-read
    state["version"] = 2
    assert sync._fetch() and sync.recognizer is not first and sync.recognizer.version == 2
    probe = np.asarray(gallery(version=2)["people"][0]["embeddings"][0], np.float32)
    decision = sync.recognizer.identify(probe)
    assert decision.name == "Ada" and decision.distance == pytest.approx(0.0, abs=1e-5)

    # the server goes away: a new agent starts from the cached gallery
    server.close()
    offline = GallerySync(ServerClient(server.url, "k"), "dlib-resnet-v1:55533b28", cache, connect_attempts=1)
    offline.start()
    assert offline.recognizer is not None and offline.recognizer.version == 2
    offline.stop()


def test_no_gallery_and_a_foreign_model_are_refused(tmp_path: Path, endpoint: Any) -> None:
    unreachable = ServerClient(f"http://127.0.0.1:{closed_port()}", "k")
    with pytest.raises(GalleryUnavailableError, match="none is cached"):
        GallerySync(unreachable, "m", tmp_path / "none.json", connect_attempts=1).start()
    foreign = endpoint(lambda *_: json_reply(200, gallery(model="other-model")))
    with pytest.raises(BadInputError, match="cannot be compared"):
        GallerySync(ServerClient(foreign.url, "k"), "dlib-resnet-v1:55533b28", tmp_path / "g.json").start()
    refused = endpoint(lambda *_: json_reply(403, {"detail": "missing scope read"}))
    with pytest.raises(BadInputError, match="'read' scope"):
        GallerySync(ServerClient(refused.url, "k"), "m", tmp_path / "h.json").start()

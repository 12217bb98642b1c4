"""A version activated from the command line is followed by every path that identifies: a running server (and
one started afterwards) and a standalone monitor, each answering with the new version's model id; a rollback
brings the built-in model back everywhere.

Before, the server and the standalone monitor opened a plain store that kept the built-in model id while the
faces had moved to the new version: nobody was recognised, with no candidates at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import still_video

from faceid.store.versions import VersionedStore

pytestmark = pytest.mark.slow


def _identify(client: Any, photo: Path) -> dict[str, Any]:
    response = client.post("/api/v1/identify", files={"photo": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == 1
    return dict(faces[0])


def _monitor(video: Path, data_dir: Path) -> list[Any]:
    from faceid.monitor import Agent, AgentConfig

    events: list[Any] = []
    Agent(AgentConfig(source=str(video), camera="door", data_dir=data_dir), on_event=events.append).run()
    return events


def test_server_and_monitor_follow_activation_and_rollback(
    tmp_path: Path, media_dir: Path, other_model: Path, analyzer: Any
) -> None:
    from fastapi.testclient import TestClient
    from tests.server.conftest import login

    from faceid.server.app import create_app
    from faceid.server.config import ServerConfig
    from support.server_process import ADMIN_PASSWORD

    data_dir = tmp_path / "data"
    with VersionedStore(data_dir) as cli_store:  # what `faceid people enroll` opens
        builtin = cli_store.active_model_id()
        for name, photo in (("Barack Obama", "obama.jpg"), ("Joe Biden", "biden.jpg")):
            cli_store.enroll(name, [str(media_dir / photo)])
    probe = media_dir / "obama2.jpg"
    video = still_video(probe, tmp_path / "door.mp4")

    def server_answer() -> dict[str, Any]:
        app = create_app(ServerConfig(data_dir=data_dir, admin_password=ADMIN_PASSWORD, warm_up=False))
        with TestClient(app) as client:
            client.headers["X-CSRF-Token"] = login(client, "admin", ADMIN_PASSWORD)
            return _identify(client, probe)

    app = create_app(ServerConfig(data_dir=data_dir, admin_password=ADMIN_PASSWORD, warm_up=False))
    with TestClient(app) as running:
        running.headers["X-CSRF-Token"] = login(running, "admin", ADMIN_PASSWORD)
        before = _identify(running, probe)
        assert before["person"]["name"] == "Barack Obama" and before["model_id"] == builtin

        with VersionedStore(data_dir) as cli_store:  # `faceid versions activate` in another process
            version = cli_store.register_version(other_model, parent=builtin)
            cli_store.activate(version.model_id)

        after = _identify(running, probe)  # the server that was already running
        assert after["model_id"] == version.model_id
        assert after["person"]["name"] == "Barack Obama"
        assert after["candidates"], "the new version's gallery must not be empty"
    restarted = server_answer()
    assert restarted["model_id"] == version.model_id and restarted["person"]["name"] == "Barack Obama"

    events = _monitor(video, data_dir)
    assert events and all(e.model_id == version.model_id for e in events)
    assert {e.name for e in events} == {"Barack Obama"}

    with VersionedStore(data_dir) as cli_store:
        cli_store.rollback()
    rolled_back = server_answer()
    assert rolled_back["model_id"] == builtin and rolled_back["person"]["name"] == "Barack Obama"
    events = _monitor(video, data_dir)
    assert events and {e.model_id for e in events} == {builtin} and {e.name for e in events} == {"Barack Obama"}


def test_a_connected_monitor_follows_the_servers_version(tmp_path: Path, media_dir: Path, other_model: Path) -> None:
    """The server's gallery is of its active version; the agent fetches that version's model (checked against
    its id) and describes faces with it, so a fine-tune activated on the server keeps names coming."""
    from tests.monitor.conftest import api_key

    from faceid.monitor import Agent, AgentConfig
    from support.server_process import running_server

    data_dir = tmp_path / "server"
    with VersionedStore(data_dir) as cli_store:
        cli_store.enroll("Barack Obama", [str(media_dir / "obama.jpg")])
        version = cli_store.register_version(other_model, parent=cli_store.active_model_id())
        cli_store.activate(version.model_id)
    video = still_video(media_dir / "obama2.jpg", tmp_path / "door.mp4")
    key = api_key(data_dir, ["read", "ingest"])
    (tmp_path / "logs").mkdir()
    with running_server(data_dir, tmp_path / "logs") as server:
        events: list[Any] = []
        state = tmp_path / "agent"
        config = AgentConfig(source=str(video), camera="door", server=server.url, api_key=key, state_dir=state)
        result = Agent(config, on_event=events.append).run()
    assert result.mode == "connected" and events
    assert {e.model_id for e in events} == {version.model_id}
    assert {e.name for e in events} == {"Barack Obama"}
    assert (state / "models" / f"{version.model_id}.onnx").is_file()

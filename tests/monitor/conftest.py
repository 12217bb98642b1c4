"""Monitor fixtures: a fresh store with no calibration step (the shipped calibration decides), with Barack Obama,
Lin-Manuel Miranda and Alex Lacamoire enrolled from their photos; the standalone run of the Hamilton clip
that the connected runs are compared with. Real ``faceid serve`` processes, stopped and started again on the same
port, come from ``support.server_process``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Kept importable from here: the monitor tests' real server processes.
from support.server_process import ADMIN_PASSWORD, ServerProcess, free_port, running_server  # noqa: F401

CLIP = "short_hamilton_clip.mp4"
CAMERA = "hamilton"
GALLERY = [
    ("Barack Obama", "obama.jpg"),
    ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
    ("Alex Lacamoire", "alex-lacamoire.png"),
]


@pytest.fixture(scope="session")
def enrolled_store_dir(tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> Path:
    """A fresh store with the three people enrolled from their photos and no calibration step: decisions come
    from the calibration shipped with faceid, as on a new install."""
    from faceid.store import Store

    folder = tmp_path_factory.mktemp("enrolled") / "store"
    with Store(folder) as store:
        for name, photo in GALLERY:
            store.enroll(name, media_dir / photo)
        assert store.calibration() is not None and store.calibration().details["source"] == "shipped"
    return folder


def copy_store(template: Path, destination: Path) -> Path:
    shutil.copytree(template, destination)
    return destination


@dataclass
class StandaloneRun:
    data_dir: Path
    events: list[Any]
    stats: Any
    recognizer: dict[str, Any]

    def by_key(self) -> dict[str, Any]:
        return {e.key: e for e in self.events}


@pytest.fixture(scope="session")
def standalone_run(
    tmp_path_factory: pytest.TempPathFactory, enrolled_store_dir: Path, media_dir: Path
) -> StandaloneRun:
    """``faceid monitor`` on the clip, standalone, camera id CAMERA (the reference for every other run)."""
    from faceid.monitor import Agent, AgentConfig

    data_dir = copy_store(enrolled_store_dir, tmp_path_factory.mktemp("standalone") / "store")
    events: list[Any] = []
    agent = Agent(AgentConfig(source=str(media_dir / CLIP), camera=CAMERA, data_dir=data_dir), on_event=events.append)
    result = agent.run()
    return StandaloneRun(data_dir, events, result.stats, result.recognizer)


def api_key(data_dir: Path, scopes: list[str]) -> str:
    """A device key made as an admin would (``faceid apikey create``), straight in the server's store."""
    from faceid.store import open_database
    from faceid.store.accounts import Accounts
    from faceid.store.config import resolve_database_url

    with open_database(resolve_database_url(None, data_dir)) as database:
        key = Accounts(database).create_key("monitor test", scopes).key
    assert key is not None  # a key just made carries its plaintext
    return key


@pytest.fixture
def server_data_dir(tmp_path: Path, enrolled_store_dir: Path) -> Path:
    return copy_store(enrolled_store_dir, tmp_path / "server")

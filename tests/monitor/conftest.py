"""Monitor fixtures: a fresh store with no calibration step (the shipped calibration decides), with Barack Obama,
Lin-Manuel Miranda and Alex Lacamoire enrolled from their photos; the standalone run of the Hamilton clip
that the connected runs are compared with; real ``faceid serve`` processes that can be stopped and started
again on the same port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CLIP = "short_hamilton_clip.mp4"
CAMERA = "hamilton"
GALLERY = [
    ("Barack Obama", "obama.jpg"),
    ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
    ("Alex Lacamoire", "alex-lacamoire.png"),
]
ADMIN_PASSWORD = "admin-password-1"


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


# -- real server processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``faceid serve`` on a fixed port and data folder; stop() and start() again as often as needed."""

    def __init__(self, data_dir: Path, log_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 120.0) -> None:
        import httpx

        self.starts += 1
        log_path = self.log_dir / f"server-{self.port}-{self.starts}.log"
        command = [sys.executable, "-m", "faceid", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        env = {**os.environ, "FACEID_ADMIN_PASSWORD": ADMIN_PASSWORD}
        with open(log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                [*command, "--no-warm-up"], stdout=log_file, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the server exited with {self.process.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not start in time:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextlib.contextmanager
def running_server(data_dir: Path, log_dir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir, log_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


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

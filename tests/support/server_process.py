"""Real ``faceid serve`` processes on loopback ports, for the tests that need a server over HTTP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

ADMIN_PASSWORD = "admin-password-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``faceid serve`` on a port and data folder of its own; stop() and start() again as often as needed (same
    port, same folder). Each start logs to a file of its own in ``log_dir`` (default: the data folder's parent)."""

    def __init__(
        self,
        data_dir: Path,
        db: str | None = None,
        extra: Sequence[str] = (),
        log_dir: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.db = db
        self.extra = tuple(extra)
        self.log_dir = log_dir or data_dir.parent
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.log_dir / f"server-{self.port}.log"
        self.starts = 0

    def launch(self) -> None:
        """Start the process without waiting for it to answer (see :meth:`wait_ready`)."""
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"server-{self.port}-{self.starts}.log"
        command = [sys.executable, "-m", "faceid", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.db:
            command += ["--db", self.db]
        env = {**os.environ, "FACEID_ADMIN_PASSWORD": ADMIN_PASSWORD}
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen([*command, *self.extra], stdout=log_file, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, deadline: float) -> None:
        """Until the health check answers; fails with the log if the process exits or ``deadline`` passes."""
        assert self.process is not None, "launch() first"
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not start in time:\n{self.log()}")
            time.sleep(0.2)

    def start(self, timeout: float = 120.0) -> None:
        self.launch()
        self.wait_ready(time.monotonic() + timeout)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def serve_many(
    count: int, data_dir: Path, db: str | None = None, *extra: str, timeout: float = 120.0
) -> Iterator[list[ServerProcess]]:
    """``count`` processes of ``faceid serve`` on free loopback ports (started together, so they load their
    models at the same time); all stopped and waited for at the end."""
    servers: list[ServerProcess] = []
    try:
        for _ in range(count):
            server = ServerProcess(data_dir, db, extra)
            servers.append(server)
            server.launch()
        deadline = time.monotonic() + timeout
        for server in servers:
            server.wait_ready(deadline)
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextlib.contextmanager
def serve(data_dir: Path, db: str | None = None, *extra: str, timeout: float = 120.0) -> Iterator[ServerProcess]:
    with serve_many(1, data_dir, db, *extra, timeout=timeout) as servers:
        yield servers[0]


@contextlib.contextmanager
def running_server(data_dir: Path, log_dir: Path) -> Iterator[ServerProcess]:
    """One server without the model warm-up (the tests that start and stop servers often want them up fast)."""
    server = ServerProcess(data_dir, extra=("--no-warm-up",), log_dir=log_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def http_login(base_url: str, username: str = "admin", password: str = ADMIN_PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=30)
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client

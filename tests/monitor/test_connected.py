"""Connected mode with real processes: ``faceid serve`` and ``faceid monitor --server`` as separate programs.

* The server is stopped during a run and started again: every event arrives, exactly once, and they are
  the events of the standalone run (same keys, people, times, tracks).
* The agent is killed (SIGKILL) mid-run, with events queued that the server (down at that moment) has not
  taken, then started again on the same file: nothing is lost and nothing arrives twice.

The agent reads the clip at its frame rate (``--realtime``) so that a run lasts as long as the video, and
retries uploads at least every second (``--upload-retry-max 1``) to keep the test short.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.server_process import ServerProcess

from .conftest import CAMERA, CLIP, StandaloneRun, api_key

AGENT_TIMEOUT = 240.0


class AgentProcess:
    """``faceid monitor`` as a child process; its JSON event lines collected as they are printed."""

    def __init__(self, source: Path, server: str, key: str, state_dir: Path, log_path: Path, *extra: str) -> None:
        command = [
            sys.executable, "-m", "faceid", "-v", "monitor", str(source), "--camera", CAMERA,
            "--server", server, "--state-dir", str(state_dir), "--json", "--upload-retry-max", "1",
            "--gallery-refresh", "0", *extra,
        ]  # fmt: skip
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in wait()/kill()
        env = {**os.environ, "FACEID_API_KEY": key}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_event(self, timeout: float = AGENT_TIMEOUT) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout} s:\n{self.log()}") from None
        if line is None:
            raise AssertionError(f"the agent ended (exit {self.process.poll()}):\n{self.log()}")
        event = json.loads(line)
        self.events.append(event)
        return event

    def take_ready(self) -> None:
        """Collect the events already printed (emitted, and possibly uploaded, before now)."""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self.lines.put(None)
                return
            self.events.append(json.loads(line))

    def wait(self, timeout: float = AGENT_TIMEOUT) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the agent did not finish in {timeout} s:\n{self.log()}") from None
        while (line := self.lines.get(timeout=10)) is not None:
            self.events.append(json.loads(line))
        self._log.close()
        return code

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]


def server_events(server: ServerProcess, key: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{server.url}/api/v1/events",
        params={"source": CAMERA, "limit": 200},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def assert_same_as_standalone(delivered: list[dict[str, Any]], standalone: StandaloneRun) -> None:
    keys = [e["idempotency_key"] for e in delivered]
    assert len(keys) == len(set(keys)), "an event arrived twice"
    reference = standalone.by_key()
    assert set(keys) == set(reference), (sorted(keys), sorted(reference))
    for event in delivered:
        expected = reference[event["idempotency_key"]]
        assert event["person_id"] == expected.person_id
        assert event["track_id"] == str(expected.track_id)
        assert event["time"].replace("Z", "+00:00")[:23] == expected.start.isoformat()[:23]
        assert event["metadata"]["media_end"] == round(expected.media_end, 3)
        assert event["snapshot_url"] is not None  # unknown faces too: kept to enroll from


def queue_counts(state_dir: Path) -> dict[str, int]:
    with sqlite3.connect(state_dir / "outbox.sqlite3") as db:
        return dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_server_stopped_during_a_run_gets_every_event_once(
    tmp_path: Path, server_data_dir: Path, media_dir: Path, standalone_run: StandaloneRun
) -> None:
    key = api_key(server_data_dir, ["read", "ingest"])
    server = ServerProcess(server_data_dir, extra=("--no-warm-up",), log_dir=tmp_path)
    server.start()
    try:
        agent = AgentProcess(
            media_dir / CLIP, server.url, key, tmp_path / "state", tmp_path / "agent.log", "--realtime"
        )
        agent.next_event()
        server.stop()
        agent.take_ready()
        agent.next_event()  # emitted after the server went down: queued on disk, uploads failing
        agent.next_event()
        server.start()
        assert agent.wait() == 0, agent.log()
        assert "upload failed" in agent.log()
        assert len(agent.events) == len(standalone_run.events)
        assert queue_counts(tmp_path / "state") == {"sent": len(standalone_run.events)}
        assert_same_as_standalone(server_events(server, key), standalone_run)
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_agent_killed_mid_run_and_restarted_loses_nothing_and_doubles_nothing(
    tmp_path: Path, server_data_dir: Path, media_dir: Path, standalone_run: StandaloneRun
) -> None:
    key = api_key(server_data_dir, ["read", "ingest"])
    state = tmp_path / "state"
    server = ServerProcess(server_data_dir, extra=("--no-warm-up",), log_dir=tmp_path)
    server.start()
    try:
        first = AgentProcess(media_dir / CLIP, server.url, key, state, tmp_path / "agent-1.log", "--realtime")
        first.next_event()
        server.stop()
        first.take_ready()
        first.next_event()
        first.next_event()
        first.kill()  # SIGKILL: no clean-up of any kind; two events at least are queued and not sent
        before = queue_counts(state)
        assert before.get("pending", 0) >= 2, before
        server.start()
        second = AgentProcess(media_dir / CLIP, server.url, key, state, tmp_path / "agent-2.log")
        assert second.wait() == 0, second.log()
        assert "queued by an earlier run are being sent" in second.log()
        # the restarted agent re-processes the whole file: the same keys, queued once, sent once
        assert [e["key"] for e in second.events] == [e.key for e in standalone_run.events]
        assert queue_counts(state) == {"sent": len(standalone_run.events)}
        assert_same_as_standalone(server_events(server, key), standalone_run)
    finally:
        server.stop()

"""The documented recipe for a camera key works as written: a key made by ``faceid apikey create NAME`` (no
options) and one made on the web page's API keys form (as it comes) each run a connected ``faceid monitor``
to the end, and its events reach the server. A key without a scope the monitor needs is refused at start,
with the recipe in the message.

Real parts: ``faceid serve`` and ``faceid monitor`` as processes, the CLI as a process, Debian's Chromium.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.browser import launch_browser, open_page
from support.server_process import ADMIN_PASSWORD, ServerProcess, running_server

pytestmark = [pytest.mark.slow]

CLIP = "short_hamilton_clip.mp4"
SECONDS = "3"  # of the clip: Alex Lacamoire at the piano, enough for an event or two


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> Iterator[ServerProcess]:
    from faceid.store import Store

    folder = tmp_path_factory.mktemp("device-key")
    data_dir = folder / "store"
    with Store(data_dir) as store:
        store.enroll("Alex Lacamoire", media_dir / "alex-lacamoire.png")
        store.enroll("Lin-Manuel Miranda", media_dir / "lin-manuel-miranda.png")
    with running_server(data_dir, folder) as running:
        yield running


def faceid(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faceid", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def cli_key(server: ServerProcess, *options: str) -> str:
    made = faceid("apikey", "create", "cam", *options, "--data-dir", str(server.data_dir))
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[0].strip()


def web_key(server: ServerProcess) -> str:
    with launch_browser() as browser, open_page(browser, server.url) as page:
        page.goto("/admin/keys")  # sends to the login form, and back here after it
        page.fill("#username", "admin")
        page.fill("#password", ADMIN_PASSWORD)
        page.click("#login-form button")
        page.wait_for_url(re.compile(r".*/admin/keys$"))
        page.fill("#key-name", "door camera")
        page.click("#key-form button")  # the scopes as the form comes
        page.wait_for_selector("#new-key:not([hidden])")
        return str(page.inner_text("#new-key-value")).strip()


def run_monitor(server: ServerProcess, key: str, camera: str, state_dir: Path, media_dir: Path) -> Any:
    return faceid(
        "monitor", str(media_dir / CLIP), "--camera", camera, "--server", server.url, "--state-dir", str(state_dir),
        "--max-seconds", SECONDS, "--gallery-refresh", "0", "--json",
        env={"FACEID_API_KEY": key},
    )  # fmt: skip


def delivered(server: ServerProcess, key: str, camera: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{server.url}/api/v1/events",
        params={"source": camera},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("made_by", ["cli", "web"])
def test_a_key_made_the_documented_way_runs_a_connected_monitor(
    server: ServerProcess, media_dir: Path, tmp_path: Path, made_by: str
) -> None:
    key = cli_key(server) if made_by == "cli" else web_key(server)
    assert key.startswith("fid_")
    camera = f"door-{made_by}"
    run = run_monitor(server, key, camera, tmp_path / "state", media_dir)
    assert run.returncode == 0, run.stderr[-4000:]
    printed = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert printed, run.stderr[-4000:]
    events = delivered(server, key, camera)
    assert len(events) == len(printed), (events, printed)


@pytest.mark.timeout(300)
def test_a_key_lacking_a_scope_is_refused_at_start_with_the_recipe(
    server: ServerProcess, media_dir: Path, tmp_path: Path
) -> None:
    for scope, missing in (("ingest", "read"), ("read", "ingest")):
        key = cli_key(server, "--scope", scope)
        run = run_monitor(server, key, f"refused-{scope}", tmp_path / scope, media_dir)
        assert run.returncode == 2, run.stderr[-4000:]
        assert f"also needs {missing}" in run.stderr and "faceid apikey create NAME" in run.stderr, run.stderr

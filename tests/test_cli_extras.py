"""The command line without its optional extras: the core commands work and load none of them, a command
whose extra is missing says which to install (exit 2), and a broken import is never taken for a missing extra.

Each case runs ``faceid`` in a fresh interpreter in which the named packages cannot be imported, as in an
install without them (README, "Installs", for the same from clean virtual environments).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceid.cli.extras import MODULE_EXTRAS

SERVER_SIDE = ["fastapi", "starlette", "uvicorn", "pydantic", "jinja2", "argon2", "prometheus_client"]
STORE_SIDE = ["sqlalchemy", "alembic", "faiss", "psycopg", "pgvector"]
OTHERS = ["av", "cv2", "torch", "matplotlib", "sklearn", "umap", "paho"]
EVERY_EXTRA = SERVER_SIDE + STORE_SIDE + OTHERS

RUNNER = """
import importlib.abc, json, sys
blocked = set(sys.argv[1].split(","))

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in blocked):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from faceid.cli import main
try:
    code = main(sys.argv[2:])
finally:
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",") + %r))
    print("LOADED " + json.dumps(loaded), file=sys.stderr)
sys.exit(code)
"""


def run_without(blocked: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    # numba's absence is the environment variable's business (find_spec cannot be refused without breaking it).
    env = {**os.environ, "FACEID_NO_JIT": "1"}
    return subprocess.run(
        [sys.executable, "-c", RUNNER % (["numba", "faiss"],), ",".join(blocked), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def loaded(result: subprocess.CompletedProcess[str]) -> list[str]:
    line = next(line for line in result.stderr.splitlines() if line.startswith("LOADED "))
    return list(json.loads(line.removeprefix("LOADED ")))


def test_verify_needs_no_extra_and_loads_none(media_dir: Path) -> None:
    result = run_without(EVERY_EXTRA, "verify", str(media_dir / "obama.jpg"), str(media_dir / "obama2.jpg"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["same_person"] is True
    assert loaded(result) == []


def test_help_lists_every_command_and_the_extra_it_needs() -> None:
    result = run_without(EVERY_EXTRA, "--help")
    assert result.returncode == 0, result.stderr
    for command in ("verify", "people", "serve", "monitor", "viz", "finetune", "frigate"):
        assert f"    {command} " in result.stdout
    assert "serve        (not installed: pip install 'faceid[server]')" in result.stdout
    assert "people       (not installed: pip install 'faceid[store]')" in result.stdout


@pytest.mark.parametrize(
    ("blocked", "args", "extra"),
    [
        (EVERY_EXTRA, ["serve", "--port", "0"], "server"),
        (SERVER_SIDE, ["serve", "--port", "0"], "server"),  # the store is there, the server's packages are not
        (EVERY_EXTRA, ["people", "enroll", "Ada", "ada.jpg"], "store"),
        (EVERY_EXTRA, ["monitor", "clip.mp4", "--server", "http://127.0.0.1:9"], "agent"),
        (EVERY_EXTRA, ["versions", "list"], "store"),  # registered, but its store is loaded when it runs
    ],
)
def test_a_missing_extra_is_named_with_exit_2(blocked: list[str], args: list[str], extra: str) -> None:
    result = run_without(blocked, *args)
    assert result.returncode == 2, result.stderr
    assert f"pip install 'faceid[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_extra_found_while_running_is_named(tmp_path: Path) -> None:
    # The monitor loads (the agent extra is there) but the video decoder is not: said when the file is opened.
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 64)
    result = run_without(["av", "cv2"], "monitor", str(clip), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2, result.stderr
    assert "pip install 'faceid[video]'" in result.stderr


def test_a_broken_import_is_not_hidden() -> None:
    # A module of faceid itself going missing is a bug: the traceback surfaces, the group is not left out.
    result = run_without(["faceid.store.calibrate"], "--help")
    assert result.returncode == 1
    assert "ModuleNotFoundError" in result.stderr and "faceid.store.calibrate" in result.stderr


def test_every_extra_named_exists() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(MODULE_EXTRAS.values()) <= set(extras)
    core = " ".join(project["dependencies"]).lower()
    for heavy in ("sqlalchemy", "fastapi", "faiss", "uvicorn", "psycopg", "numba", "torch"):
        assert heavy not in core

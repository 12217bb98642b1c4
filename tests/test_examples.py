"""The scripts in examples/ run as their docstrings say, on the sample media."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *arguments], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_compare_two_photos(media_dir: Path) -> None:
    same = _run("compare_two_photos.py", str(media_dir / "obama.jpg"), str(media_dir / "obama2.jpg"))
    other = _run("compare_two_photos.py", str(media_dir / "obama.jpg"), str(media_dir / "biden.jpg"))
    assert "same person" in same and "different people" in other


def test_enroll_and_identify(media_dir: Path, tmp_path: Path) -> None:
    out = _run(
        "enroll_and_identify.py",
        str(tmp_path / "faces"),
        f"Obama={media_dir / 'obama.jpg'}",
        f"Biden={media_dir / 'biden.jpg'}",
        str(media_dir / "obama2.jpg"),
        str(media_dir / "alex-lacamoire.png"),
    )
    assert "obama2.jpg: Obama" in out and "alex-lacamoire.png: unknown" in out


def test_video_faces(media_dir: Path) -> None:
    # A fresh store describes with the fused descriptor; the frames must be described the same way.
    pytest.importorskip("av")
    out = _run(
        "video_faces.py", str(media_dir / "short_hamilton_clip.mp4"), f"Miranda={media_dir / 'lin-manuel-miranda.png'}"
    )
    lines = out.splitlines()
    assert any("known: Miranda" in line for line in lines)
    assert all(line.endswith(("known: Miranda", "unknown: unknown")) for line in lines)

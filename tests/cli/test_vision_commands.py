"""The command line on real photos, and its exit codes for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faceid.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faceid.cli", *args], capture_output=True, text=True, timeout=300)


def test_verify_same_and_different_people(media_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(media_dir / "obama.jpg"), str(media_dir / "obama2.jpg"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    # The default descriptor is dlib's fused with SFace's, which decides at its own threshold (1.0).
    assert same["same_person"] is True and same["distance"] < same["threshold"] == 1.0
    assert "+sface-" in same["model"]
    assert main(["verify", str(media_dir / "obama.jpg"), str(media_dir / "biden.jpg"), "--json"]) == 0
    different = json.loads(capsys.readouterr().out)
    assert different["same_person"] is False and different["distance"] >= 1.0
    # dlib's descriptor alone, at dlib's threshold.
    assert (
        main(
            [
                "verify",
                str(media_dir / "obama.jpg"),
                str(media_dir / "obama2.jpg"),
                "--second-opinion",
                "none",
                "--json",
            ]
        )
        == 0
    )
    alone = json.loads(capsys.readouterr().out)
    assert alone["same_person"] is True and alone["threshold"] == 0.6 and "+sface-" not in alone["model"]


def test_detect_json_lists_every_face(media_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(media_dir / "two_people.jpg"), str(media_dir / "obama.jpg"), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [len(r["faces"]) for r in results] == [2, 1]


def test_embed_gives_the_descriptor(media_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["embed", str(media_dir / "obama_small.jpg"), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert len(result["faces"]) == 1 and len(result["faces"][0]["embedding"]) == 256  # dlib's 128 + SFace's 128
    assert main(["embed", str(media_dir / "obama_small.jpg"), "--second-opinion", "none", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert len(result["faces"][0]["embedding"]) == 128


def test_unreadable_input_exits_2_with_the_reason(tmp_path: Path, media_dir: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((media_dir / "obama.jpg").read_bytes()[:5000])
    for bad in (text, empty, truncated, tmp_path / "missing.jpg"):
        result = run_cli("detect", str(bad))
        assert result.returncode == 2, (bad, result.stderr)
        assert bad.name in result.stderr and "error" in result.stderr
        assert "Traceback" not in result.stderr


def test_verify_without_a_face_exits_2(tmp_path: Path, media_dir: Path) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (128, 128, 128)).save(blank)
    result = run_cli("verify", str(blank), str(media_dir / "obama.jpg"))
    assert result.returncode == 2 and "no face" in result.stderr


def test_eval_pairs_on_a_small_pairs_file(
    tmp_path: Path, faces_dev_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (faces_dev_dir / "pairs.txt").read_text().splitlines()
    # Two folds of 20 same and 20 different pairs, taken from the first two folds of faces-dev.
    same1, diff1 = lines[1:21], lines[301:321]
    same2, diff2 = lines[601:621], lines[901:921]
    small = tmp_path / "pairs.txt"
    small.write_text("\n".join(["2\t20", *same1, *diff1, *same2, *diff2]) + "\n")
    assert main(["eval", "pairs", str(small), "--root", str(faces_dev_dir), "--json", "--quiet", "--no-cache"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 80 and report["folds"] == 2 and len(report["fold_accuracies"]) == 2
    assert report["kfold_mean"] >= 0.9 and report["roc_auc"] > 0.95
    assert report["no_face_found"] >= 0

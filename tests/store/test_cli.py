"""The ``faceid people / identify / gallery / calibrate`` commands: JSON output, and exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceid.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def where(data_dir: Path, db_url: str | None) -> list[str]:
    return ["--data-dir", str(data_dir), *(["--db", db_url] if db_url else [])]


def test_people_commands(capsys: pytest.CaptureFixture[str], where: list[str], media_dir: Path, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "people", "enroll", "Barack Obama", str(media_dir / "obama.jpg"), "--json", *where)
    assert code == 0 and json.loads(out)["name"] == "Barack Obama"
    code, out, _ = run(
        capsys, "people", "enroll", "Joe Biden", str(media_dir / "biden.jpg"), "--meta", "role=vp", "--json", *where
    )
    assert code == 0 and json.loads(out)["metadata"] == {"role": "vp"}
    code, out, _ = run(capsys, "people", "add-face", "Barack Obama", str(media_dir / "obama2.jpg"), "--json", *where)
    assert code == 0 and len(json.loads(out)) == 1

    code, out, _ = run(capsys, "people", "list", "--json", *where)
    assert [p["name"] for p in json.loads(out)] == ["Barack Obama", "Joe Biden"]
    assert json.loads(out)[0]["face_count"] == 2

    code, out, _ = run(capsys, "identify", str(media_dir / "two_people.jpg"), "--all-faces", "--json", *where)
    faces = json.loads(out)[0]["faces"]
    assert code == 0 and {f["person"]["name"] for f in faces if f["known"]} == {"Barack Obama", "Joe Biden"}
    code, out, _ = run(capsys, "identify", str(media_dir / "obama_small.jpg"), *where)
    assert code == 0 and "Barack Obama" in out

    code, out, _ = run(capsys, "people", "rename", "Joe Biden", "Joseph Biden", *where)
    assert code == 0 and "Joseph Biden" in out
    code, out, _ = run(capsys, "people", "show", "joseph biden", "--json", *where)
    assert json.loads(out)["faces"][0]["image_sha256"]

    archive = tmp_path / "gallery.zip"
    code, out, _ = run(capsys, "gallery", "export", str(archive), "--json", *where)
    assert code == 0 and json.loads(out)["people"] == 2
    code, out, _ = run(capsys, "gallery", "check", "--json", *where)
    assert code == 0 and json.loads(out)["ok"]

    code, out, _ = run(capsys, "people", "delete", "Joseph Biden", "--json", *where)
    assert code == 0 and json.loads(out)["faces"] == 1
    code, out, _ = run(capsys, "gallery", "import", str(archive), "--skip-existing", "--json", *where)
    assert code == 0 and json.loads(out)["people_enrolled"] == 1
    code, out, _ = run(capsys, "gallery", "info", "--json", *where)
    assert json.loads(out)["people"] == 2


def test_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], where: list[str], media_dir: Path, tmp_path: Path
) -> None:
    not_image = tmp_path / "x.jpg"
    not_image.write_text("nope")
    cases = [
        ("people", "enroll", "Two", str(media_dir / "two_people.jpg")),
        ("people", "enroll", "Bad", str(not_image)),
        ("people", "delete", "nobody"),
        ("people", "remove-face", "999"),
        ("people", "import", str(tmp_path / "missing")),
        ("gallery", "import", str(not_image)),
        ("people", "edit", "nobody", "--meta", "novalue"),
    ]
    for case in cases:
        code, out, err = run(capsys, *case, *where)
        assert code == 2, case
        assert err.startswith("faceid: error:") and out == "", case
    code, _, _ = run(capsys, "people", "enroll", "Obama", str(media_dir / "obama.jpg"), *where)
    code, _, err = run(capsys, "people", "enroll", "obama", str(media_dir / "obama2.jpg"), *where)
    assert code == 2 and "already exists" in err
    code, out, _ = run(capsys, "people", "list", "--json", *where)
    assert [p["name"] for p in json.loads(out)] == ["Obama"]


def test_calibrate_and_bench_identify(capsys: pytest.CaptureFixture[str], tmp_path: Path, faces_dev_dir: Path) -> None:
    # A small labelled folder: 100 faces-dev people, at most 2 photos each (links, not copies).
    root = tmp_path / "labelled"
    people = sorted(p for p in faces_dev_dir.iterdir() if p.is_dir())[:100]
    for person in people:
        (root / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:2]:
            (root / person.name / photo.name).symlink_to(photo)
    where = ["--data-dir", str(tmp_path / "data")]
    code, out, _ = run(capsys, "calibrate", "--root", str(root), "--gallery-size", "20", "--json", "--quiet", *where)
    summary = json.loads(out)
    assert code == 0 and summary["method"] == "centroid-cohort" and summary["saved"] and summary["cohort_size"] == 50
    code, out, _ = run(capsys, "gallery", "info", "--json", *where)
    assert code == 0
    code, out, _ = run(
        capsys, "bench", "identify", "--root", str(root), "--sizes", "5", "--draws", "1", "--json", "--quiet"
    )
    report = json.loads(out)
    assert code == 0 and report["results"][0]["gallery_size"] == 5
    assert "centroid, cohort-normalised" in report["results"][0]["methods"]

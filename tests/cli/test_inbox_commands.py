"""The inbox on the command line: visitors, corrections, search, retention, forget, and `bench visitors` on a small
part of faces-dev."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceid.cli import main
from faceid.store.versions import VersionedStore

PEOPLE = ("Abdullah_Gul", "Adrien_Brody")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_visitors_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path, faces_dev_dir: Path) -> None:
    data = tmp_path / "data"
    where = ["--data-dir", str(data)]
    with VersionedStore(data) as store:
        model, analyzer = store.model_id, store.analyzer  # the active model's descriptors
        for person in PEOPLE:
            for k, photo in enumerate(sorted((faces_dev_dir / person).glob("*.jpg"))[:3]):
                face = analyzer.analyze(photo.read_bytes())[0]
                store.record_event(
                    person_id=None,
                    source=["gate", "garage"][k % 2],
                    model_id=model,
                    box=[float(v) for v in np.asarray(face.box).reshape(-1)],
                    metadata={"template": [float(v) for v in face.embedding]},
                )
    code, out, _ = run(capsys, "visitors", "list", "--json", *where)
    visitors = json.loads(out)
    assert code == 0 and len(visitors) == 2 and all(v["events"] == 3 for v in visitors)
    first, second = visitors[0]["id"], visitors[1]["id"]
    code, out, err = run(capsys, "visitors", "name", str(first), *where)
    assert code == 2 and "NAME" in err
    code, out, _ = run(capsys, "visitors", "name", str(first), "Someone", "--cap", "2", "--json", *where)
    named = json.loads(out)
    assert code == 0 and named["faces_enrolled"] == 2 and named["events_labelled"] == 3
    code, out, _ = run(capsys, "visitors", "show", str(first), "--json", *where)
    events = json.loads(out)["event_ids"]
    code, out, _ = run(capsys, "correct", str(events[0]), "--not", "--json", *where)
    assert code == 0 and json.loads(out)["person_id"] == named["person_id"]
    code, out, _ = run(capsys, "correct", str(events[0]), "--is", "Someone", *where)
    assert code == 0
    code, out, _ = run(capsys, "search", "--person", "Someone", "--json", *where)
    assert code == 0 and {e["id"] for e in json.loads(out)["events"]} >= set(events)
    code, _, err = run(capsys, "visitors", "split", str(second), "x", *where)
    assert code == 2 and "event ids" in err
    code, out, _ = run(capsys, "visitors", "ignore", str(second), *where)
    assert code == 0 and "ignored" in out
    code, out, _ = run(capsys, "visitors", "recluster", "--json", *where)
    assert code == 0 and json.loads(out)["removed"] == 0
    code, _, err = run(capsys, "retention", "set", "crops", "soon", *where)
    assert code == 2
    code, out, _ = run(capsys, "retention", "set", "crops", "7", "--json", *where)
    assert code == 0 and json.loads(out)["crops"] == 7
    code, out, _ = run(capsys, "retention", "apply", *where)
    assert code == 0 and "removed" in out
    code, out, _ = run(capsys, "people", "forget", "Someone", "--json", *where)
    receipt = json.loads(out)
    assert code == 0 and receipt["rows"]["events"] == 3 and "Someone" not in out
    code, _, err = run(capsys, "people", "forget", "Someone", *where)
    assert code == 2 and "no person" in err
    code, out, _ = run(capsys, "visitors", "discard", str(second), "--json", *where)
    assert code == 0 and json.loads(out)["events_deleted"] == 3


def test_bench_visitors_on_a_small_part(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, faces_dev_dir: Path
) -> None:
    # 200 faces-dev people (each half needs 40 to calibrate), at most 4 photos each (links, not copies):
    # regulars and passers-by both. The video pipeline keeps a cold run short; the bench's own figures use
    # the photo pipeline.
    root = tmp_path / "labelled"
    for person in sorted(p for p in faces_dev_dir.iterdir() if p.is_dir())[:200]:
        (root / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:4]:
            (root / person.name / photo.name).symlink_to(photo)
    fast = ("--detector", "fast", "--no-mirror")
    code, out, _ = run(
        capsys, "bench", "visitors", "--root", str(root), "--scale-events", "300", "--json", "--quiet", *fast
    )
    report = json.loads(out)
    assert code == 0
    assert report["bcubed_precision"] >= 0.9 and report["bcubed_recall"] >= 0.8
    assert report["scale"]["events"] == 300 and report["events_per_second"] > 0
    assert {"clean", "poor, gate in force", "poor, no quality known"} <= set(report["quality_gate"])
    for half in report["halves"]:
        assert half["clustering"]["clicks"]["total"] >= half["regulars"] > 0
        assert half["naming"]["people_named"] > 0
    code, _, err = run(capsys, "bench", "visitors", "--root", str(tmp_path / "missing"))
    assert code == 2 and "no such folder" in err

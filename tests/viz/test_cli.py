"""``faceid viz`` on a gallery enrolled from faces-dev: the map, the curves and a before/after comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceid.cli import main

from .conftest import SmallGallery

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = [pytest.mark.slow]


def _png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000, path


def test_viz_writes_the_map_and_the_curves(small_gallery: SmallGallery, tmp_path: Path, capsys) -> None:
    out = tmp_path / "viz"
    code = main(["viz", "--data-dir", str(small_gallery.data_dir), "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    for name in ("map.png", "distances.png", "roc.png", "det.png"):
        _png(out / name)
    emap = json.loads((out / "map.json").read_text())
    assert len(emap["faces"]) == small_gallery.faces
    assert {p["name"] for p in emap["people"]} == set(small_gallery.people)
    assert len(emap["unknown"]) == small_gallery.unknown  # every stranger's snapshot has a face
    assert emap["method"] == "pca" and len(emap["details"]["explained_variance"]) == 2
    curves = json.loads((out / "curves.json").read_text())
    people, photos = len(small_gallery.people), small_gallery.faces // len(small_gallery.people)
    assert curves["same_pairs"] == people * photos * (photos - 1) // 2
    assert curves["different_pairs"] > curves["same_pairs"]
    # No calibration step in this store: it decides with the shipped calibration, in cohort-normalised scores.
    from faceid.store.shipped import load_shipped
    from faceid.store.versions import VersionedStore

    shipped = load_shipped(VersionedStore.default_model_id())
    assert shipped is not None and curves["unit"] == "cohort-normalised score"
    assert curves["threshold"] == pytest.approx(shipped.threshold_for(people), abs=1e-5)
    assert curves["threshold_label"].startswith("calibrated")
    assert curves["auc"] > 0.98  # faces of one person sit closer than faces of two, for the dlib model
    assert summary["map"]["faces"] == small_gallery.faces and len(summary["files"]) == 6


def test_viz_compares_two_models(small_gallery: SmallGallery, tmp_path: Path, capsys) -> None:
    import onnx
    from onnx import numpy_helper

    from faceid.vision.embed import descriptor_onnx_path

    before = Path(descriptor_onnx_path())
    # A stand-in for a fine-tuned model: the same network with noise on its fully connected layer.
    model = onnx.load(str(before))
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    weights = next(i for i in model.graph.initializer if i.name in matmul.input)
    values = numpy_helper.to_array(weights)
    noisy = values + np.random.default_rng(0).normal(0, values.std(), values.shape).astype(values.dtype)
    weights.CopyFrom(numpy_helper.from_array(noisy, weights.name))
    noisy = tmp_path / "noisy.onnx"
    onnx.save(model, str(noisy))
    # BEFORE as a file, AFTER as a model version stored in the gallery's store.
    from faceid.store.versions import VersionedStore

    with VersionedStore(small_gallery.data_dir) as store:
        after = store.register_version(noisy).model_id

    out = tmp_path / "viz"
    args = ["viz", "--data-dir", str(small_gallery.data_dir), "--out", str(out), "--unknown", "0"]
    assert main([*args, "--compare", str(before), after]) == 0
    printed = capsys.readouterr().out
    assert "before/after" in printed and "finetune.png" in printed
    _png(out / "finetune.png")
    data = json.loads((out / "finetune.json").read_text())
    assert len(data["before"]["map"]["faces"]) == len(data["after"]["map"]["faces"]) == small_gallery.faces
    # Each side is measured with its own model: same faces, other descriptors, other separation.
    assert data["before"]["model"] == before.name and data["after"]["model"] == after
    assert data["before"]["d_prime"] > 2 and data["after"]["d_prime"] != pytest.approx(data["before"]["d_prime"])
    assert data["before"]["map"]["faces"][0]["x"] != pytest.approx(data["after"]["map"]["faces"][0]["x"])


def test_viz_refuses_an_empty_gallery(tmp_path: Path, capsys) -> None:
    code = main(["viz", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "no faces" in capsys.readouterr().err

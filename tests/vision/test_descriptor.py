"""The ONNX descriptor against dlib's own compute_face_descriptor, on real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceid.vision.embed import DescriptorEmbedder

dlib = pytest.importorskip("dlib", reason="dlib-bin is needed for parity checks")


@pytest.fixture(scope="module")
def dlib_chips(faces_dev_dir: Path) -> np.ndarray:
    import face_recognition_models as frm
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    chips = []
    for path in sorted(faces_dev_dir.glob("*/*.jpg"))[::150][:40]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        found = detector(rgb, 1)
        if found:
            chips.append(dlib.get_face_chip(rgb, predictor(rgb, found[0]), size=150, padding=0.25))
    assert len(chips) >= 30
    return np.stack(chips)


def test_descriptor_matches_dlib(dlib_chips: np.ndarray) -> None:
    import face_recognition_models as frm

    model = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    reference = np.array([model.compute_face_descriptor(chip) for chip in dlib_chips])
    ours = DescriptorEmbedder().embed(dlib_chips)
    cosine = np.sum(reference * ours, axis=1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(ours, axis=1)
    assert cosine.min() >= 0.99999, cosine.min()
    assert np.abs(reference - ours).max() < 1e-4


def test_batches_agree_with_single_chips(dlib_chips: np.ndarray) -> None:
    embedder = DescriptorEmbedder(batch_size=7)
    batched = embedder.embed(dlib_chips[:10])
    single = np.concatenate([embedder.embed(c[None]) for c in dlib_chips[:10]])
    assert np.allclose(batched, single, atol=1e-5)


def test_mirror_averages_chip_and_flipped_chip(dlib_chips: np.ndarray) -> None:
    plain = DescriptorEmbedder()
    mirrored = DescriptorEmbedder(mirror=True)
    chips = dlib_chips[:4]
    expected = (plain.embed(chips) + plain.embed(chips[:, :, ::-1].copy())) / 2
    assert np.allclose(mirrored.embed(chips), expected, atol=1e-5)
    # Mirror averaging stays in the model's space: photo-enrolled faces and video frames are compared.
    assert mirrored.model_id == DescriptorEmbedder().model_id


def test_wrong_chip_shapes_are_refused() -> None:
    embedder = DescriptorEmbedder()
    with pytest.raises(ValueError, match="150"):
        embedder.embed(np.zeros((1, 100, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed(np.zeros((1, 150, 150, 3), np.float32))
    assert embedder.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)

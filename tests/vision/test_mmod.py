"""The MMOD detector on ONNX Runtime against dlib's own ``cnn_face_detection_model_v1``.

The quick tests compare a few small photos. Every photo of the media data set is compared only when
asked for with ``pytest -m slow`` (or ``-m "slow or not slow"``): dlib needs seconds per photo, so
that run takes minutes.
"""

from __future__ import annotations

import shutil
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from faceid.errors import ModelFileError
from faceid.models.mmod import load_mmod_model, read_mmod_network
from faceid.models.registry import dlib_model_path
from faceid.vision.mmod import (
    MmodDetector,
    pyramid_level_sizes,
    pyramid_up,
    resize_float_planes,
    resize_rgb_image,
    tiled_pyramid_layout,
)
from faceid.vision.types import Detector

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Small photos dlib gets through in about a second each; (name, upsample).
QUICK_CASES = [
    ("obama_small.jpg", 0),
    ("obama_small.jpg", 1),
    ("obama-240p.jpg", 0),
    ("alex-lacamoire.png", 0),
    ("kit_with_rose.jpg", 0),
]


def media_photos(media_dir: Path) -> list[Path]:
    return sorted(p for p in media_dir.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def dlib_module() -> Any:
    return pytest.importorskip("dlib", reason="dlib-bin is needed for parity checks")


@pytest.fixture(scope="module")
def dlib_cnn(dlib_module: Any) -> Any:
    return dlib_module.cnn_face_detection_model_v1(str(dlib_model_path("mmod")))


@pytest.fixture(scope="module")
def detectors() -> dict[int, MmodDetector]:
    return {upsample: MmodDetector(upsample=upsample) for upsample in (0, 1)}


def assert_same_as_dlib(dlib_cnn: Any, detector: MmodDetector, image: np.ndarray, label: str) -> None:
    expected = dlib_cnn(image, detector.upsample)
    found = detector.detect(image)
    expected_boxes = [(d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1) for d in expected]
    found_boxes = [tuple(int(v) for v in d.box) for d in found]
    assert found_boxes == expected_boxes, f"{label}: dlib {expected_boxes}, faceid {found_boxes}"
    for want, got in zip(expected, found, strict=True):
        assert abs(want.confidence - got.score) < 1e-3, f"{label}: dlib {want.confidence}, faceid {got.score}"
    # Boxes hold whole pixels, as dlib's rectangles do.
    assert all(np.array_equal(d.box, np.round(d.box)) for d in found)


@pytest.mark.dlib
@pytest.mark.parametrize(("name", "upsample"), QUICK_CASES)
def test_matches_dlib_on_small_photos(
    media_dir: Path, dlib_cnn: Any, detectors: dict[int, MmodDetector], name: str, upsample: int
) -> None:
    path = next((p for p in media_photos(media_dir) if p.name == name), None)
    if path is None:
        pytest.skip(f"{name} is not in the media data set")
    assert_same_as_dlib(dlib_cnn, detectors[upsample], load_rgb(path), f"{name} upsample={upsample}")


@pytest.mark.dlib
@pytest.mark.slow
def test_matches_dlib_on_every_media_photo(
    request: pytest.FixtureRequest, media_dir: Path, dlib_cnn: Any, detectors: dict[int, MmodDetector]
) -> None:
    # dlib takes minutes over the whole data set, so this runs only when asked for with -m slow.
    if "slow" not in (request.config.getoption("markexpr", "") or "").replace("not slow", ""):
        pytest.skip("dlib needs minutes for every media photo; run with -m slow")
    photos = media_photos(media_dir)
    assert len(photos) >= 10
    faces = 0
    for path in photos:
        image = load_rgb(path)
        assert_same_as_dlib(dlib_cnn, detectors[0], image, str(path.relative_to(media_dir)))
        faces += len(detectors[0].detect(image))
    assert faces >= len(photos) - 3  # nearly every photo shows a face the detector finds


@pytest.mark.dlib
def test_no_face_in_synthetic_images(dlib_cnn: Any, detectors: dict[int, MmodDetector]) -> None:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:300, 0:400]
    gradient = np.stack([x * 255 // 399, y * 255 // 299, (x + y) * 255 // 698], axis=2).astype(np.uint8)
    noisy = np.clip(gradient + rng.normal(0, 12, gradient.shape), 0, 255).astype(np.uint8)
    flat = np.full((120, 160, 3), 128, np.uint8)
    for label, image in (("gradient", noisy), ("flat", flat)):
        assert detectors[0].detect(image) == []
        assert_same_as_dlib(dlib_cnn, detectors[0], image, label)


@pytest.mark.dlib
def test_bilinear_resize_is_bit_exact(dlib_module: Any) -> None:
    """The pyramid levels and upsampling use dlib's resize_image arithmetic to the last bit."""
    rng = np.random.default_rng(3)
    for trial in range(40):
        rows, cols = (int(v) for v in rng.integers(2, 120, 2))
        if trial % 2:
            out_rows, out_cols = (int(v) for v in rng.integers(1, 250, 2))
        else:  # the 5/6 steps of the detector's pyramid
            out_rows, out_cols = max(1, rows * 5 // 6), max(1, cols * 5 // 6)
        planes = rng.standard_normal((3, rows, cols)).astype(np.float32)
        resized = np.empty((3, out_rows, out_cols), np.float32)
        resize_float_planes(planes, resized)
        for channel in range(3):
            expected = dlib_module.resize_image(np.ascontiguousarray(planes[channel]), out_rows, out_cols)
            assert np.array_equal(resized[channel], expected), (rows, cols, out_rows, out_cols)
        rgb = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
        assert np.array_equal(
            resize_rgb_image(rgb, out_rows, out_cols), dlib_module.resize_image(rgb, out_rows, out_cols)
        )


def test_pyramid_up_size() -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    assert pyramid_up(image).shape == (481, 642, 3)


def test_tiled_pyramid_layout() -> None:
    rows, cols = 480, 853
    sizes = pyramid_level_sizes(rows, cols, 6)
    assert sizes[:3] == [(480, 853), (400, 710), (333, 591)]
    assert all(h >= 5 for h, _ in sizes)
    layout = tiled_pyramid_layout(rows, cols, 6, 10, 11)
    assert layout.cols == cols + 22
    assert layout.rects[0] == (11, 11, 11 + cols - 1, 11 + rows - 1)
    for (left, top, right, bottom), (h, w) in zip(layout.rects, sizes, strict=False):
        assert (bottom - top + 1, right - left + 1) == (h, w)
        assert left >= 0 and right < layout.cols and top >= 0 and bottom < layout.rows
    for i, a in enumerate(layout.rects):
        for b in layout.rects[i + 1 :]:
            apart = a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]
            assert apart, (a, b)
    assert tiled_pyramid_layout(0, 10, 6, 10, 11).rects == ()


def test_config_read_from_the_file() -> None:
    config = load_mmod_model().config
    assert [(w.width, w.height) for w in config.windows] == [(80, 80)]
    assert config.nms_iou_threshold == pytest.approx(0.3383, abs=1e-4)
    assert (config.stride, config.offset) == (8, 14)
    assert (config.pyramid_padding, config.pyramid_outer_padding, config.pyramid_down) == (10, 11, 6)
    assert config.mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)


def test_truncated_or_wrong_model_file_is_refused(tmp_path: Path) -> None:
    original = dlib_model_path("mmod")
    truncated = tmp_path / "truncated_mmod.dat"
    truncated.write_bytes(original.read_bytes()[:50_000])
    with pytest.raises(ModelFileError, match=r"truncated_mmod\.dat"):
        load_mmod_model(truncated)
    # Past the checksum, the parser itself names the file when the stream ends early.
    with pytest.raises(ModelFileError, match=r"truncated_mmod\.dat"):
        read_mmod_network(truncated)

    tampered = tmp_path / "tampered_mmod.dat"
    shutil.copyfile(original, tampered)
    data = bytearray(tampered.read_bytes())
    data[-100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"tampered_mmod\.dat.*sha256"):
        load_mmod_model(tampered)

    with pytest.raises(ModelFileError, match="missing"):
        load_mmod_model(tmp_path / "absent.dat")


def test_inputs(detectors: dict[int, MmodDetector]) -> None:
    detector = detectors[0]
    assert isinstance(detector, Detector)
    assert detector.name == "mmod"
    assert detector.detect(np.zeros((0, 0, 3), np.uint8)) == []
    assert detector.detect(np.zeros((3, 3, 3), np.uint8)) == []  # too small for the network
    assert detector.detect(np.zeros((12, 9, 3), np.uint8)) == []
    assert detector.detect(np.full((64, 64), 90, np.uint8)) == []  # grey images are accepted
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="RGB"):
        detector.detect(np.zeros((64, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="upsample"):
        MmodDetector(upsample=-1)


def test_lower_threshold_finds_more(media_dir: Path) -> None:
    path = media_dir / "obama_small.jpg"
    if not path.is_file():
        pytest.skip("obama_small.jpg is not in the media data set")
    image = load_rgb(path)
    default = MmodDetector().detect(image)
    loose = MmodDetector(threshold=-1.0).detect(image)
    assert len(default) == 1
    assert len(loose) >= len(default)
    assert loose[0].score == pytest.approx(default[0].score)
    assert all(a.score >= b.score for a, b in pairwise(loose))

"""The compiled per-face steps (faceid.vision.kernels) give exactly what the numpy code gives.

The parity tests against dlib (test_landmarks.py, test_align.py) run on whichever path is active; these pin the
two paths to each other, on real photos, boxes partly outside the image, grey images and image views.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceid.vision import align, kernels
from faceid.vision.image import load_image
from faceid.vision.landmarks import ShapePredictorLandmarker

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed: only the numpy path runs")


def _photos(faces_dev_dir: Path, media_dir: Path) -> list[np.ndarray]:
    paths = sorted(faces_dev_dir.glob("*/*.jpg"))[::700][:8] + sorted(media_dir.glob("*.jpg"))[:4]
    return [load_image(p) for p in paths]


@pytest.fixture(scope="module")
def landmarkers() -> tuple[ShapePredictorLandmarker, ShapePredictorLandmarker]:
    return ShapePredictorLandmarker(compiled=True), ShapePredictorLandmarker(compiled=False)


def test_compiled_landmarks_equal_numpys(faces_dev_dir: Path, media_dir: Path, landmarkers) -> None:
    compiled, plain = landmarkers
    checked = 0
    for rgb in _photos(faces_dev_dir, media_dir):
        h, w = rgb.shape[:2]
        boxes = np.array(
            [
                [w * 0.25, h * 0.2, w * 0.75, h * 0.8],
                [-40, -30, w * 0.5, h * 0.5],  # partly outside: those feature pixels read 0
                [w * 0.6, h * 0.1, w + 50, h * 0.9],
                [10.5, 12.25, 90.75, 101.5],  # fractional corners
            ],
            np.float32,
        )
        for image in (rgb, rgb[:, :, ::-1], rgb[::2, ::2], rgb[..., 1], np.ascontiguousarray(rgb[..., 0])):
            for subpixel in (False, True):
                compiled.subpixel = plain.subpixel = subpixel
                a = compiled.landmarks_batch(image, boxes)
                b = plain.landmarks_batch(image, boxes)
                assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (4, 5, 2)
                assert np.array_equal(a, b)
                checked += 1
    compiled.subpixel = plain.subpixel = False
    assert checked >= 100


def test_compiled_chip_sampling_equals_numpys(faces_dev_dir: Path, media_dir: Path) -> None:
    rng = np.random.default_rng(0)
    for rgb in _photos(faces_dev_dir, media_dir):
        for _ in range(4):
            angle = rng.uniform(-0.6, 0.6)
            scale = rng.uniform(0.3, 2.5)
            linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            offset = rng.uniform(-60, max(rgb.shape[:2]) * 0.8, 2)  # some chips run off the image
            for source in (rgb, rgb[..., :1].copy()):
                a = kernels.sample_bilinear(source, linear, offset, 150, 120)
                b = align._sample_bilinear_numpy(source, linear, offset, 150, 120)
                assert np.array_equal(a, b)


def test_closed_form_chip_transform_matches_dlibs_pseudo_inverse() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        rect = tuple(float(v) for v in (*rng.uniform(-50, 400, 2), 0, 0))
        side = rng.uniform(20, 600)
        rect = (rect[0], rect[1], rect[0] + side, rect[1] + side)
        details = align.ChipDetails(rect=rect, angle=float(rng.uniform(-3, 3)), rows=150, cols=150)
        fast = align._chip_to_source(details, rect)
        reference = align._chip_to_source_pinv(details, rect)
        assert np.allclose(fast[0], reference[0], rtol=0, atol=1e-11)
        assert np.allclose(fast[1], reference[1], rtol=0, atol=1e-9)


def test_no_jit_switch_falls_back_to_numpy() -> None:
    code = "from faceid.vision import kernels, align; assert not kernels.AVAILABLE and not align.USE_KERNELS"
    env = {**os.environ, "FACEID_NO_JIT": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)

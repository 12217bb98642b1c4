"""Aligned face chips against dlib.get_face_chip / get_face_chips, and the descriptors computed on them."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from faceid.models.registry import dlib_model_path
from faceid.vision import align
from faceid.vision.align import FACE_TEMPLATE_5, chip_transform, face_chip, face_chip_details, face_chips
from faceid.vision.landmarks import ShapePredictorLandmarker

# Photos whose faces are large enough for dlib to go through its image pyramid (one level).
PYRAMID_PHOTOS = ["obama2.jpg", "lin-manuel-miranda.png", "test_images/32bit.png"]
OTHER_PHOTOS = ["obama.jpg", "obama-240p.jpg", "obama-1080p.jpg", "two_people.jpg", "alex-lacamoire.png"]


@pytest.fixture(scope="module")
def dlib_tools():
    dlib = pytest.importorskip("dlib", reason="dlib-bin is needed for parity checks")
    return dlib, dlib.shape_predictor(str(dlib_model_path("landmarks5"))), dlib.get_frontal_face_detector()


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))


def _points(shape) -> np.ndarray:
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def _pyramid_levels(details: align.ChipDetails) -> int:
    """How many times dlib halves the image before sampling this chip."""
    levels, rect = 0, details.rect
    while align._area(align._rect_down(rect)) > details.size:
        levels += 1
        rect = align._rect_down(rect)
    return levels


def _faces(dlib_tools, images: list[np.ndarray]) -> list[tuple[np.ndarray, object]]:
    """(image, dlib full_object_detection) for every face the HOG detector finds."""
    _, predictor, detector = dlib_tools
    return [(rgb, predictor(rgb, rect)) for rgb in images for rect in detector(rgb, 0)]


def _differences(dlib_tools, faces) -> tuple[list[float], int, np.ndarray, np.ndarray]:
    dlib = dlib_tools[0]
    means, worst, ours, theirs = [], 0, [], []
    for rgb, shape in faces:
        expected = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
        chip = face_chip(rgb, _points(shape))
        difference = np.abs(chip.astype(np.int16) - expected.astype(np.int16))
        means.append(float(difference.mean()))
        worst = max(worst, int(difference.max()))
        ours.append(chip)
        theirs.append(expected)
    return means, worst, np.stack(ours), np.stack(theirs)


@pytest.fixture(scope="module")
def lfw_faces(faces_dev_dir: Path, dlib_tools):
    paths = sorted(faces_dev_dir.glob("*/*.jpg"))[::25][:100]
    return _faces(dlib_tools, [_rgb(p) for p in paths])


@pytest.mark.dlib
def test_chips_match_dlib_on_lfw(lfw_faces, dlib_tools) -> None:
    means, worst, ours, theirs = _differences(dlib_tools, lfw_faces)
    print(
        f"\nchips vs dlib on LFW: {len(means)} faces, mean |diff| {np.mean(means):.4f}, "
        f"worst chip mean {max(means):.4f}, max {worst} grey levels"
    )
    assert len(means) >= 90
    assert np.mean(means) <= 1.0 and max(means) <= 1.0

    from faceid.vision.embed import DescriptorEmbedder

    embedder = DescriptorEmbedder()
    a, b = embedder.embed(ours[:40]), embedder.embed(theirs[:40])
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print(f"descriptor on our chip vs on dlib's: min cosine {cosine.min():.7f}")
    assert cosine.min() >= 0.99999


@pytest.mark.dlib
def test_whole_alignment_path_matches_dlib(lfw_faces, dlib_tools) -> None:
    """Our landmarks then our chip, from dlib's detection box, against dlib's predictor then dlib's chip."""
    dlib = dlib_tools[0]
    landmarker = ShapePredictorLandmarker()
    for rgb, shape in lfw_faces[:30]:
        rect = shape.rect
        box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float32)
        chip = face_chip(rgb, landmarker.landmarks(rgb, box))
        expected = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
        assert np.abs(chip.astype(np.int16) - expected).mean() <= 1.0


@pytest.mark.dlib
def test_chips_match_dlib_on_photos_including_pyramid(media_dir: Path, dlib_tools) -> None:
    dlib = dlib_tools[0]
    faces = _faces(dlib_tools, [_rgb(media_dir / name) for name in PYRAMID_PHOTOS + OTHER_PHOTOS])
    # Faces much larger than the chip send dlib through more pyramid levels: enlarge a crop of a 1080p portrait.
    from PIL import Image

    portrait = _rgb(media_dir / "obama-1080p.jpg")
    rect = dlib_tools[2](portrait, 0)[0]
    x0, y0 = max(rect.left() - 150, 0), max(rect.top() - 150, 0)
    crop = Image.fromarray(portrait[y0 : rect.bottom() + 150, x0 : rect.right() + 150])
    for factor in (2.2, 3.3):
        big = np.asarray(
            crop.resize((round(crop.width * factor), round(crop.height * factor)), Image.Resampling.BILINEAR)
        )
        corners = (rect.left() - x0, rect.top() - y0, rect.right() - x0, rect.bottom() - y0)
        box = dlib.rectangle(*(round(v * factor) for v in corners))
        faces.append((big, dlib_tools[1](big, box)))

    levels = [_pyramid_levels(face_chip_details(_points(shape))) for _, shape in faces]
    assert max(levels) >= 2 and levels.count(0) >= 3 and sum(1 for v in levels if v == 1) >= 3
    started = time.perf_counter()
    means, worst, _, _ = _differences(dlib_tools, faces)
    per_face = (time.perf_counter() - started) / len(faces)
    print(
        f"\nchips vs dlib on photos: {len(faces)} faces (pyramid levels {sorted(levels)}), "
        f"mean |diff| {np.mean(means):.4f}, max {worst} grey levels; {per_face * 1000:.1f} ms per face, both libraries"
    )
    assert np.mean(means) <= 1.0 and max(means) <= 1.0


@pytest.mark.dlib
def test_chips_match_dlib_for_any_pose_size_and_padding(media_dir: Path, dlib_tools) -> None:
    """Synthetic landmark sets: any rotation, scales from tiny to huge, faces partly or wholly off the image."""
    dlib = dlib_tools[0]
    rgb = _rgb(media_dir / "obama-720p.jpg")
    rng = np.random.default_rng(7)
    worst_mean = 0.0
    for _ in range(40):
        angle, scale = rng.uniform(-math.pi, math.pi), rng.uniform(0.2, 7.0)
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        centre = rng.uniform(-100, [rgb.shape[1] + 100, rgb.shape[0] + 100])
        points = np.round((FACE_TEMPLATE_5 * 100 - 50) @ rotation.T * scale + centre + rng.normal(0, 2, (5, 2)))
        size = int(rng.integers(8, 200))
        padding = float(np.float32(rng.choice([0.0, 0.1, 0.25, 0.5])))  # dlib's binding takes a float32
        shape = dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), [dlib.point(int(x), int(y)) for x, y in points])
        expected = dlib.get_face_chip(rgb, shape, size=size, padding=padding)
        chip = face_chip(rgb, points, size=size, padding=padding)
        assert chip.shape == expected.shape == (size, size, 3)
        worst_mean = max(worst_mean, float(np.abs(chip.astype(np.int16) - expected).mean()))
    assert worst_mean <= 1.0


@pytest.mark.dlib
def test_face_chips_match_dlib_get_face_chips(media_dir: Path, dlib_tools) -> None:
    from PIL import Image

    dlib, predictor, detector = dlib_tools
    photo = Image.open(media_dir / "two_people.jpg").convert("RGB")
    for factor in (1.0, 2.5):  # at 2.5x both faces go through a shared pyramid
        size = (round(photo.width * factor), round(photo.height * factor))
        rgb = np.ascontiguousarray(np.asarray(photo.resize(size)))
        rects = detector(np.ascontiguousarray(np.asarray(photo)), 0)
        shapes = dlib.full_object_detections()
        for r in rects:
            box = dlib.rectangle(*(round(v * factor) for v in (r.left(), r.top(), r.right(), r.bottom())))
            shapes.append(predictor(rgb, box))
        assert len(shapes) == 2
        points = [_points(s) for s in shapes]
        expected = dlib.get_face_chips(rgb, shapes, size=150, padding=0.25)
        shared = face_chips(rgb, points, shared_pyramid=True)
        separate = face_chips(rgb, points)
        for i, shape in enumerate(shapes):
            assert np.abs(shared[i].astype(np.int16) - expected[i]).mean() <= 1.0
            single = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
            assert np.abs(separate[i].astype(np.int16) - single).mean() <= 1.0
    assert face_chips(rgb, []).shape == (0, 150, 150, 3)


def test_chip_transform_maps_chip_to_image() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    points = np.array([[230.0, 118.0], [205.0, 121.0], [150.0, 125.0], [176.0, 124.0], [192.0, 170.0]])
    affine = chip_transform(points)
    assert affine.shape == (2, 3)
    # The landmarks land near the padded template in the chip.
    inverse = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
    in_chip = points @ inverse[:, :2].T + inverse[:, 2]
    template = (0.25 + FACE_TEMPLATE_5) / 1.5 * 150
    assert np.abs(in_chip - template).max() < 4
    # Without a pyramid, the chip is the image sampled bilinearly at the transformed pixel grid.
    chip = face_chip(rgb, points)
    ys, xs = np.mgrid[0:150, 0:150]
    x = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2]
    y = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    img = rgb.astype(np.float64)
    sampled = (1 - fy) * ((1 - fx) * img[y0, x0] + fx * img[y0, x0 + 1]) + fy * (
        (1 - fx) * img[y0 + 1, x0] + fx * img[y0 + 1, x0 + 1]
    )
    assert np.abs(sampled.astype(np.uint8).astype(np.int16) - chip).mean() < 0.01


def test_grey_images_and_input_checks() -> None:
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (240, 320), dtype=np.uint8)
    points = np.array([[190.0, 98.0], [165.0, 101.0], [110.0, 105.0], [136.0, 104.0], [152.0, 150.0]])
    chip = face_chip(grey, points, size=64)
    assert chip.shape == (64, 64)
    rgb_chip = face_chip(np.repeat(grey[..., None], 3, axis=2), points, size=64)
    assert np.array_equal(rgb_chip[..., 0], chip)
    with pytest.raises(ValueError):
        face_chip(grey.astype(np.float32), points)
    with pytest.raises(ValueError):
        face_chip(grey, points[:4])


def test_pyramid_down_is_dlibs_filter() -> None:
    rng = np.random.default_rng(4)
    for shape in [(11, 12, 3), (64, 101, 3), (9, 30, 1)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        image[:4] = 255  # the largest sums must not overflow
        wide = image.astype(np.int64)
        out_h, out_w = (shape[0] - 3) // 2, (shape[1] - 3) // 2
        weights = [1, 4, 6, 4, 1]
        rows = np.sum([w * wide[:, k : k + 2 * out_w : 2] for k, w in enumerate(weights)], axis=0)
        both = np.sum([w * rows[k : k + 2 * out_h : 2] for k, w in enumerate(weights)], axis=0)
        assert np.array_equal(align.pyramid_down(image), both // 256)
    assert align.pyramid_down(np.zeros((8, 100, 3), np.uint8)).shape == (0, 0, 3)
    grey = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    assert np.array_equal(align.pyramid_down(grey), align.pyramid_down(grey[..., None])[..., 0])

"""dlib's 5-point shape predictor read and run in numpy, against dlib's own on real faces."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from faceid.errors import ModelFileError
from faceid.models import shape_predictor as sp_module
from faceid.models.registry import dlib_model_path
from faceid.models.shape_predictor import ShapePredictorModel, decode_integer_stream, load_shape_predictor
from faceid.vision.landmarks import ShapePredictorLandmarker
from faceid.vision.types import Landmarker

# (dx, dy, grow): the detector's box, shifted, grown and shrunk, and pushed mostly out of the image.
BOX_VARIANTS = [(0, 0, 0), (6, -4, 0), (-9, 5, 12), (0, 0, -18), (-150, 0, 0)]


def _dlib_encode(value: int) -> bytes:
    """One integer in dlib's serialization: control byte (sign bit, length), then little-endian magnitude."""
    magnitude = abs(value)
    payload = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little")
    return bytes([len(payload) | (0x80 if value < 0 else 0)]) + payload


@pytest.fixture(scope="module")
def model() -> ShapePredictorModel:
    return load_shape_predictor()


@pytest.fixture(scope="module")
def landmarker(model: ShapePredictorModel) -> ShapePredictorLandmarker:
    return ShapePredictorLandmarker(model)


@pytest.fixture(scope="module")
def dlib_predictor():
    dlib = pytest.importorskip("dlib", reason="dlib-bin is needed for parity checks")
    return dlib, dlib.shape_predictor(str(dlib_model_path("landmarks5"))), dlib.get_frontal_face_detector()


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))


def _parity(dlib_predictor, landmarker: ShapePredictorLandmarker, images: list[np.ndarray]) -> tuple[float, int]:
    """Largest landmark difference from dlib over every detected face and box variant, and the number of boxes."""
    dlib, predictor, detector = dlib_predictor
    worst, count = 0.0, 0
    for rgb in images:
        for rect in detector(rgb, 0):
            boxes, expected = [], []
            for dx, dy, grow in BOX_VARIANTS:
                corners = (
                    rect.left() + dx - grow,
                    rect.top() + dy - grow,
                    rect.right() + dx + grow,
                    rect.bottom() + dy + grow,
                )
                r = dlib.rectangle(*corners)
                expected.append([[p.x, p.y] for p in predictor(rgb, r).parts()])
                boxes.append([r.left(), r.top(), r.right() + 1, r.bottom() + 1])
            ours = landmarker.landmarks_batch(rgb, np.array(boxes, dtype=np.float32))
            worst = max(worst, float(np.abs(ours - np.array(expected, dtype=np.float32)).max()))
            count += len(boxes)
    return worst, count


@pytest.mark.dlib
def test_landmarks_match_dlib_on_lfw(faces_dev_dir: Path, dlib_predictor, landmarker) -> None:
    paths = sorted(faces_dev_dir.glob("*/*.jpg"))[::25][:100]
    worst, count = _parity(dlib_predictor, landmarker, [_rgb(p) for p in paths])
    print(f"\nlandmarks vs dlib on LFW: {count} boxes, max difference {worst} px")
    assert count >= 5 * len(BOX_VARIANTS) * len(paths) // 6
    assert worst <= 0.01


@pytest.mark.dlib
def test_landmarks_match_dlib_on_photos(media_dir: Path, dlib_predictor, landmarker) -> None:
    names = ["obama-240p.jpg", "obama-480p.jpg", "obama-1080p.jpg", "two_people.jpg", "biden.jpg"]
    images = [_rgb(media_dir / name) for name in names if (media_dir / name).is_file()]
    worst, count = _parity(dlib_predictor, landmarker, images)
    print(f"\nlandmarks vs dlib on photos: {count} boxes, max difference {worst} px")
    assert count >= len(BOX_VARIANTS) * len(images)
    assert worst <= 0.01


@pytest.mark.dlib
def test_grey_images_and_views_match_dlib(faces_dev_dir: Path, dlib_predictor, landmarker) -> None:
    _, predictor, detector = dlib_predictor
    for path in sorted(faces_dev_dir.glob("*/*.jpg"))[::400][:10]:
        rgb = _rgb(path)
        # A grey image, and views that are not contiguous in memory (a crop, a channel of an RGB image).
        for image in (np.ascontiguousarray(rgb[..., 1]), rgb[5:-7, 3:-2], rgb[5:-7, 3:-2, 0]):
            dense = np.ascontiguousarray(image)
            for rect in detector(dense, 0):
                expected = np.array([[p.x, p.y] for p in predictor(dense, rect).parts()], dtype=np.float32)
                box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float32)
                assert np.array_equal(landmarker.landmarks(image, box), expected)


def test_landmarker_protocol_and_shapes(landmarker: ShapePredictorLandmarker) -> None:
    assert isinstance(landmarker, Landmarker)
    rgb = np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8)
    points = landmarker.landmarks(rgb, np.array([10, 20, 90, 100], dtype=np.float32))
    assert points.shape == (5, 2) and points.dtype == np.float32
    assert np.array_equal(points, np.floor(points))  # dlib's parts are whole pixels
    assert landmarker.landmarks_batch(rgb, np.zeros((0, 4), np.float32)).shape == (0, 5, 2)
    exact = ShapePredictorLandmarker(landmarker.model, subpixel=True).landmarks(rgb, np.array([10, 20, 90, 100]))
    assert np.abs(exact - points).max() <= 0.5
    with pytest.raises(ValueError):
        landmarker.landmarks(rgb.astype(np.float32), np.array([10, 20, 90, 100]))


def test_model_arrays(model: ShapePredictorModel) -> None:
    assert model.num_parts == 5
    assert (model.num_cascades, model.trees_per_cascade, model.splits_per_tree) == (15, 500, 15)
    assert model.pixels_per_cascade == 800
    assert model.leaf_values.shape == (15, 500, 16, 10)
    # The mean shape lies inside the unit box: eye corners above the nose.
    shape = model.initial_shape.reshape(5, 2)
    assert ((shape > 0) & (shape < 1)).all() and shape[4, 1] > shape[:4, 1].max()


def test_integer_stream_decoding_matches_reference_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    from faceid.models.dlib_serialize import DlibReader

    rng = np.random.default_rng(3)
    values = [0, 1, -1, 255, -256, 2**40, -(2**62), *rng.integers(-(2**31), 2**31, 5000).tolist()]
    raw = b"".join(_dlib_encode(int(v)) for v in values)
    reader = DlibReader(raw)
    assert [reader.int() for _ in values] == values
    assert decode_integer_stream(raw).tolist() == values
    # Walkers that never synchronise force the chunk-by-chunk fallback, which must agree.
    monkeypatch.setattr(sp_module, "_WALK_LEAD_IN", 0)
    monkeypatch.setattr(sp_module, "_WALK_CHUNK", 7)
    assert decode_integer_stream(raw).tolist() == values


def test_truncated_or_foreign_files_are_refused(tmp_path: Path) -> None:
    raw = dlib_model_path("landmarks5").read_bytes()
    with pytest.raises(ModelFileError):
        sp_module.parse_shape_predictor(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError):
        sp_module.parse_shape_predictor(_dlib_encode(2) + raw[1:])  # unknown version
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"\x0f" * 100)
    with pytest.raises(ModelFileError):
        load_shape_predictor(junk, use_cache=False)


def test_parsed_arrays_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: ShapePredictorModel) -> None:
    monkeypatch.setenv("FACEID_CACHE_DIR", str(tmp_path))
    started = time.perf_counter()
    first = load_shape_predictor()
    parse_seconds = time.perf_counter() - started
    cached = list((tmp_path / "models").glob("shape_predictor-*.npz"))
    assert len(cached) == 1 and not list((tmp_path / "models").glob("*.part"))
    started = time.perf_counter()
    second = load_shape_predictor()
    load_seconds = time.perf_counter() - started
    print(f"\nshape predictor: parse {parse_seconds * 1000:.0f} ms, cached load {load_seconds * 1000:.0f} ms")
    for name in ("initial_shape", "split_pixel_a", "split_threshold", "leaf_values", "anchor_idx", "deltas"):
        assert np.array_equal(getattr(first, name), getattr(model, name))
        assert np.array_equal(getattr(second, name), getattr(model, name))
    # A damaged cache is ignored and rewritten.
    cached[0].write_bytes(b"not an npz")
    assert np.array_equal(load_shape_predictor().leaf_values, model.leaf_values)
    assert np.load(cached[0])["leaf_values"].shape == model.leaf_values.shape


def test_reader_accepts_both_matrix_headers() -> None:
    """dlib marks its current matrix format with negated dimensions; older files have them positive."""
    from faceid.models.dlib_serialize import DlibReader

    elements = b"".join(_dlib_encode(m) + _dlib_encode(e) for m, e in [(3, -1), (-5, 2), (1, 0), (7, -3)])
    for rows, cols in [(-2, -2), (2, 2)]:
        matrix = DlibReader(_dlib_encode(rows) + _dlib_encode(cols) + elements).float_matrix()
        assert matrix.tolist() == [[1.5, -20.0], [1.0, 0.875]]

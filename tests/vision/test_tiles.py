"""Tiled detection (faceid.vision.tiles): small faces in big frames, each face once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceid.monitor.pipeline import PipelineOptions
from faceid.vision.blazeface import BlazeFaceDetector
from faceid.vision.tiles import detect_in_tiles, tile_regions


def test_tiles_cover_the_image_and_overlap() -> None:
    regions = tile_regions(1920, 1080, 3)
    assert len(regions) == 9
    assert regions[0][:2] == (0, 0) and regions[-1][2:] == (1920, 1080)
    first, second = regions[0], regions[1]
    assert second[0] < first[2]  # neighbours overlap
    assert (first[2] - second[0]) == pytest.approx(0.2 * (first[2] - first[0]), abs=2)
    covered = np.zeros((1080, 1920), bool)
    for x0, y0, x1, y1 in regions:
        covered[y0:y1, x0:x1] = True
    assert covered.all()


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    return BlazeFaceDetector("full", threads=1)


def frame_with(
    detector: BlazeFaceDetector, photo: Image.Image, face_px: int, at: tuple[int, int]
) -> tuple[np.ndarray, float]:
    """A grey 1920x1080 frame holding ``photo`` scaled so that its face is ``face_px`` wide; the face's centre x."""
    box = detector.detect(np.asarray(photo))[0].box
    scale = face_px / float(box[2] - box[0])
    small = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (1920, 1080), (128, 128, 128))
    canvas.paste(small, at)
    return np.asarray(canvas), at[0] + float(box[0] + box[2]) / 2 * scale


def test_a_small_face_in_a_big_frame_is_found_in_the_tiles_only(detector: BlazeFaceDetector, media_dir: Path) -> None:
    photo = Image.open(media_dir / "obama.jpg").convert("RGB")
    frame, centre_x = frame_with(detector, photo, 60, (1200, 500))
    assert detector.detect(frame) == []  # a tenth of 60 px is below what the detector sees
    found = detect_in_tiles(detector, frame, 3)
    assert len(found) == 1
    box = found[0].box
    assert abs((box[0] + box[2]) / 2 - centre_x) < 15 and 30 < box[2] - box[0] < 120


def test_a_face_seen_by_the_whole_frame_and_by_tiles_is_one_detection(
    detector: BlazeFaceDetector, media_dir: Path
) -> None:
    photo = Image.open(media_dir / "obama.jpg").convert("RGB")
    # On the line between two tiles' overlap, and big enough for the whole frame's pass.
    frame, _ = frame_with(detector, photo, 200, (560, 300))
    whole = detector.detect(frame)
    found = detect_in_tiles(detector, frame, 3)
    assert len(whole) == 1 and len(found) == 1
    assert detect_in_tiles(detector, frame, 1)[0].score == whole[0].score


def test_tiles_are_checked() -> None:
    with pytest.raises(ValueError):
        detect_in_tiles(BlazeFaceDetector("full", threads=1), np.zeros((10, 10, 3), np.uint8), 5)
    with pytest.raises(ValueError):
        PipelineOptions(detect_tiles=0)

"""Small faces in big images: the detector run on overlapping tiles of the image, and on the whole of it.

A detector with a fixed input (BlazeFace: 192 px) sees a 1920x1080 frame at a tenth of its size, and finds no
face under about 100 px wide there (bench/RESULTS.md, "Small faces in big frames"). Cut into N x N tiles that
overlap by a fifth of a tile, each tile is seen N times larger. The whole image is detected too, for faces
bigger than the overlap, and the detections are merged. Cost: N^2 + 1 detector runs.
"""

from __future__ import annotations

import numpy as np

from faceid.thresholds import DETECT_TILE_EDGE_PX, DETECT_TILE_OVERLAP
from faceid.vision.blazeface import weighted_nms
from faceid.vision.types import Detection, Detector

MAX_TILES = 4  # 4 x 4 tiles: 17 detector runs a frame


def tile_regions(width: int, height: int, tiles: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of ``tiles`` x ``tiles`` regions covering the image, neighbours overlapping."""
    tile_w = width / (tiles - (tiles - 1) * DETECT_TILE_OVERLAP)
    tile_h = height / (tiles - (tiles - 1) * DETECT_TILE_OVERLAP)
    regions = []
    for row in range(tiles):
        for column in range(tiles):
            x0 = round(column * tile_w * (1 - DETECT_TILE_OVERLAP))
            y0 = round(row * tile_h * (1 - DETECT_TILE_OVERLAP))
            x1 = width if column == tiles - 1 else min(width, round(x0 + tile_w))
            y1 = height if row == tiles - 1 else min(height, round(y0 + tile_h))
            regions.append((x0, y0, x1, y1))
    return regions


def _cut_by_edge(box: np.ndarray, region: tuple[int, int, int, int], width: int, height: int) -> bool:
    """Whether the box touches a side of its tile that is inside the image: a face the tile cut in two, which
    a neighbouring tile (or the whole image) sees whole."""
    x0, y0, x1, y1 = region
    edge = DETECT_TILE_EDGE_PX
    return bool(
        (x0 > 0 and box[0] <= x0 + edge)
        or (y0 > 0 and box[1] <= y0 + edge)
        or (x1 < width and box[2] >= x1 - edge)
        or (y1 < height and box[3] >= y1 - edge)
    )


def detect_in_tiles(detector: Detector, image: np.ndarray, tiles: int) -> list[Detection]:
    """Faces in an RGB image, looking at ``tiles`` x ``tiles`` overlapping tiles and at the whole; best first."""
    if not 1 <= tiles <= MAX_TILES:
        raise ValueError(f"tiles must be 1 to {MAX_TILES}, got {tiles}")
    if tiles == 1:
        return list(detector.detect(image))
    height, width = image.shape[:2]
    found: list[Detection] = list(detector.detect(image))
    for region in tile_regions(width, height, tiles):
        x0, y0, x1, y1 = region
        for detection in detector.detect(np.ascontiguousarray(image[y0:y1, x0:x1])):
            box = detection.box + np.array([x0, y0, x0, y0], np.float32)
            if _cut_by_edge(box, region, width, height):
                continue
            points = None if detection.keypoints is None else detection.keypoints + np.array([x0, y0], np.float32)
            found.append(Detection(box.astype(np.float32), detection.score, points))
    if len(found) < 2:
        return found
    # The same face seen in the whole image and in one or more tiles: one detection, blended.
    keypoints = [d.keypoints if d.keypoints is not None else np.zeros((0, 2), np.float32) for d in found]
    if len({k.shape for k in keypoints}) > 1:
        keypoints = [np.zeros((0, 2), np.float32) for _ in found]
    boxes, points, scores = weighted_nms(
        np.stack([d.box for d in found]), np.stack(keypoints), np.array([d.score for d in found], np.float32)
    )
    order = np.argsort(-scores, kind="stable")
    return [
        Detection(boxes[i].astype(np.float32).copy(), float(scores[i]), points[i].copy() if points[i].size else None)
        for i in order
    ]

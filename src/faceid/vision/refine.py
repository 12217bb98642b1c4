"""The photo detector: dlib's MMOD places the boxes, BlazeFace makes sure no face is missed.

dlib's shape predictor was trained on MMOD-like boxes, so landmarks (and chips, and descriptors) fitted in
MMOD's boxes are the most accurate faceid has (faces-dev pairs: mmod 98.75% against fast 98.72%, 99.11%
against 98.89% with mirror averaging). But MMOD over a whole photo costs ~0.8 s at 1080p on 2 cores and misses
faces under ~80 px unless the photo is upsampled. So:

* a photo of up to ``REFINE_FULL_MMOD_PIXELS`` goes through MMOD whole (dlib's exact boxes), and any face
  BlazeFace finds that MMOD did not (a small one) is added, its box placed as below;
* a larger photo goes through BlazeFace, and MMOD runs only on a crop around each face it found (twice the
  face's size), shrunk when the face is large and upsampled once when it is small: a cost per face, whatever
  the photo's size. A face MMOD does not confirm in its crop keeps BlazeFace's box.

Placing boxes on crops alone measured 98.94% on faces-dev pairs (with mirror averaging) against 99.11% for MMOD
on the whole 250 px photo, hence the whole-photo pass wherever it is affordable.
"""

from __future__ import annotations

import logging
from functools import cached_property

import numpy as np

from faceid.thresholds import (
    REFINE_CONTEXT,
    REFINE_FULL_MMOD_PIXELS,
    REFINE_MAX_FACE_PX,
    REFINE_MIN_FACE_PX,
    REFINE_MIN_IOU,
)
from faceid.vision.types import Detection

log = logging.getLogger(__name__)


class RefinedDetector:
    """BlazeFace's faces with MMOD's boxes (see the module's text)."""

    name = "photo"
    input_size: int | None = None  # the image at its own size (a pyramid of it)

    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        self.device = device
        self.threads = threads
        self.context = REFINE_CONTEXT
        self.max_face_px = REFINE_MAX_FACE_PX
        self.full_mmod_pixels = REFINE_FULL_MMOD_PIXELS

    @cached_property
    def finder(self) -> object:
        from faceid.vision.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(device=self.device, threads=self.threads)

    @cached_property
    def placer(self) -> object:
        from faceid.vision.mmod import MmodDetector

        return MmodDetector(device=self.device, threads=self.threads)

    def detect(self, image: np.ndarray) -> list[Detection]:
        from faceid.vision.blazeface import box_iou

        found: list[Detection] = self.finder.detect(image)  # type: ignore[attr-defined]
        if image.shape[0] * image.shape[1] > self.full_mmod_pixels:
            return [self._refine(image, detection) for detection in found]
        placed: list[Detection] = self.placer.detect(image)  # type: ignore[attr-defined]
        boxes = np.stack([d.box for d in placed]).astype(np.float64) if placed else np.zeros((0, 4))
        for detection in found:
            if len(boxes) and float(box_iou(np.asarray(detection.box, np.float64), boxes).max()) >= REFINE_MIN_IOU:
                continue  # MMOD has this face already
            placed.append(self._refine(image, detection))
        return placed

    def _refine(self, image: np.ndarray, detection: Detection) -> Detection:
        from PIL import Image

        from faceid.vision.blazeface import box_iou
        from faceid.vision.mmod import MmodDetector

        box = np.asarray(detection.box, np.float64)
        side = max(box[2] - box[0], box[3] - box[1])
        margin = self.context * side
        height, width = image.shape[:2]
        left, top = int(max(0, np.floor(box[0] - margin))), int(max(0, np.floor(box[1] - margin)))
        right, bottom = int(min(width, np.ceil(box[2] + margin))), int(min(height, np.ceil(box[3] + margin)))
        crop = np.ascontiguousarray(image[top:bottom, left:right])
        scale = min(1.0, self.max_face_px / max(side, 1.0))
        if scale < 1.0:  # a large face: MMOD sees it smaller, for a fraction of the cost
            size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
            crop = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
            scale = crop.shape[1] / (right - left)
        placer: MmodDetector = self.placer  # type: ignore[assignment]
        if side * scale < REFINE_MIN_FACE_PX:
            placer = MmodDetector(upsample=1, device=self.device, threads=self.threads)
            placer.__dict__["session"] = self.placer.session  # type: ignore[attr-defined]
            placer.__dict__["model"] = self.placer.model  # type: ignore[attr-defined]
        candidates = placer.detect(crop)
        if not candidates:
            return detection
        boxes = np.stack([c.box for c in candidates]).astype(np.float64) / scale + [left, top, left, top]
        overlaps = box_iou(box, boxes)
        best = int(np.argmax(overlaps))
        if overlaps[best] < REFINE_MIN_IOU:
            return detection
        return Detection(boxes[best].astype(np.float32), detection.score, detection.keypoints)

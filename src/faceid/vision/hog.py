"""dlib's HOG face detector: slow and frontal-only, kept as a fallback. Needs the optional ``dlib-bin``."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from faceid.errors import ModelUnavailableError
from faceid.vision.types import Detection


class HogDetector:
    name = "hog"
    input_size: int | None = None  # the image at its own size (a pyramid of it)

    def __init__(self, upsample: int = 1) -> None:
        self.upsample = upsample

    @cached_property
    def _detector(self) -> Any:
        try:
            import dlib
        except ImportError:
            raise ModelUnavailableError("the hog detector needs dlib: pip install dlib-bin") from None
        return dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(image, self.upsample, 0.0)
        found = [
            Detection(np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float32), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(found, key=lambda d: -d.score)

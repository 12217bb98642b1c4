"""Self-calibration per camera: each camera's own strangers adjust its threshold to its light and angles.

A camera sees mostly strangers. The descriptors of its unknown tracks (their templates, kept in the events)
form a per-camera background set, bounded to the most recent ``CAMERA_COHORT_MAX`` events (oldest out). It
never holds an enrolled face, and unknowns that came close to an enrolled person are left out, so that a
missed known face cannot teach the camera to hide that person.

Once ``CAMERA_COHORT_MIN`` such strangers exist, their typical (median) best score against the gallery is
compared with what the model's calibration expects of a stranger for a gallery of that size. A camera whose
strangers look more alike to the gallery than the calibration's did (a low, blurred or back-lit view, where
faces drift together) gets a stricter threshold, scaled by the ratio, by at most ``CAMERA_MAX_ADJUSTMENT``.
It never gets a looser one: on faces-dev, strangers through the video pipeline scored 2-3% less alike than
expected, and loosening the threshold by that much let 1.5-2x as many strangers through (bench/RESULTS.md,
"Decisions out of the box"). The median is used because leaving out the unknowns closest to enrolled people
moves the low tail, not the middle.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from faceid.thresholds import (
    CAMERA_COHORT_CLEARANCE,
    CAMERA_COHORT_MAX,
    CAMERA_COHORT_MIN,
    CAMERA_MAX_ADJUSTMENT,
    CAMERA_REFRESH_SECONDS,
)

if TYPE_CHECKING:
    from faceid.store.match import Matcher


@dataclass(frozen=True)
class CameraCalibration:
    """What is in force for one camera: the scale applied to the model's threshold, and why."""

    camera: str
    model_id: str
    strangers: int  # unknown tracks kept as this camera's strangers
    left_out: int  # unknown tracks left out for lying close to an enrolled person
    scale: float  # multiplies the model's threshold (1.0 until enough strangers were seen)
    typical_score: float | None  # the median best score of this camera's strangers
    expected_score: float | None  # what the model's calibration expects for this gallery size

    @property
    def active(self) -> bool:
        return self.strangers >= CAMERA_COHORT_MIN

    def to_dict(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "model_id": self.model_id,
            "in_force": "camera" if self.active else "model",
            "strangers": self.strangers,
            "left_out": self.left_out,
            "needed": CAMERA_COHORT_MIN,
            "scale": round(self.scale, 4),
            "typical_score": None if self.typical_score is None else round(self.typical_score, 4),
            "expected_score": None if self.expected_score is None else round(self.expected_score, 4),
        }


def adjust(camera: str, templates: list[np.ndarray], matcher: Matcher) -> CameraCalibration:
    """The camera's calibration from the templates of its recent unknown tracks (newest first)."""
    model_id = matcher.gallery.model_id
    calibration = matcher.calibration
    base = matcher.threshold()
    kept: list[float] = []
    left_out = 0
    for template in templates[:CAMERA_COHORT_MAX]:
        ranked = matcher.rank(np.asarray(template, np.float32), 1)
        if not ranked:
            continue
        if ranked[0].score <= base * CAMERA_COHORT_CLEARANCE:
            left_out += 1  # close to an enrolled person: maybe a missed known face, never a stranger to learn
            continue
        kept.append(ranked[0].score)
    expected = None
    if calibration is not None and matcher.calibrated:
        expected = calibration.typical_best_score(matcher.gallery.people_count(refresh=False))
    typical = float(np.median(kept)) if kept else None
    scale = 1.0
    if len(kept) >= CAMERA_COHORT_MIN and typical is not None and expected:
        scale = float(np.clip(typical / expected, 1.0 - CAMERA_MAX_ADJUSTMENT, 1.0))
    return CameraCalibration(camera, model_id, len(kept), left_out, scale, typical, expected)


class CameraCalibrations:
    """Per-camera calibrations, recomputed at most every ``CAMERA_REFRESH_SECONDS`` or when the gallery
    or the model changes."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[float, Any, CameraCalibration]] = {}
        self._lock = threading.Lock()

    def get(self, camera: str, matcher: Matcher, load: Any, version: Any) -> CameraCalibration:
        key = (camera, matcher.gallery.model_id)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[1] == version and now - cached[0] < CAMERA_REFRESH_SECONDS:
            return cached[2]
        result = adjust(camera, load(), matcher)
        with self._lock:
            self._cache[key] = (now, version, result)
        return result

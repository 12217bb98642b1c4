"""How good a detected face is for recognition: its size, sharpness and pose, each in [0, 1], multiplied.

The three are cheap enough to compute for every detection of every frame (a 48 x 48 grey crop and the
detector's own keypoints, no extra network), which is what lets the monitor choose the few frames of a
track worth the descriptor's cost, and weigh each frame's vote. The constants and what they were measured
on are in ``faceid.thresholds`` (Monitor section).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from faceid.thresholds import (
    MONITOR_EYE_RATIO_FRONTAL,
    MONITOR_EYE_RATIO_PROFILE,
    MONITOR_FULL_QUALITY_FACE_PX,
    MONITOR_SHARPNESS_HALF,
)
from faceid.vision.types import Detection

SHARPNESS_SIZE = 48  # faces are compared for sharpness at one scale, so a big face is not sharper by size alone
RIGHT_EYE, LEFT_EYE = 0, 1  # BlazeFace's keypoint order (see faceid.vision.blazeface.KEYPOINT_NAMES)


@dataclass(frozen=True)
class Quality:
    size: float  # the box's smaller side, in pixels
    sharpness: float  # variance of the Laplacian of the face, grey levels squared, at SHARPNESS_SIZE
    eye_ratio: float | None  # distance between the eyes / box width (lower = more turned); None without keypoints
    size_score: float
    sharpness_score: float
    pose_score: float

    @property
    def score(self) -> float:
        return self.size_score * self.sharpness_score * self.pose_score

    def to_dict(self) -> dict[str, float | None]:
        return {
            "score": round(self.score, 4),
            "size": round(self.size, 1),
            "sharpness": round(self.sharpness, 1),
            "eye_ratio": None if self.eye_ratio is None else round(self.eye_ratio, 3),
        }


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: high for in-focus edges, near zero for a blurred face."""
    g = grey.astype(np.float32)
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var()) if lap.size else 0.0


def sharpness(rgb: np.ndarray, box: np.ndarray) -> float:
    height, width = rgb.shape[:2]
    x1, y1 = max(0, round(float(box[0]))), max(0, round(float(box[1])))
    x2, y2 = min(width, round(float(box[2]))), min(height, round(float(box[3])))
    if x2 - x1 < 3 or y2 - y1 < 3:
        return 0.0
    crop = Image.fromarray(np.ascontiguousarray(rgb[y1:y2, x1:x2])).convert("L")
    return laplacian_variance(np.asarray(crop.resize((SHARPNESS_SIZE, SHARPNESS_SIZE), Image.Resampling.BILINEAR)))


def eye_ratio(detection: Detection) -> float | None:
    """Distance between the eyes over the box's width: ~0.45 for a frontal face, ~0.1 in profile.

    It follows yaw more steadily than where the nose falls between the eyes, which BlazeFace places
    poorly once the face turns.
    """
    points = detection.keypoints
    if points is None or len(points) < 2 or detection.width <= 0:
        return None
    return float(np.linalg.norm(points[LEFT_EYE] - points[RIGHT_EYE]) / detection.width)


def assess(rgb: np.ndarray, detection: Detection) -> Quality:
    side = min(detection.width, detection.height)
    variance = sharpness(rgb, detection.box)
    ratio = eye_ratio(detection)
    size_score = float(np.clip(side / MONITOR_FULL_QUALITY_FACE_PX, 0.0, 1.0))
    sharpness_score = variance / (variance + MONITOR_SHARPNESS_HALF)
    if ratio is None:
        pose_score = 0.5  # no keypoints (another detector): neither reward nor rule out
    else:
        span = MONITOR_EYE_RATIO_FRONTAL - MONITOR_EYE_RATIO_PROFILE
        pose_score = float(np.clip((ratio - MONITOR_EYE_RATIO_PROFILE) / span, 0.0, 1.0))
    return Quality(side, variance, ratio, size_score, sharpness_score, pose_score)

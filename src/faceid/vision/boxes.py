"""Arithmetic on face boxes ``(x1, y1, x2, y2)``, shared by the tracker, event faces and the gallery maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def iou(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Intersection over union of two boxes (0 when they do not overlap or have no area)."""
    inter_w = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    inter_h = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = inter_w * inter_h
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0

"""Follows faces from frame to frame, so that one appearance of a person is one track (and one event).

A plain greedy tracker on box overlap, with a constant-velocity prediction so that a face moving fast, or
detected only every other frame, still lands on its own track. It has no appearance model (the monitor
runs the descriptor on only a few frames of each track), so a cut in an edited video could hand a track
from one face to another one near the same place in the next shot: the monitor detects cuts
(:class:`CutDetector`) and ends every track at one.

A track is *confirmed* once it has been detected ``min_hits`` times: a single spurious detection (a hand,
a poster) never becomes an event. It *ends* when no detection has matched it for ``max_gap`` seconds; the
gap bridges a few missed detections (a face turning away for a moment) without splitting the appearance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from faceid.thresholds import (
    MONITOR_TRACK_MAX_CENTRE_SHIFT,
    MONITOR_TRACK_MAX_GAP_SECONDS,
    MONITOR_TRACK_MIN_HITS,
    MONITOR_TRACK_MIN_IOU,
)
from faceid.vision.boxes import iou
from faceid.vision.image import sample_grid
from faceid.vision.types import Detection

VELOCITY_SMOOTHING = 0.5  # weight of the newest displacement in the running velocity
PREDICTION_HORIZON_SECONDS = 0.3
MAX_SIZE_CHANGE = 1.25  # a face matched by centre alone may not grow or shrink more than this between detections


@dataclass
class Track:
    id: int
    box: np.ndarray  # (4,) x1 y1 x2 y2: the last detected box, moved by the velocity on frames without one
    first_time: float
    first_wall: datetime
    first_index: int
    last_time: float  # of the last detection
    last_wall: datetime
    last_index: int
    hits: int = 1
    confirmed: bool = False
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))  # pixels per second
    detection: Detection | None = None  # the detection of the current frame, None when predicted
    _last_box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32), repr=False)

    def predicted(self, time: float) -> np.ndarray:
        # Extrapolating a velocity for long drifts the box away from a face that stopped; a short horizon
        # covers the frames between two detections and a few missed ones.
        return self._last_box + self.velocity * min(float(time - self.last_time), PREDICTION_HORIZON_SECONDS)

    @property
    def duration(self) -> float:
        return self.last_time - self.first_time


def similarity(predicted: np.ndarray, box: np.ndarray, min_iou: float, max_shift: float) -> float:
    """How well a detection continues a track: its overlap with the prediction, or, for a small fast face
    that overlaps too little, a lower score that falls with the shift of its centre (in face sizes)."""
    overlap = iou(predicted, box)
    if overlap >= min_iou:
        return overlap
    side_a = float(np.sqrt(max((predicted[2] - predicted[0]) * (predicted[3] - predicted[1]), 1e-6)))
    side_b = float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)))
    if not 1 / MAX_SIZE_CHANGE <= side_a / side_b <= MAX_SIZE_CHANGE:
        return 0.0
    shift_x = (predicted[0] + predicted[2] - box[0] - box[2]) / 2
    shift_y = (predicted[1] + predicted[3] - box[1] - box[3]) / 2
    shift = float(np.hypot(shift_x, shift_y))
    relative = shift / ((side_a + side_b) / 2)
    return min_iou * (1.0 - relative / max_shift) if relative < max_shift else 0.0


class Tracker:
    def __init__(
        self,
        *,
        min_iou: float = MONITOR_TRACK_MIN_IOU,
        max_shift: float = MONITOR_TRACK_MAX_CENTRE_SHIFT,
        max_gap: float = MONITOR_TRACK_MAX_GAP_SECONDS,
        min_hits: int = MONITOR_TRACK_MIN_HITS,
    ) -> None:
        self.min_iou = min_iou
        self.max_shift = max_shift
        self.max_gap = max_gap
        self.min_hits = min_hits
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(
        self, time: float, wall: datetime, index: int, detections: list[Detection] | None
    ) -> tuple[list[Track], list[Track]]:
        """Advance to a frame. ``detections`` None means the frame was not run through the detector: tracks
        only move by their velocity. Returns (tracks alive after this frame, tracks that ended before it)."""
        # Tracks unseen for too long end before matching: after a pause in the frames (a stream that dropped
        # and came back) a face at the same place is a new appearance, not the old one continuing.
        ended = [t for t in self.tracks if time - t.last_time > self.max_gap]
        self.tracks = [t for t in self.tracks if time - t.last_time <= self.max_gap]
        for track in self.tracks:
            track.detection = None
            track.box = track.predicted(time)
        if detections is not None:
            self._match(time, wall, index, detections)
        return self.tracks, [t for t in ended if t.confirmed]

    def _match(self, time: float, wall: datetime, index: int, detections: list[Detection]) -> None:
        pairs = []
        for ti, track in enumerate(self.tracks):
            for di, detection in enumerate(detections):
                score = similarity(track.box, detection.box, self.min_iou, self.max_shift)
                if score > 0:
                    pairs.append((score, ti, di))
        pairs.sort(key=lambda p: -p[0])
        used_tracks: set[int] = set()
        used_detections: set[int] = set()
        for _, ti, di in pairs:
            if ti in used_tracks or di in used_detections:
                continue
            used_tracks.add(ti)
            used_detections.add(di)
            self._extend(self.tracks[ti], time, wall, index, detections[di])
        for di, detection in enumerate(detections):
            if di not in used_detections:
                self.tracks.append(self._start(time, wall, index, detection))

    def _start(self, time: float, wall: datetime, index: int, detection: Detection) -> Track:
        box = np.asarray(detection.box, np.float32).copy()
        track = Track(self._next_id, box.copy(), time, wall, index, time, wall, index, detection=detection)
        track._last_box = box
        track.confirmed = self.min_hits <= 1
        self._next_id += 1
        return track

    def _extend(self, track: Track, time: float, wall: datetime, index: int, detection: Detection) -> None:
        box = np.asarray(detection.box, np.float32).copy()
        elapsed = time - track.last_time
        if elapsed > 0:
            step = (box - track._last_box) / elapsed
            track.velocity = (1 - VELOCITY_SMOOTHING) * track.velocity + VELOCITY_SMOOTHING * step
        track._last_box = box
        track.box = box.copy()
        track.detection = detection
        track.last_time, track.last_wall, track.last_index = time, wall, index
        track.hits += 1
        if track.hits >= self.min_hits:
            track.confirmed = True

    def finish(self) -> list[Track]:
        """End every track (the source ended, or the shot changed); returns the confirmed ones."""
        ended, self.tracks = self.tracks, []
        return [t for t in ended if t.confirmed]


class CutDetector:
    """Notices a change of shot: the mean absolute difference of two consecutive frames, on an 18 x 32 grid of
    pixels (grey levels), above ``threshold``. Sampling single pixels rather than averaging costs ~0.1 ms a
    frame at 640x360 and separates cuts from motion as well (see MONITOR_CUT_THRESHOLD)."""

    GRID = (18, 32)

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._previous: np.ndarray | None = None

    def is_cut(self, rgb: np.ndarray) -> bool:
        """``rgb``: the frame, or its pixels already sampled on the grid (:meth:`Frame.grid`)."""
        thumbnail = sample_grid(rgb, *self.GRID).astype(np.float32).mean(axis=2)
        previous, self._previous = self._previous, thumbnail
        if previous is None or previous.shape != thumbnail.shape or self.threshold <= 0:
            return False
        return float(np.abs(thumbnail - previous).mean()) > self.threshold

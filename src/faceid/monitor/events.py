"""One event per appearance: what the monitor emits, how it is keyed, and how it travels.

The idempotency key is derived only from what a re-run sees again: the camera, the source's identity, the
track's start (media time for a file, wall-clock time for a live source) and the track's number. Processing
the same file twice, or again after a crash, gives every appearance the same key, so the store and the
server keep each one once; two live runs never share a key because their clocks differ.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from PIL import Image

from faceid.thresholds import MONITOR_CROP_MARGIN, MONITOR_CROP_MAX_PX, MONITOR_SNAPSHOT_JPEG_QUALITY

KEY_PREFIX = "mon-"


def idempotency_key(camera: str, source_identity: str, instant: float, track_id: int) -> str:
    """A key unique to one appearance: ``instant`` is in seconds (media time, or a Unix time for live)."""
    basis = f"{camera}|{source_identity}|{round(instant * 1000)}|{track_id}"
    return KEY_PREFIX + hashlib.sha256(basis.encode()).hexdigest()[:40]


def encode_jpeg(rgb: np.ndarray, quality: int = MONITOR_SNAPSHOT_JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def face_crop(rgb: np.ndarray, box: np.ndarray, margin: float = MONITOR_CROP_MARGIN) -> tuple[np.ndarray, list[int]]:
    """The face with ``margin`` box-sides of context around it (clipped to the frame), at most
    MONITOR_CROP_MAX_PX on its longer side; and the crop's rectangle in the frame."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    pad_x, pad_y = margin * (x2 - x1), margin * (y2 - y1)
    left, top = max(0, int(x1 - pad_x)), max(0, int(y1 - pad_y))
    right, bottom = min(width, int(np.ceil(x2 + pad_x))), min(height, int(np.ceil(y2 + pad_y)))
    crop = rgb[top:bottom, left:right]
    longest = max(crop.shape[:2]) if crop.size else 0
    if longest > MONITOR_CROP_MAX_PX:
        scale = MONITOR_CROP_MAX_PX / longest
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.Resampling.BILINEAR))
    return crop, [left, top, right, bottom]


@dataclass
class MonitorEvent:
    key: str
    camera: str
    source: str
    track_id: int
    start: datetime
    end: datetime
    media_start: float
    media_end: float
    person_id: int | None
    name: str | None
    confidence: float
    distance: float | None
    score: float | None
    threshold: float | None
    share: float
    votes: dict[str, float]
    detections: int  # frames in which the face was detected
    embedded: int  # frames whose descriptor voted
    model_id: str
    box: list[float] | None  # the best face, in the snapshot frame's pixels
    frame_time: float | None  # media time of the snapshot frame
    quality: dict[str, Any] = field(default_factory=dict)
    snapshot: bytes | None = field(default=None, repr=False)  # JPEG of the best face's frame
    crop: bytes | None = field(default=None, repr=False)  # JPEG of the best face, with some context
    crop_box: list[int] | None = None
    ambiguous: bool = False  # two people passed, too close to call: nobody named
    stranger_rate: float | None = None  # the calibration's share of strangers who would score this well
    # The track's template descriptor, kept with unknown events only: the camera's own strangers, from which
    # its threshold adapts (faceid.store.camera). Never shown in event lists.
    template: np.ndarray | None = field(default=None, repr=False)

    @property
    def known(self) -> bool:
        return self.person_id is not None

    @property
    def outcome(self) -> str:
        return "known" if self.known else ("ambiguous" if self.ambiguous else "unknown")

    def metadata(self, with_crop: bool = True) -> dict[str, Any]:
        """Everything beyond the store's event columns (kept in the event's metadata)."""
        meta: dict[str, Any] = {
            "monitor": 1,
            "name": self.name,
            "outcome": self.outcome,
            "stranger_rate": None if self.stranger_rate is None else float(f"{self.stranger_rate:.3g}"),
            "end": self.end.isoformat(),
            "duration": round(self.media_end - self.media_start, 3),
            "media_start": round(self.media_start, 3),
            "media_end": round(self.media_end, 3),
            "source": self.source,
            "score": None if self.score is None else round(self.score, 5),
            "threshold": None if self.threshold is None else round(self.threshold, 5),
            "share": round(self.share, 4),
            "votes": self.votes,
            "detections": self.detections,
            "embedded": self.embedded,
            "frame_time": None if self.frame_time is None else round(self.frame_time, 3),
            "quality": self.quality,
        }
        if self.template is not None and not self.known:
            meta["template"] = [round(float(v), 6) for v in np.asarray(self.template).reshape(-1)]
        if with_crop and self.crop is not None:
            meta["crop_jpeg"] = base64.b64encode(self.crop).decode("ascii")
            meta["crop_box"] = self.crop_box
        return meta

    def to_dict(self) -> dict[str, Any]:
        """The JSON line ``faceid monitor --json`` prints (images left out, their sizes given)."""
        return {
            "key": self.key,
            "camera": self.camera,
            "track_id": self.track_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "media_start": round(self.media_start, 3),
            "media_end": round(self.media_end, 3),
            "known": self.known,
            "outcome": self.outcome,
            "stranger_rate": None if self.stranger_rate is None else float(f"{self.stranger_rate:.3g}"),
            "person_id": self.person_id,
            "name": self.name,
            "confidence": round(self.confidence, 4),
            "distance": None if self.distance is None else round(self.distance, 4),
            "score": None if self.score is None else round(self.score, 4),
            "threshold": None if self.threshold is None else round(self.threshold, 4),
            "share": round(self.share, 4),
            "votes": self.votes,
            "detections": self.detections,
            "embedded": self.embedded,
            "box": self.box,
            "frame_time": None if self.frame_time is None else round(self.frame_time, 3),
            "quality": self.quality,
            "model_id": self.model_id,
            "snapshot_bytes": len(self.snapshot) if self.snapshot else 0,
            "crop_bytes": len(self.crop) if self.crop else 0,
        }

    def upload_fields(self) -> dict[str, str]:
        """The form fields of ``POST /api/v1/events`` (the snapshot goes as the file part)."""
        import json

        fields = {
            "source": self.camera,
            "time": self.start.isoformat(),
            "track_id": str(self.track_id),
            "model_id": self.model_id,
            "confidence": f"{min(max(self.confidence, 0.0), 1.0):.6f}",
            "metadata": json.dumps(self.metadata(), separators=(",", ":")),
            "idempotency_key": self.key,
        }
        if self.person_id is not None:
            fields["person_id"] = str(self.person_id)
        if self.distance is not None:
            fields["distance"] = f"{self.distance:.6f}"
        if self.box is not None:
            fields["box"] = json.dumps([round(v, 2) for v in self.box])
        return fields

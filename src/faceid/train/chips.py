"""Aligned 150x150 face chips for labelled photos, cached on disk so that a rerun skips detection.

A photo's chip comes from its stored landmarks when it has them (gallery faces), else from
landmarks fitted in its given box (CelebA's csv), else from the face the detector finds (the
largest, or the one nearest the centre for pre-cropped sets such as LFW). Photos that cannot be
read or show no face are counted and left out, so one bad file never stops a fine-tune.
"""

from __future__ import annotations

import hashlib
import io
import logging
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from faceid.errors import ImageError
from faceid.paths import cache_dir
from faceid.train.datasets import Photo
from faceid.vision.align import face_chips
from faceid.vision.analyzer import CHIP_PADDING, CHIP_SIZE, Analyzer
from faceid.vision.image import load_image
from faceid.vision.types import Detection

log = logging.getLogger(__name__)

PICKS = ("largest", "central")
UNREADABLE = "unreadable image"
NO_FACE = "no face found"


@dataclass
class ChipSet:
    photos: list[Photo]  # the photos that gave a chip, in order
    chips: np.ndarray  # (N, 150, 150, 3) uint8
    detected: np.ndarray  # (N,) bool: False where the face was placed by the fallback box
    failures: Counter[str] = field(default_factory=Counter)
    failed: list[tuple[Photo, str]] = field(default_factory=list)


class ChipCache:
    """(configuration, photo file identity, given box/landmarks) -> chip, in one SQLite file.

    A file's identity is its absolute path, size and modification time, so an edited photo is
    redone. Chips are stored as lossless PNG: the descriptor sees exactly the cached pixels.
    """

    def __init__(self, config: str, path: Path | None = None) -> None:
        self.config = config
        self.path = path or cache_dir() / "chips.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS chips (key TEXT PRIMARY KEY, found INTEGER, box BLOB, chip BLOB)")

    def key(self, photo: Photo) -> str:
        stat = photo.path.stat()
        raw = f"{self.config}|{photo.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{photo.box}|{photo.landmarks}"
        return hashlib.sha1(raw.encode()).hexdigest()

    def get(self, key: str) -> tuple[bool, np.ndarray | None, np.ndarray | None] | None:
        """(face found, detected box or None, chip or None), or None when the photo is not cached."""
        row = self._db.execute("SELECT found, box, chip FROM chips WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        found, box, blob = row
        box_array = np.frombuffer(box, np.float32).copy() if box is not None else None
        if blob is None:
            return bool(found), box_array, None
        return bool(found), box_array, np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))

    def put(self, key: str, found: bool, box: np.ndarray | None, chip: np.ndarray | None) -> None:
        blob = None
        if chip is not None:
            buffer = io.BytesIO()
            Image.fromarray(chip).save(buffer, format="PNG", compress_level=1)
            blob = buffer.getvalue()
        box_blob = None if box is None else np.asarray(box, np.float32).tobytes()
        self._db.execute("INSERT OR REPLACE INTO chips VALUES (?, ?, ?, ?)", (key, int(found), box_blob, blob))

    def close(self) -> None:
        self._db.commit()
        self._db.close()


def _pick(detections: list[Detection], shape: tuple[int, ...], pick: str) -> Detection:
    if pick == "central":
        cy, cx = shape[0] / 2, shape[1] / 2
        return min(
            detections, key=lambda d: float(np.hypot((d.box[0] + d.box[2]) / 2 - cx, (d.box[1] + d.box[3]) / 2 - cy))
        )
    return max(detections, key=lambda d: (d.width * d.height, d.score))


def _chip(analyzer: Analyzer, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    points = analyzer.landmarker.landmarks(rgb, np.asarray(box, np.float32))
    return face_chips(rgb, [points], size=CHIP_SIZE, padding=CHIP_PADDING)[0]


def extract_chips(
    photos: list[Photo],
    analyzer: Analyzer,
    pick: str = "largest",
    fallback_box: bool = False,
    use_cache: bool = True,
    progress: bool = True,
    description: str = "face chips",
) -> ChipSet:
    """The chip of each photo's face; photos that give none are counted in ``failures``.

    With ``fallback_box`` a photo where no face is found gets landmarks fitted in the median box of
    the faces found in the set (as ``faceid eval pairs`` does for aligned sets, so every pair is scored).
    """
    if pick not in PICKS:
        raise ValueError(f"pick must be one of {', '.join(PICKS)}, not {pick!r}")
    cache = ChipCache(f"chip|{analyzer.detector_name}|{analyzer.upsample}|{pick}") if use_cache else None
    chips: dict[int, np.ndarray] = {}
    boxes: list[np.ndarray] = []
    failures: Counter[str] = Counter()
    failed: list[tuple[Photo, str]] = []
    no_face: list[int] = []
    try:
        for i, photo in enumerate(tqdm(photos, desc=description, unit="photo", disable=not progress)):
            try:
                key = cache.key(photo) if cache else ""
            except OSError:
                failures[UNREADABLE] += 1
                failed.append((photo, UNREADABLE))
                continue
            cached = cache.get(key) if cache else None
            if cached is not None and cached[2] is not None:
                chips[i] = cached[2]
                if cached[1] is not None:
                    boxes.append(cached[1])
                continue
            if cached is not None:
                no_face.append(i)
                continue
            try:
                rgb = load_image(photo.path)
            except ImageError as error:
                log.warning("%s", error)
                failures[UNREADABLE] += 1
                failed.append((photo, UNREADABLE))
                continue
            if photo.landmarks is not None:
                points = np.asarray(photo.landmarks, np.float32)
                chips[i] = face_chips(rgb, [points], size=CHIP_SIZE, padding=CHIP_PADDING)[0]
            elif photo.box is not None:
                chips[i] = _chip(analyzer, rgb, np.asarray(photo.box, np.float32))
            else:
                detections = analyzer.detector.detect(rgb)
                if not detections:
                    no_face.append(i)
                    if cache:
                        cache.put(key, False, None, None)
                    continue
                chosen = _pick(detections, rgb.shape, pick)
                boxes.append(chosen.box)
                chips[i] = _chip(analyzer, rgb, chosen.box)
            if cache:
                cache.put(key, True, boxes[-1] if photo.box is None and photo.landmarks is None else None, chips[i])
    finally:
        if cache:
            cache.close()
    detected = dict.fromkeys(chips, True)
    if no_face and fallback_box:
        if not boxes:
            raise ImageError("no face was found in any photo of the set")
        median = np.median(np.stack(boxes), axis=0).astype(np.float32)
        for i in no_face:
            chips[i] = _chip(analyzer, load_image(photos[i].path), median)
            detected[i] = False
    elif no_face:
        failures[NO_FACE] += len(no_face)
        failed.extend((photos[i], NO_FACE) for i in no_face)
    order = sorted(chips)
    stacked = np.stack([chips[i] for i in order]) if order else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    return ChipSet(
        photos=[photos[i] for i in order],
        chips=stacked,
        detected=np.array([detected[i] for i in order], bool),
        failures=failures,
        failed=failed,
    )

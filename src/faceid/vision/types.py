"""The small interfaces the face pipeline is built from, so that another model drops in.

Boxes are ``(x1, y1, x2, y2)`` floats in image pixels with an exclusive right/bottom edge: a dlib
rectangle ``(left, top, right, bottom)`` becomes ``(left, top, right + 1, bottom + 1)``.
Images are ``H x W x 3`` uint8 RGB arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Detection:
    box: np.ndarray  # (4,) float32, x1 y1 x2 y2
    score: float
    keypoints: np.ndarray | None = None  # the detector's own keypoints, if it has any (K x 2)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    def scaled(self, x: float, y: float) -> Detection:
        """The same face in the image stretched ``x`` times across and ``y`` times down."""
        factors = np.array([x, y], np.float32)
        box = (self.box.reshape(2, 2) * factors).reshape(4).astype(np.float32)
        keypoints = None if self.keypoints is None else (self.keypoints * factors).astype(np.float32)
        return Detection(box, self.score, keypoints)

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


@dataclass
class Face:
    """One face found in an image."""

    box: np.ndarray  # (4,) float32, x1 y1 x2 y2 in image pixels
    score: float
    landmarks: np.ndarray  # (5, 2) float32: dlib's 5 points (eye corners and the base of the nose)
    chip: np.ndarray = field(repr=False)  # (150, 150, 3) uint8 RGB, aligned as dlib.get_face_chip
    embedding: np.ndarray = field(repr=False)  # (128,) float32 descriptor

    @property
    def size(self) -> float:
        """The smaller side of the box, in pixels."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@runtime_checkable
class Detector(Protocol):
    name: str
    # The longest side of the picture the detector actually looks at (it shrinks larger images to it), or
    # None where it looks at the image at its own size. A caller holding a large frame in a cheaper form
    # (a video decoder's picture) can shrink it to this itself.
    input_size: int | None

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB image, best first."""
        ...


@runtime_checkable
class Landmarker(Protocol):
    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The 5 landmarks (5 x 2, float32) of the face in ``box``."""
        ...


@runtime_checkable
class Embedder(Protocol):
    chip_size: int

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 chips -> (N, D) float32 descriptors."""
        ...

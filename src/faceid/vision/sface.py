"""A second opinion: SFace on ArcFace-style 112x112 crops, and its score-level fusion with dlib's descriptor.

SFace (OpenCV Zoo, 2021dec) was trained on crops aligned by a similarity transform from 5 points (eye centres,
nose tip, mouth corners) onto the ArcFace template. faceid's landmarks are dlib's 5 points (the corners of the
eyes and the base of the nose), so the crop is aligned from those onto where they fall in the ArcFace frame
(:data:`DLIB5_IN_ARCFACE_112`), and cut from the original image with the same pyramid and bilinear sampling
as dlib's face chips (:func:`faceid.vision.align.extract_image_chips`).

The fused descriptor is ``[dlib 128-D, w * SFace unit 128-D]``: its squared Euclidean distance is
``d_dlib^2 + w^2 d_sface^2``, so the store's index, centroids, cohort normalisation and calibration use it as
they use any other model (its own ``model_id``, 256 values).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import cached_property

import numpy as np

from faceid.models.runtime import OnnxSession
from faceid.models.sface import DIMENSIONS, INPUT_NAME, INPUT_SIZE, MODEL_ID, sface_onnx_path
from faceid.thresholds import SFACE_FUSION_WEIGHT
from faceid.vision.align import FACE_TEMPLATE_5, ChipDetails, _similarity_transform, extract_image_chips
from faceid.vision.embed import DescriptorEmbedder

# The ArcFace 5-point template for a 112x112 crop (insightface): eye centres (image left, image right), nose
# tip, mouth corners (image left, image right).
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)

# Where dlib's 5 points (in its order: corners of the eye on the image's right, outer then inner, the same for
# the eye on the image's left, then the base of the nose) fall in that frame, on average: measured on 399
# faces-dev faces by aligning each with the ArcFace points taken from dlib's 68-point model (eye centre = mean
# of the eye's six points, nose tip, mouth corners) and averaging dlib's 5 points there
# (bench/sface_template.py). The nose *base* sits 8 px below the ArcFace nose *tip*, so mapping one onto the
# other (the obvious shortcut) squashes the face.
DLIB5_IN_ARCFACE_112 = np.array([[80.17, 52.74], [66.44, 53.24], [31.41, 53.03], [45.34, 53.34], [56.18, 79.72]])


_FUSED_ID = re.compile(r"^(?P<primary>.+)\+(?P<second>sface-[^+@]+)@(?P<weight>[0-9]+(?:\.[0-9]+)?)$")


def fused_model_id(primary_id: str, weight: float = SFACE_FUSION_WEIGHT) -> str:
    """The id of ``primary_id``'s descriptor fused with this SFace's, e.g.
    ``dlib-resnet-v1:55533b28+sface-2021dec:fb143eea@0.65``."""
    return f"{primary_id}+{MODEL_ID}@{weight:g}"


def split_fused_id(model_id: str) -> tuple[str, float] | None:
    """``(primary id, weight)`` of a fused model id; None for any other id. A fused id naming another SFace
    file than the one installed is refused: its descriptors could not be computed here."""
    match = _FUSED_ID.match(model_id)
    if match is None:
        return None
    if match["second"] != MODEL_ID:
        raise ValueError(f"{model_id!r} fuses {match['second']}, but this faceid has {MODEL_ID}")
    return match["primary"], float(match["weight"])


def descriptor_dimensions(model_id: str) -> int:
    """How many values a descriptor of ``model_id`` has (dlib's and its fine-tunes 128, fused 256)."""
    return 128 + DIMENSIONS if _FUSED_ID.match(model_id) else 128


def crop_details(landmarks5: np.ndarray, size: int = INPUT_SIZE) -> ChipDetails:
    """Where the ``size`` x ``size`` SFace crop of a face lies in the image, as dlib chip geometry."""
    points = np.asarray(landmarks5, np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected 5 landmarks as a (5, 2) array, got shape {points.shape}")
    template = DLIB5_IN_ARCFACE_112 * (size / INPUT_SIZE)
    linear, offset = _similarity_transform(template, points)  # crop pixel -> image point
    angle = math.atan2(linear[1, 0], linear[0, 0])
    scale = math.hypot(linear[0, 0], linear[1, 0])
    centre = (size - 1) / 2.0
    cx, cy = linear @ np.array([centre, centre]) + offset
    # extract_image_chips spreads the chip's first to last pixel over the rectangle's width - 1.
    half = (size - 1) * scale / 2.0
    return ChipDetails(rect=(cx - half, cy - half, cx + half, cy + half), angle=angle, rows=size, cols=size)


def sface_crops(image: np.ndarray, landmarks_list: Sequence[np.ndarray], size: int = INPUT_SIZE) -> np.ndarray:
    """(N, size, size, 3) uint8 RGB crops aligned for SFace, cut from ``image`` (H x W x 3 uint8 RGB)."""
    image = np.asarray(image)
    crops = [extract_image_chips(image, [crop_details(points, size)])[0] for points in landmarks_list]
    if not crops:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack(crops)


def chip_landmarks(chip_size: int = 150, padding: float = 0.25) -> np.ndarray:
    """dlib's 5 points as they lie in an aligned face chip (the template the chip was aligned to)."""
    return (padding + FACE_TEMPLATE_5) / (2 * padding + 1) * chip_size


class SFaceEmbedder:
    """SFace 128-D unit descriptors (compare by Euclidean distance; cosine similarity = 1 - d^2 / 2).

    ``embed_faces`` aligns each face from the original image (the accurate path, which the Analyzer takes);
    ``embed`` takes 150x150 dlib chips and re-aligns from them (for code that only kept chips: the chip holds
    less forehead than the SFace crop, so the top rows are black and the descriptor is a little worse). With
    ``mirror=True`` each descriptor is the normalised mean with its mirror image's.
    """

    chip_size = 150
    crop_size = INPUT_SIZE
    dimensions = DIMENSIONS

    def __init__(
        self, device: str = "cpu", threads: int | None = None, mirror: bool = False, batch_size: int = 32
    ) -> None:
        self.device = device
        self.threads = threads
        self.mirror = mirror
        self.batch_size = batch_size

    @property
    def model_id(self) -> str:
        return MODEL_ID  # mirror averaging stays in the network's space (faceid.vision.embed)

    @cached_property
    def session(self) -> OnnxSession:
        return OnnxSession(sface_onnx_path(), device=self.device, threads=self.threads)

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 RGB aligned crops -> (N, 128) float32 unit vectors."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[1:] != (self.crop_size, self.crop_size, 3) or crops.dtype != np.uint8:
            raise ValueError(f"expected uint8 crops of shape (N, {self.crop_size}, {self.crop_size}, 3)")
        out = np.empty((len(crops), self.dimensions), np.float32)
        for start in range(0, len(crops), self.batch_size):
            batch = crops[start : start + self.batch_size]
            raw = self._run(batch)
            raw /= np.linalg.norm(raw, axis=1, keepdims=True) + 1e-12
            if self.mirror:
                flipped = self._run(batch[:, :, ::-1])
                raw += flipped / (np.linalg.norm(flipped, axis=1, keepdims=True) + 1e-12)
                raw /= np.linalg.norm(raw, axis=1, keepdims=True) + 1e-12
            out[start : start + len(batch)] = raw
        return out

    def _run(self, crops: np.ndarray) -> np.ndarray:
        blob = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
        return np.asarray(self.session.run({INPUT_NAME: blob})[0], np.float32)

    def embed_faces(self, image: np.ndarray, landmarks: Sequence[np.ndarray], chips: np.ndarray) -> np.ndarray:
        if len(landmarks) == 0:
            return np.zeros((0, self.dimensions), np.float32)
        return self.embed_crops(sface_crops(image, landmarks))

    def embed(self, chips: np.ndarray) -> np.ndarray:
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.ndim != 4 or chips.shape[1:] != (self.chip_size, self.chip_size, 3):
            raise ValueError(f"expected chips of shape (N, {self.chip_size}, {self.chip_size}, 3), got {chips.shape}")
        if len(chips) == 0:
            return np.zeros((0, self.dimensions), np.float32)
        points = chip_landmarks(self.chip_size)
        return self.embed_crops(np.stack([sface_crops(chip, [points])[0] for chip in chips]))


class FusedEmbedder:
    """dlib's descriptor with SFace as a second opinion: ``[dlib, weight * sface]``, 256 values.

    The squared distance of two fused descriptors is ``d_dlib^2 + weight^2 d_sface^2`` (score-level fusion);
    ``weight`` comes from faces-dev folds 1-4 (:data:`faceid.thresholds.SFACE_FUSION_WEIGHT`).
    """

    chip_size = 150

    def __init__(
        self,
        device: str = "cpu",
        threads: int | None = None,
        mirror: bool = False,
        weight: float = SFACE_FUSION_WEIGHT,
        primary: DescriptorEmbedder | None = None,
        second: SFaceEmbedder | None = None,
    ) -> None:
        self.primary = primary or DescriptorEmbedder(device=device, threads=threads, mirror=mirror)
        self.second = second or SFaceEmbedder(device=device, threads=threads, mirror=mirror)
        self.weight = float(weight)
        self.mirror = bool(getattr(self.primary, "mirror", False))
        self.dimensions = int(getattr(self.primary, "dimensions", 128)) + self.second.dimensions

    @property
    def model_id(self) -> str:
        """e.g. ``dlib-resnet-v1:55533b28+sface-2021dec:fb143eea@0.65`` (mirror averaging, like elsewhere,
        stays in the space; ``Analyzer.pipeline_id`` names it for caches)."""
        primary = str(getattr(self.primary, "model_id", "custom")).removesuffix("+mirror")
        second = self.second.model_id.removesuffix("+mirror")
        return f"{primary}+{second}@{self.weight:g}"

    def _fuse(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.concatenate([first, self.weight * second], axis=1).astype(np.float32)

    def embed_faces(self, image: np.ndarray, landmarks: Sequence[np.ndarray], chips: np.ndarray) -> np.ndarray:
        return self._fuse(self.primary.embed(chips), self.second.embed_faces(image, landmarks, chips))

    def embed(self, chips: np.ndarray) -> np.ndarray:
        return self._fuse(self.primary.embed(chips), self.second.embed(chips))

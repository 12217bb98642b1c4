"""The fast face detector for video: MediaPipe's BlazeFace on ONNX Runtime.

Two variants exist. ``short`` (128x128 input, 896 anchors) is made for faces close to the camera;
``full`` (192x192 input, 2304 anchors), the default, also finds small, distant faces; ``both`` runs the two
and merges their faces (see ``DEFAULT_SCORE_THRESHOLDS`` for the measurements). The image is letterboxed
into the model's square input as MediaPipe does, boxes and 6 keypoints are decoded against MediaPipe's
SSD anchors and overlapping boxes are blended by score (MediaPipe's weighted non-maximum suppression).

BlazeFace boxes run from the forehead to the chin, while dlib's 5-point shape predictor was trained on
the boxes of dlib's own detectors, so each box is moved onto where dlib's MMOD detector would put it
(see :func:`dlib_like_box`) before it is returned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from faceid.models.blazeface import INPUT_NAME, MODELS, REGRESSORS_NAME, SCORES_NAME, blazeface_onnx_path
from faceid.models.runtime import OnnxSession
from faceid.vision.types import Detection

log = logging.getLogger(__name__)

# The order of BlazeFace's keypoints; "right" is the person's right (on the left of an unmirrored photo).
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")
RIGHT_EYE, LEFT_EYE, NOSE_TIP, MOUTH = 0, 1, 2, 3


@dataclass(frozen=True)
class AnchorLayout:
    """MediaPipe's SsdAnchorsCalculator options for one variant (fixed_anchor_size: every anchor is 1x1)."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # one per aspect ratio, plus one when interpolated_scale_aspect_ratio > 0


# From MediaPipe's face_detection_short_range.pbtxt and face_detection_full_range.pbtxt.
ANCHOR_LAYOUTS: dict[str, AnchorLayout] = {
    "short": AnchorLayout(128, (8, 16, 16, 16), 2),
    "full": AnchorLayout(192, (4,), 1),
}
# MediaPipe's own score thresholds for these graphs (min_score_thresh).
MEDIAPIPE_SCORE_THRESHOLDS = {"short": 0.5, "full": 0.6}
# The defaults, from bench/bench_fast_detector.py (threads=1, on 2 shared cores) on the first 2,000
# faces-dev images and the 275 frames of media/short_hamilton_clip.mp4 (640x360):
# - short alone never sees the clip's small faces (the wide opening shot, the audience): a face in 80% of frames.
# - full at MediaPipe's 0.6: a face in 98.5% of faces-dev and 83% of the frames. At 0.5: 99.85% and 92.7%,
#   ~10 ms of CPU per frame. Lower thresholds add mostly false hits on blurred hands and noses in close-ups
#   (a few pass 0.5 already) and the very dark, blurred faces of the audience.
# - both networks, each at 0.5: 100% and 96.7% (short adds the large, turned faces of the close-ups that
#   full scores low), but ~14 ms of CPU per frame, over 20 ms of wall time when the cores are shared.
# So full is the default and "both" the choice when recall matters more than time (photos, spare cores).
DEFAULT_SCORE_THRESHOLDS = {"short": 0.5, "full": 0.5}
DEFAULT_VARIANT = "full"
DETECTOR_VARIANTS = ("short", "full", "both")
NMS_IOU_THRESHOLD = 0.3  # MediaPipe's min_suppression_threshold for both variants
LOGIT_CLIP = 100.0  # MediaPipe's score_clipping_thresh


@cache
def anchor_centres(variant: str) -> np.ndarray:
    """(A, 2) anchor centres (x, y) in the model input's [0, 1] coordinates, in the model's output order."""
    layout = ANCHOR_LAYOUTS[variant]
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(layout.strides):
        stride = layout.strides[layer]
        # Consecutive layers with the same stride share a feature map; their anchors interleave per cell.
        group = 0
        while layer < len(layout.strides) and layout.strides[layer] == stride:
            group += layout.anchors_per_layer
            layer += 1
        cells = -(-layout.input_size // stride)
        ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32)
        grid = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], axis=1)
        centres.append(np.repeat(grid, group, axis=0))
    result = np.concatenate(centres).astype(np.float32)
    if len(result) != MODELS[variant].num_anchors:
        raise AssertionError(f"{variant}: {len(result)} anchors, the model has {MODELS[variant].num_anchors}")
    return result


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the model's square input: input pixel = image pixel * scale + offset."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def scaled(self, factor: float) -> Letterbox:
        """The same fit after the model input is itself resized by ``factor``."""
        return Letterbox(self.scale_x * factor, self.scale_y * factor, self.offset_x * factor, self.offset_y * factor)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Model-input pixel coordinates (..., 2) to image pixel coordinates."""
        out = np.empty_like(points)
        out[..., 0] = (points[..., 0] - self.offset_x) / self.scale_x
        out[..., 1] = (points[..., 1] - self.offset_y) / self.scale_y
        return out


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` to fit ``size`` x ``size`` keeping its aspect ratio, centred on black."""
    height, width = image.shape[:2]
    fit = size / max(height, width)
    new_width = max(1, min(size, round(width * fit)))
    new_height = max(1, min(size, round(height * fit)))
    picture = Image.fromarray(image)
    # Shrinking by a large factor must average pixels or small faces alias away. A box reduction by the
    # whole factor first, then bilinear, does that at a fraction of the cost of a wide bilinear kernel.
    whole_factor = int(1 / fit) if fit < 1 else 1
    if whole_factor >= 2:
        picture = picture.reduce(whole_factor)
    resized = np.asarray(picture.resize((new_width, new_height), Image.Resampling.BILINEAR))
    offset_x = (size - new_width) // 2
    offset_y = (size - new_height) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[offset_y : offset_y + new_height, offset_x : offset_x + new_width] = resized
    return canvas, Letterbox(new_width / width, new_height / height, float(offset_x), float(offset_y))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) box with each of (N, 4) boxes."""
    inter_w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    intersection = inter_w * inter_h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU_THRESHOLD
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: each kept box is the score-weighted mean of the boxes it overlaps.

    The best box of each cluster keeps its own score. Against plain NMS (keep the best box only), on
    faces-dev the blended boxes put dlib's landmarks slightly nearer those from MMOD boxes (0.0105 / 0.0101
    eye distances for short / full, against 0.0112 / 0.0104); frame-to-frame steadiness on the clip was
    mixed (short: steadier size when blended; full: steadier centre with plain NMS).
    """
    if not len(scores):
        return boxes, keypoints, scores
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), bool)
    kept_boxes, kept_keypoints, kept_scores = [], [], []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        candidates = np.flatnonzero(remaining)
        overlapping = candidates[box_iou(boxes[i], boxes[candidates]) > iou_threshold]
        cluster = np.union1d(overlapping, [i])  # a degenerate box does not overlap even itself
        weights = scores[cluster] / scores[cluster].sum()
        kept_boxes.append(weights @ boxes[cluster])
        kept_keypoints.append(np.tensordot(weights, keypoints[cluster], axes=1))
        kept_scores.append(scores[i])
        remaining[cluster] = False
    return (
        np.asarray(kept_boxes, np.float32),
        np.asarray(kept_keypoints, np.float32),
        np.asarray(kept_scores, np.float32),
    )


# Where dlib's MMOD detector puts its box, relative to BlazeFace's keypoints and box (see dlib_like_box).
# Fitted by least squares to the MMOD box centres and sides (MMOD without upsampling) on 621 faces-dev
# images, every 10th by sorted path, where both detectors found the face; the two variants gave the same
# centre constants to within 0.004, and each has its own size. Fitted on half of them, the other half
# showed dlib's 5-point landmarks from the mapped box 0.0098 eye distances on average from those from the
# MMOD box (0.0156 short / 0.0122 full from BlazeFace's own box), and descriptor cosines to the MMOD
# pipeline of 0.9991 on average, 0.97 at worst (0.85 / 0.93 at worst from BlazeFace's own box). The error
# is flat around these values: moving any constant by 10-15% changes it by under 5%. Results on images
# not used for fitting: bench/bench_fast_detector.py.
DLIB_BOX_CENTRE_ALONG = 0.275  # from the eyes' midpoint towards the mouth, in eye-to-mouth distances
DLIB_BOX_CENTRE_ACROSS = 0.067  # sideways (towards the image's left on an upright face), same unit
DLIB_BOX_SIZE = {"short": 0.939, "full": 0.899}  # side of dlib's box / mean side of BlazeFace's box


def dlib_like_box(box: np.ndarray, keypoints: np.ndarray, variant: str) -> np.ndarray:
    """The box dlib's MMOD detector would give the face that BlazeFace ``variant`` found at ``box``.

    The centre comes from the keypoints, which follow a turned or tilted face better than BlazeFace's
    box does; the size comes from the box, which is steadier than any keypoint distance under yaw.
    """
    eyes = (keypoints[RIGHT_EYE] + keypoints[LEFT_EYE]) / 2
    down = keypoints[MOUTH] - eyes
    across = np.array([-down[1], down[0]])
    centre = eyes + DLIB_BOX_CENTRE_ALONG * down + DLIB_BOX_CENTRE_ACROSS * across
    half = DLIB_BOX_SIZE[variant] * ((box[2] - box[0]) + (box[3] - box[1])) / 4
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half], np.float32)


def _logit(probability: float) -> float:
    probability = min(max(probability, 1e-7), 1 - 1e-7)
    return float(np.log(probability / (1 - probability)))


class BlazeFaceDetector:
    """BlazeFace on ONNX Runtime, returning boxes placed like dlib's MMOD detector's (see the module notes).

    ``variant`` is "short", "full" or "both" (both networks, their faces merged). ``score_threshold``
    applies to every network run; by default each uses its own (``DEFAULT_SCORE_THRESHOLDS``).
    With ``dlib_boxes=False`` the boxes are BlazeFace's own.
    """

    name = "fast"

    def __init__(
        self,
        variant: str = DEFAULT_VARIANT,
        score_threshold: float | None = None,
        device: str = "cpu",
        threads: int | None = None,
        dlib_boxes: bool = True,
    ) -> None:
        if variant not in DETECTOR_VARIANTS:
            raise ValueError(f"unknown BlazeFace variant {variant!r}; choose from {', '.join(DETECTOR_VARIANTS)}")
        self.variant = variant
        self.networks = ("full", "short") if variant == "both" else (variant,)
        self.input_size: int | None = max(ANCHOR_LAYOUTS[network].input_size for network in self.networks)
        self.score_thresholds = {
            network: DEFAULT_SCORE_THRESHOLDS[network] if score_threshold is None else score_threshold
            for network in self.networks
        }
        self.device = device
        self.threads = threads
        self.dlib_boxes = dlib_boxes
        self._sessions: dict[str, OnnxSession] = {}

    def _session(self, network: str) -> OnnxSession:
        session = self._sessions.get(network)
        if session is None:
            # Looked up only now, so that building a detector never fails before it is used.
            session = OnnxSession(blazeface_onnx_path(network), self.device, self.threads)
            log.debug("BlazeFace %s-range session on %s", network, session.providers)
            self._sessions[network] = session
        return session

    def raw_outputs(self, network: str, model_input: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's (A, 16) regressors and (A,) score logits for one (S, S, 3) uint8 input."""
        session = self._session(network)
        outputs = dict(zip(session.output_names, session.run({INPUT_NAME: model_input[None]}), strict=True))
        return outputs[REGRESSORS_NAME][0], outputs[SCORES_NAME][0, :, 0]

    def _detect_with(
        self, network: str, model_input: np.ndarray, fit: Letterbox
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 4) boxes, (N, 6, 2) keypoints and (N,) scores in image pixels, after NMS."""
        size = ANCHOR_LAYOUTS[network].input_size
        regressors, logits = self.raw_outputs(network, model_input)
        # Thresholding the logits first keeps the sigmoid to the few anchors that pass.
        chosen = np.flatnonzero(logits >= _logit(self.score_thresholds[network]))
        if not len(chosen):
            return np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[chosen].astype(np.float64), -LOGIT_CLIP, LOGIT_CLIP)))
        # Regressors are in model-input pixels, relative to the anchor centre (MediaPipe's x/y/w/h_scale
        # equal the input size, and fixed-size anchors are 1 x 1 in normalised units).
        centres = anchor_centres(network)[chosen] * size
        raw = regressors[chosen]
        box_centres = raw[:, 0:2] + centres
        half = raw[:, 2:4] / 2
        corners = fit.to_image(np.stack([box_centres - half, box_centres + half], axis=1)).reshape(-1, 4)
        keypoints = fit.to_image(raw[:, 4:16].reshape(-1, 6, 2) + centres[:, None, :])
        boxes, keypoints, kept = weighted_nms(corners, keypoints, scores.astype(np.float32))
        if self.dlib_boxes:
            boxes = np.array([dlib_like_box(b, k, network) for b, k in zip(boxes, keypoints, strict=True)], np.float32)
            boxes = boxes.reshape(-1, 4)
        return boxes, keypoints, kept

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB image, best first."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.dtype} {image.shape}")
        # Letterbox the image once, for the largest input; a smaller input is that one shrunk, which costs
        # far less than shrinking the whole image again and keeps the same geometry.
        largest = max(ANCHOR_LAYOUTS[network].input_size for network in self.networks)
        large_input, large_fit = letterbox(image, largest)
        results = []
        for network in self.networks:
            size = ANCHOR_LAYOUTS[network].input_size
            if size == largest:
                model_input, fit = large_input, large_fit
            else:
                shrunk = Image.fromarray(large_input).resize((size, size), Image.Resampling.BILINEAR)
                model_input, fit = np.asarray(shrunk), large_fit.scaled(size / largest)
            results.append(self._detect_with(network, model_input, fit))
        boxes = np.concatenate([r[0] for r in results])
        keypoints = np.concatenate([r[1] for r in results])
        scores = np.concatenate([r[2] for r in results])
        if len(self.networks) > 1 and len(scores) > 1:
            # The same face seen by both networks: blend it once more, as within one network.
            boxes, keypoints, scores = weighted_nms(boxes, keypoints, scores)
        order = np.argsort(-scores, kind="stable")
        return [Detection(boxes[i].copy(), float(scores[i]), keypoints[i].copy()) for i in order]

"""dlib's CNN (MMOD) face detector on ONNX Runtime, giving the same boxes as ``dlib.cnn_face_detection_model_v1``.

Only the conv net runs in ONNX Runtime (:mod:`faceid.models.mmod`). Everything around it follows
dlib's code step by step, because the boxes depend on it to the pixel:

1. ``upsample_num_times``: the image is enlarged with ``pyramid_up`` and ``pyramid_down<2>``
   (bilinear, output ``2h + 1`` by ``2w + 2``) that many times.
2. ``input_rgb_image_pyramid``: the image, normalised to ``(px - mean) / 256``, and its 5/6, 25/36...
   down-scaled copies are tiled into one picture (``compute_tiled_image_pyramid_details``), each level
   resized from the one above by dlib's bilinear ``resize_image``. Its float32 arithmetic (SIMD
   columns with float coordinates, a double-precision tail) is reproduced exactly.
3. ``loss_mmod_::to_label``: every score above the threshold gives a detector window centred on its
   cell, mapped back through the pyramid level whose tile is nearest, rounded to integers, sorted by
   score and thinned by dlib's greedy non-maximum suppression.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import pairwise

import numpy as np

from faceid.models.mmod import INPUT_NAME, MmodConfig, MmodModel, load_mmod_model
from faceid.models.runtime import OnnxSession
from faceid.vision.types import Detection

log = logging.getLogger(__name__)

# pyramid_down<N> keeps adding levels while they are at least this many rows tall.
MIN_LEVEL_ROWS = 5
# dlib's pyramid_down<N>::point_up / point_down shift points by this much per level.
PYRAMID_POINT_SHIFT = 0.3
# pyramid_down<2> (used by ``upsample_num_times``) shifts points by these (x, y) amounts per level.
PYRAMID2_SHIFT = (1.25, 0.75)


# --------------------------------------------------------------------------------------------
# Tiled pyramid layout


@dataclass(frozen=True)
class PyramidLayout:
    """Where each pyramid level sits in the tiled picture. Rects are (left, top, right, bottom), inclusive."""

    rows: int
    cols: int
    rects: tuple[tuple[int, int, int, int], ...]

    @property
    def levels(self) -> int:
        return len(self.rects)


def pyramid_level_sizes(rows: int, cols: int, down: int) -> list[tuple[int, int]]:
    """(rows, cols) of each level, as ``find_pyramid_down_output_image_size`` computes them."""
    rate = (down - 1.0) / down
    sizes = [(rows, cols)]
    while True:
        rows, cols = math.floor(rate * rows), math.floor(rate * cols)
        if rows * cols == 0 or rows < MIN_LEVEL_ROWS:
            return sizes
        sizes.append((rows, cols))


def tiled_pyramid_layout(rows: int, cols: int, down: int, padding: int, outer_padding: int) -> PyramidLayout:
    """dlib's ``compute_tiled_image_pyramid_details``: levels go down one column, then up the right side."""
    if rows * cols == 0:
        return PyramidLayout(0, 0, ())
    sizes = pyramid_level_sizes(rows, cols, down)
    first_rows, first_cols = sizes[0]
    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    # The first column grows until the next level fits beside the previous one and the column is
    # at least half the total height, so that the rest can double back up the right side.
    height = 0
    prev_width = 0
    for h, w in sizes:
        if w <= first_cols - prev_width - padding and (height - first_rows) * 2 >= total_height - first_rows:
            break
        height += h + padding
        prev_width = w
    height -= padding
    canvas_rows = height + 2 * outer_padding
    canvas_cols = first_cols + 2 * outer_padding

    rects: list[tuple[int, int, int, int]] = []
    y = outer_padding
    i = 0
    while y < height + outer_padding and i < len(sizes):
        h, w = sizes[i]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    first = rects[0]
    while i < len(sizes):
        h, w = sizes[i]
        right, bottom = outer_padding + first_cols - 1, y - 1
        rect = (right - (w - 1), bottom - (h - 1), right, bottom)
        # Stop rather than overlap the full-size image on the last row.
        if max(first[0], rect[0]) <= min(first[2], rect[2]) and max(first[1], rect[1]) <= min(first[3], rect[3]):
            break
        rects.append(rect)
        y -= h + padding
        i += 1
    return PyramidLayout(canvas_rows, canvas_cols, tuple(rects))


# --------------------------------------------------------------------------------------------
# dlib's bilinear resize_image, reproduced to the bit


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for array in arrays:
        array.flags.writeable = False
    return arrays


@dataclass(frozen=True)
class _RowPlan:
    top: np.ndarray  # intp
    bottom: np.ndarray
    frac: np.ndarray  # float64, y - top

    @classmethod
    @lru_cache(maxsize=256)  # video frames and repeated sizes reuse their plans
    def build(cls, n_in: int, n_out: int) -> _RowPlan:
        scale = (n_in - 1) / max(n_out - 1, 1)
        # dlib steps y by y_scale in double, starting from -y_scale; cumsum adds in the same order.
        steps = np.full(n_out + 1, scale)
        steps[0] = -scale
        y = np.cumsum(steps)[1:]
        top = np.floor(y).astype(np.intp)
        return cls(*_read_only(top, np.minimum(top + 1, n_in - 1), y - top))


@dataclass(frozen=True)
class _ColumnPlan:
    """Columns [0, split) take dlib's 4-wide SIMD loop (float32 coordinates), the rest its scalar tail."""

    split: int
    left: np.ndarray  # intp, SIMD columns; right = left + 1
    frac: np.ndarray  # float32
    inv_frac: np.ndarray  # float32, 1 - frac
    tail_left: np.ndarray  # intp
    tail_right: np.ndarray
    tail_frac: np.ndarray  # float64

    @classmethod
    @lru_cache(maxsize=256)
    def build(cls, n_in: int, n_out: int) -> _ColumnPlan:
        scale = (n_in - 1) / max(n_out - 1, 1)
        start = -4 * scale
        # Each SIMD lane starts at a double converted to float and then adds float(4 * scale) once per
        # group of 4 columns, in float32.
        groups = n_out // 4 + 2
        steps = np.empty((groups + 1, 4), np.float32)
        steps[0] = np.array([start, start + scale, start + 2 * scale, start + 3 * scale]).astype(np.float32)
        steps[1:] = np.float32(4 * scale)
        x = np.cumsum(steps, axis=0, dtype=np.float32)[1:]
        left = x.astype(np.int32)  # truncation, as _mm_cvttps_epi32
        # The SIMD loop stops at the first group whose last lane would read past the row.
        stops = np.flatnonzero(left[:, 3] + 1 >= n_in)
        split = int(stops[0]) * 4 if stops.size else groups * 4
        split = min(split, n_out)
        x, left = x.reshape(-1)[:split], left.reshape(-1)[:split]
        frac = x - left.astype(np.float32)
        tail_steps = np.full(n_out - split + 1, scale)
        tail_steps[0] = -scale + split * scale
        tail_x = np.cumsum(tail_steps)[1:]
        tail_left = np.floor(tail_x).astype(np.intp)
        return cls(
            split,
            *_read_only(
                left.astype(np.intp),
                frac,
                np.float32(1) - frac,
                tail_left,
                np.minimum(tail_left + 1, n_in - 1),
                tail_x - tail_left,
            ),
        )


# Output rows are processed in blocks whose temporaries stay in the CPU cache; this roughly halves the time.
_BLOCK_BYTES = 1 << 18


def _resize_simd_columns(src: np.ndarray, rows: _RowPlan, cols: _ColumnPlan, out: np.ndarray) -> None:
    """``out = tlf*tl + trf*tr + blf*bl + brf*br`` in float32 for the SIMD columns, plane by plane.

    ``src`` (C, h, w) and ``out`` (C, h', split) are float32 and may be strided views. Each weight is
    the product of a row and a column weight rounded to float32 first, as dlib computes it.
    """
    planes, n = src.shape[0], cols.split
    step = max(1, _BLOCK_BYTES // (planes * n * 4))
    right_index = cols.left + 1
    inv_frac, frac = cols.inv_frac[None, :], cols.frac[None, :]
    tb = rows.frac.astype(np.float32)[:, None]
    inv_tb = (1 - rows.frac).astype(np.float32)[:, None]
    weight_buffer = np.empty((step, n), np.float32)
    term_buffer = np.empty((planes, step, n), np.float32)
    for r0 in range(0, out.shape[1], step):
        r1 = min(r0 + step, out.shape[1])
        first, last = rows.top[r0], rows.bottom[r1 - 1]
        block = src[:, first : last + 1]
        # np.take is much faster than fancy indexing for these column gathers.
        left = np.take(block, cols.left, axis=2)
        right = np.take(block, right_index, axis=2)
        top, bottom = rows.top[r0:r1] - first, rows.bottom[r0:r1] - first
        target = out[:, r0:r1]
        weight, term = weight_buffer[: r1 - r0], term_buffer[:, : r1 - r0]
        np.multiply(inv_tb[r0:r1], inv_frac, out=weight)
        np.multiply(np.take(left, top, axis=1), weight, out=target)
        np.multiply(inv_tb[r0:r1], frac, out=weight)
        np.multiply(np.take(right, top, axis=1), weight, out=term)
        target += term
        np.multiply(tb[r0:r1], inv_frac, out=weight)
        np.multiply(np.take(left, bottom, axis=1), weight, out=term)
        target += term
        np.multiply(tb[r0:r1], frac, out=weight)
        np.multiply(np.take(right, bottom, axis=1), weight, out=term)
        target += term


def _tail_corners(src: np.ndarray, rows: _RowPlan, cols: _ColumnPlan) -> tuple[np.ndarray, ...]:
    """The four neighbours (C, h', k) of the k tail columns."""
    k = len(cols.tail_left)
    columns = src[:, :, np.concatenate([cols.tail_left, cols.tail_right])]
    top, bottom = columns[:, rows.top], columns[:, rows.bottom]
    return top[..., :k], top[..., k:], bottom[..., :k], bottom[..., k:]


def resize_float_planes(src: np.ndarray, out: np.ndarray) -> None:
    """dlib's bilinear ``resize_image`` of each float32 plane of ``src`` (C, h, w) into ``out`` (C, h', w').

    This is what ``tt::resize_bilinear`` does between pyramid levels on the CPU.
    """
    rows = _RowPlan.build(src.shape[1], out.shape[1])
    cols = _ColumnPlan.build(src.shape[2], out.shape[2])
    if cols.split:
        _resize_simd_columns(src, rows, cols, out[:, :, : cols.split])
    if cols.split < out.shape[2]:
        tl, tr, bl, br = _tail_corners(src, rows, cols)
        frac = cols.tail_frac.astype(np.float32)[None, None, :]
        inv_frac = np.float32(1) - frac
        # The tail mixes float (the horizontal step) and double (the vertical step).
        upper = (inv_frac * tl + frac * tr).astype(np.float64)
        lower = (inv_frac * bl + frac * br).astype(np.float64)
        tb = rows.frac[None, :, None]
        out[:, :, cols.split :] = ((1 - tb) * upper + tb * lower).astype(np.float32)


def resize_rgb_image(image: np.ndarray, h_out: int, w_out: int) -> np.ndarray:
    """dlib's bilinear ``resize_image`` of an 8-bit RGB image; dlib truncates the results to integers."""
    planes = image.transpose(2, 0, 1).astype(np.float32)
    rows = _RowPlan.build(image.shape[0], h_out)
    cols = _ColumnPlan.build(image.shape[1], w_out)
    out = np.empty((3, h_out, w_out), np.uint8)
    if cols.split:
        values = np.empty((3, h_out, cols.split), np.float32)
        _resize_simd_columns(planes, rows, cols, values)
        out[:, :, : cols.split] = values.astype(np.int32)
    if cols.split < w_out:
        tl, tr, bl, br = (corner.astype(np.float64) for corner in _tail_corners(planes, rows, cols))
        frac = cols.tail_frac[None, None, :]
        tb = rows.frac[None, :, None]
        values64 = (1 - tb) * ((1 - frac) * tl + frac * tr) + tb * ((1 - frac) * bl + frac * br)
        out[:, :, cols.split :] = values64.astype(np.int32)
    return np.ascontiguousarray(out.transpose(1, 2, 0))


def pyramid_up(image: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_up(img, pyramid_down<2>())``: the image resized to 2h + 1 rows and 2w + 2 columns.

    The odd size comes from mapping the image rectangle up with ``(p + (1.25, 0.75)) * 2`` and
    rounding, exactly as dlib does.
    """
    rows, cols = image.shape[:2]
    sx, sy = PYRAMID2_SHIFT
    bottom = math.floor((rows - 1 + sy) * 2 + 0.5)
    right = math.floor((cols - 1 + sx) * 2 + 0.5)
    return resize_rgb_image(image, bottom + 1, right + 1)


# --------------------------------------------------------------------------------------------
# The network input


def build_tiled_pyramid(image: np.ndarray, config: MmodConfig) -> tuple[np.ndarray, PyramidLayout]:
    """The (1, 3, H, W) float32 network input for an RGB uint8 image, and where each level sits in it."""
    rows, cols = image.shape[:2]
    layout = tiled_pyramid_layout(rows, cols, config.pyramid_down, config.pyramid_padding, config.pyramid_outer_padding)
    canvas = np.zeros((1, 3, layout.rows, layout.cols), np.float32)
    if not layout.rects:
        return canvas, layout
    views = [canvas[0, :, t : b + 1, left : r + 1] for left, t, r, b in layout.rects]
    # (px - mean) in float32, then / 256 (exact, a power of two), as dlib's to_tensor.
    planes = np.ascontiguousarray(image.transpose(2, 0, 1))
    mean = np.asarray(config.mean_rgb, np.float32)[:, None, None]
    np.subtract(planes, mean, out=views[0], dtype=np.float32)
    views[0] *= np.float32(1 / 256)
    for source, target in pairwise(views):
        resize_float_planes(source, target)
    return canvas, layout


# --------------------------------------------------------------------------------------------
# Score maps to boxes (loss_mmod_::to_label)


def _nearest_level(layout: PyramidLayout, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``nearest_rect``: the first level containing the point, else the first nearest one."""
    rects = np.asarray(layout.rects, np.int64)  # (L, 4)
    left, top, right, bottom = (rects[:, i][None, :] for i in range(4))
    px, py = x[:, None], y[:, None]
    dx = np.maximum(np.maximum(left - px, px - right), 0)
    dy = np.maximum(np.maximum(top - py, py - bottom), 0)
    return np.argmin(dx * dx + dy * dy, axis=1)  # argmin keeps the first of equal distances, as dlib


def _round(values: np.ndarray) -> np.ndarray:
    """drectangle -> rectangle: floor(v + 0.5)."""
    return np.floor(values + 0.5).astype(np.int64)


def decode_scores(
    scores: np.ndarray, layout: PyramidLayout, config: MmodConfig, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate boxes (N, 4) int64 (left, top, right, bottom, inclusive) and scores, best first."""
    # dlib compares each float score, widened to double, with the double threshold; numpy would
    # otherwise round the threshold to float32.
    scores = scores.astype(np.float64)
    windows, rows, cols = np.nonzero(scores > threshold)
    values = scores[windows, rows, cols]
    if values.size == 0:
        return np.zeros((0, 4), np.int64), values
    width = np.array([w.width for w in config.windows], np.float64)[windows]
    height = np.array([w.height for w in config.windows], np.float64)[windows]
    px = (cols * config.stride + config.offset).astype(np.float64)
    py = (rows * config.stride + config.offset).astype(np.float64)
    # centered_drect, then tensor_space_to_image_space (tiled_pyramid_to_image).
    half_w, half_h = (width - 1) / 2, (height - 1) / 2
    box = np.stack([px - half_w, py - half_h, px + half_w, py + half_h], axis=1)
    centre_x = _round((box[:, 0] + box[:, 2]) / 2)
    centre_y = _round((box[:, 1] + box[:, 3]) / 2)
    level = _nearest_level(layout, centre_x, centre_y)
    origins = np.asarray(layout.rects, np.float64)[level][:, :2]
    box -= np.concatenate([origins, origins], axis=1)
    ratio = config.pyramid_down / (config.pyramid_down - 1.0)
    # point_up is applied once per level, so repeat it rather than use a power (same rounding as dlib).
    for step in range(int(level.max(initial=0))):
        going_up = level > step
        box[going_up] = box[going_up] * ratio + PYRAMID_POINT_SHIFT
    boxes = _round(box)
    order = np.argsort(-values, kind="stable")
    return boxes[order], values[order]


def box_overlaps(kept: np.ndarray, box: np.ndarray, iou_threshold: float, covered_threshold: float) -> bool:
    """dlib's ``test_box_overlap`` of ``box`` against each of ``kept``; IoU uses the bounding box as the union."""
    if kept.size == 0:
        return False
    inner_w = np.minimum(kept[:, 2], box[2]) - np.maximum(kept[:, 0], box[0]) + 1
    inner_h = np.minimum(kept[:, 3], box[3]) - np.maximum(kept[:, 1], box[1]) + 1
    inner = (np.maximum(inner_w, 0) * np.maximum(inner_h, 0)).astype(np.float64)
    outer = (np.maximum(kept[:, 2], box[2]) - np.minimum(kept[:, 0], box[0]) + 1) * (
        np.maximum(kept[:, 3], box[3]) - np.minimum(kept[:, 1], box[1]) + 1
    )
    area_kept = (kept[:, 2] - kept[:, 0] + 1) * (kept[:, 3] - kept[:, 1] + 1)
    area_box = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        hit = (inner / outer > iou_threshold) | (inner / area_kept > covered_threshold)
        hit |= inner / area_box > covered_threshold
    return bool(np.any(hit & (inner > 0)))


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, config: MmodConfig) -> list[int]:
    """Greedy NMS over boxes sorted best first: indices of the boxes kept."""
    kept: list[int] = []
    for i in range(len(boxes)):
        if not box_overlaps(boxes[kept], boxes[i], config.nms_iou_threshold, config.nms_percent_covered_threshold):
            kept.append(i)
    return kept


def pyramid_down2_rects(boxes: np.ndarray, times: int) -> np.ndarray:
    """``pyramid_down<2>::rect_down(rect, times)``: boxes from an upsampled image back to the original."""
    if times == 0:
        return boxes
    values = boxes.astype(np.float64)
    shift = np.array([*PYRAMID2_SHIFT, *PYRAMID2_SHIFT])
    for _ in range(times):
        values = values / 2.0 - shift
    return _round(values)


# --------------------------------------------------------------------------------------------


class MmodDetector:
    """dlib's CNN face detector (``mmod_human_face_detector.dat``), with the same boxes and scores as dlib.

    ``upsample`` is dlib's ``upsample_num_times``: the detector window is 80x80 pixels, so faces
    smaller than about 80 px are only found after the image is upsampled (each time doubles it).
    ``threshold`` is dlib's ``adjust_threshold``: scores must be above it (dlib's default 0).
    """

    name = "mmod"
    input_size: int | None = None  # the image at its own size (a pyramid of it)

    def __init__(
        self,
        upsample: int = 0,
        threshold: float = 0.0,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.upsample = upsample
        self.threshold = threshold
        self.device = device
        self.threads = threads

    @cached_property
    def model(self) -> MmodModel:
        return load_mmod_model()

    @cached_property
    def session(self) -> OnnxSession:
        return OnnxSession(self.model.onnx_path, device=self.device, threads=self.threads)

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = _as_rgb(image)
        for _ in range(self.upsample):
            image = pyramid_up(image)
        boxes, scores = self.candidates(image)
        kept = non_max_suppression(boxes, scores, self.model.config)
        final = pyramid_down2_rects(boxes[kept], self.upsample)
        return [
            Detection(np.array([b[0], b[1], b[2] + 1, b[3] + 1], np.float32), float(s))
            for b, s in zip(final, scores[kept], strict=True)
        ]

    def candidates(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows scoring above the threshold in ``image`` (RGB, already upsampled), best first, before NMS.

        Boxes are (left, top, right, bottom) int64 with inclusive edges, as dlib's rectangles.
        """
        config = self.model.config
        pyramid, layout = build_tiled_pyramid(image, config)
        out_rows, out_cols = self.model.output_size(layout.rows, layout.cols)
        if not layout.rects or out_rows < 1 or out_cols < 1:
            log.debug("image of %s is too small for the detector", image.shape[:2])
            return np.zeros((0, 4), np.int64), np.zeros(0)
        scores = self.session.run({INPUT_NAME: pyramid})[0][0]
        boxes, values = decode_scores(scores, layout, config, self.threshold)
        log.debug(
            "%d pyramid levels in %dx%d, %d windows above %g",
            layout.levels,
            layout.cols,
            layout.rows,
            len(values),
            self.threshold,
        )
        return boxes, values


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        # dlib's assign_image of a grey image into RGB copies the grey level to each channel.
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {image.shape}")
    return image

"""Compiled (numba) versions of the per-face steps: dlib's shape predictor and the chip's bilinear sampling.

The numpy code in :mod:`faceid.vision.landmarks` and :mod:`faceid.vision.align` evaluates every split of every
tree and every sample at once; for the one to four faces of a video frame most of its time is numpy's per-call
overhead. These loops do the same arithmetic in the same order and precision (float32 where dlib uses float,
float64 where it uses double, integer grey levels, truncation to uint8), one face and one pixel at a time, and
walk each tree only along its path (4 comparisons instead of 15). The results are identical to the numpy code's:
the parity tests run on whichever path is active, and tests/vision/test_kernels.py compares the two.

numba is optional: without it (or with ``FACEID_NO_JIT=1``) :data:`AVAILABLE` is False and the numpy code runs.
Compiled functions are cached on disk (numba's cache), so only the first run on a machine pays the compile
(a few seconds).
"""

from __future__ import annotations

import importlib.util
import logging
from functools import cache
from typing import Any

import numpy as np

from faceid.settings import current

log = logging.getLogger(__name__)

# numba is imported (and the loops compiled, or loaded from numba's cache) on first use, not at import.
AVAILABLE = importlib.util.find_spec("numba") is not None and not current().no_jit


@cache
def _compiled(name: str) -> Any:
    import numba

    try:
        return numba.njit(cache=True, nogil=True)(globals()[name])
    except RuntimeError as error:  # no writable cache folder (read-only install and home): compile every run
        log.warning("numba cannot cache %s (%s); it is compiled on each start", name, error)
        return numba.njit(nogil=True)(globals()[name])


def _shape_predictor(
    image: np.ndarray,  # (H, W, C) uint8, C = 1 or 3
    rects: np.ndarray,  # (F, 4) float64 left top right bottom (dlib's inclusive)
    initial_shape: np.ndarray,  # (2N,) float32
    similarity_weights: np.ndarray,  # (2N, 2) float64
    deltas: np.ndarray,  # (C, P, 2) float32
    anchor: np.ndarray,  # (C, P) intp
    node_threshold: np.ndarray,  # (C, T, S, 2) float32: [..., 0] the split's threshold
    node_pixels: np.ndarray,  # the same memory as int32: [..., 1] its two feature pixels, a | b << 16
    leaf_values: np.ndarray,  # (C, T, L, 2N) float32
    subpixel: bool,
) -> np.ndarray:
    faces = rects.shape[0]
    cascades, trees, splits = node_threshold.shape[:3]
    pixels = deltas.shape[1]
    coordinates = initial_shape.shape[0]
    height, width, channels = image.shape
    out = np.empty((faces, coordinates // 2, 2), np.float32)
    shape = np.empty(coordinates, np.float32)
    values = np.empty(pixels, np.float32)
    for f in range(faces):
        left, top = rects[f, 0], rects[f, 1]
        extent_x, extent_y = rects[f, 2] - left, rects[f, 3] - top
        for i in range(coordinates):
            shape[i] = initial_shape[i]
        for level in range(cascades):
            # The similarity transform (a, b) from the mean shape to the current one, in float64, cast to float32.
            a64 = 0.0
            b64 = 0.0
            for i in range(coordinates):
                s = np.float64(shape[i])
                a64 += s * similarity_weights[i, 0]
                b64 += s * similarity_weights[i, 1]
            a = np.float32(a64)
            b = np.float32(b64)
            for p in range(pixels):
                dx = deltas[level, p, 0]
                dy = deltas[level, p, 1]
                k = anchor[level, p]
                # a * (dx, dy) + b * (-dy, dx) + anchor, in float32 as dlib's matrix product.
                nx = (a * dx + b * -dy) + shape[2 * k]
                ny = (a * dy + b * dx) + shape[2 * k + 1]
                x = np.int64(np.floor(np.float64(nx) * extent_x + left + 0.5))
                y = np.int64(np.floor(np.float64(ny) * extent_y + top + 0.5))
                if x < 0 or y < 0 or x >= width or y >= height:
                    values[p] = 0.0
                elif channels == 3:
                    total = np.uint16(image[y, x, 0]) + np.uint16(image[y, x, 1]) + np.uint16(image[y, x, 2])
                    values[p] = np.float32(total // 3)
                else:
                    values[p] = np.float32(image[y, x, 0])
            for t in range(trees):
                node = 0
                while node < splits:
                    # One 8-byte record per split: a tree's path stays within two cache lines.
                    pair = node_pixels[level, t, node, 1]
                    if values[pair & 0xFFFF] - values[pair >> 16] > node_threshold[level, t, node, 0]:
                        node = 2 * node + 1
                    else:
                        node = 2 * node + 2
                leaf = node - splits
                for i in range(coordinates):
                    shape[i] += leaf_values[level, t, leaf, i]
        for j in range(coordinates // 2):
            px = np.float64(shape[2 * j]) * extent_x + left
            py = np.float64(shape[2 * j + 1]) * extent_y + top
            if not subpixel:
                px = np.floor(px + 0.5)
                py = np.floor(py + 0.5)
            out[f, j, 0] = np.float32(px)
            out[f, j, 1] = np.float32(py)
    return out


def _sample_bilinear(
    source: np.ndarray,  # (H, W, C) uint8
    linear: np.ndarray,  # (2, 2) float64
    offset: np.ndarray,  # (2,) float64
    rows: int,
    cols: int,
) -> np.ndarray:
    height, width, channels = source.shape
    chip = np.zeros((rows, cols, channels), np.uint8)
    if height < 2 or width < 2:
        return chip
    l00, l01, l10, l11 = linear[0, 0], linear[0, 1], linear[1, 0], linear[1, 1]
    o0, o1 = offset[0], offset[1]
    for r in range(rows):
        for c in range(cols):
            # Same operation order as dlib's m * p + b (and the numpy code).
            x = (l00 * c + l01 * r) + o0
            y = (l10 * c + l11 * r) + o1
            left = np.floor(x)
            top = np.floor(y)
            if left < 0 or top < 0 or left + 1 >= width or top + 1 >= height:
                continue  # black where the 2x2 neighbourhood is not inside
            lr = x - left
            tb = y - top
            li = int(left)
            ti = int(top)
            left_weight = 1 - lr
            top_weight = 1 - tb
            for ch in range(channels):
                # dlib's (1-tb)*((1-lr)*tl + lr*tr) + tb*((1-lr)*bl + lr*br), operation by operation.
                value = left_weight * source[ti, li, ch]
                value += lr * source[ti, li + 1, ch]
                value *= top_weight
                bottom = left_weight * source[ti + 1, li, ch]
                bottom += lr * source[ti + 1, li + 1, ch]
                bottom *= tb
                value += bottom
                # dlib's double -> uint8 assignment truncates, saturating at 0 and 255.
                chip[r, c, ch] = int(min(max(value, 0.0), 255.0))
    return chip


def shape_predictor(image: np.ndarray, rects: np.ndarray, arrays: tuple[np.ndarray, ...], subpixel: bool) -> np.ndarray:
    """(F, N, 2) float32 landmarks; ``arrays`` as prepared by ShapePredictorLandmarker."""
    grid = image if image.ndim == 3 else image[:, :, None]
    return _compiled("_shape_predictor")(grid, np.ascontiguousarray(rects, np.float64), *arrays, subpixel)  # type: ignore[no-any-return]


def sample_bilinear(source: np.ndarray, linear: np.ndarray, offset: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return _compiled("_sample_bilinear")(  # type: ignore[no-any-return]
        source, np.ascontiguousarray(linear, np.float64), np.ascontiguousarray(offset, np.float64), rows, cols
    )

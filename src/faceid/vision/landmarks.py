"""dlib's 5-point face landmarks, computed in numpy: ``dlib.shape_predictor.__call__`` reproduced step by step.

dlib (``dlib/image_processing/shape_predictor.h``) starts from the mean shape placed in the box and refines it
through a cascade of regression forests. Each cascade level:

* finds the similarity transform from the mean shape to the current shape (in box-normalised units) and cast
  to float32, as dlib does;
* places its feature pixels: ``box(transform @ delta + current_shape[anchor])``, the inner part in float32,
  then mapped into the image in float64 and rounded to the nearest pixel (``floor(v + 0.5)``);
* reads their grey levels, ``(r + g + b) // 3`` for RGB (dlib's rgb -> grey conversion), 0 outside the image;
* walks every tree (go left when ``pixel_a - pixel_b > threshold``) and adds the leaf increments to the shape,
  one tree after another in float32, so the sums round exactly as dlib's do.

dlib returns the parts as integer points (rounded with ``floor(v + 0.5)``); so does this module unless asked
for the unrounded positions. dlib's boxes are integer rectangles; a box with fractional corners is used as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache

import numpy as np

from faceid.models.shape_predictor import ShapePredictorModel, load_shape_predictor
from faceid.vision import kernels

log = logging.getLogger(__name__)

# A tree is evaluated through a table indexed by all its split outcomes at once, packed in 16 bits.
_MAX_SPLITS_FOR_TABLE = 15
_PACK_BITS = np.uint64(0x0102040810204080)


@cache
def _default_model() -> ShapePredictorModel:
    return load_shape_predictor()


def _leaf_table(splits: int) -> np.ndarray:
    """For every combination of split outcomes (bit i set: split i goes left), the leaf a tree lands in."""
    codes = np.arange(1 << 16, dtype=np.int64)
    node = np.zeros_like(codes)
    for _ in range((splits + 1).bit_length() - 1):
        goes_left = (codes >> node) & 1
        node = 2 * node + 2 - goes_left
    return (node - splits).astype(np.intp)


def _boxes_as_dlib_rects(boxes: np.ndarray) -> np.ndarray:
    """(F, 4) x1 y1 x2 y2 with exclusive right/bottom -> (F, 4) float64 left top right bottom, dlib's inclusive."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - 1, boxes[:, 3] - 1], axis=1)


def _pixel_sampler(image: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function from (..., 2) integer x, y (inside the image) to the (..., channels) pixels there."""
    height, width = image.shape[:2]
    if image.flags.c_contiguous:
        flat = image.reshape(height * width, -1)
        to_flat = np.array([1, width], dtype=np.int64)
        return lambda xy: flat.take(xy @ to_flat, axis=0)
    # A view (a crop, a channel flip): index it in place rather than copy the whole image on every call.
    grid = image if image.ndim == 3 else image[..., None]
    return lambda xy: grid[xy[..., 1], xy[..., 0]]


class ShapePredictorLandmarker:
    """dlib's shape predictor (by default its 5-point face model) as a :class:`faceid.vision.types.Landmarker`.

    ``subpixel=True`` returns the predicted points before dlib rounds them to whole pixels. ``compiled`` picks
    the numba loop (:mod:`faceid.vision.kernels`, the default where numba is installed) or the numpy code; both
    give the same points.
    """

    def __init__(
        self, model: ShapePredictorModel | None = None, *, subpixel: bool = False, compiled: bool | None = None
    ) -> None:
        self.model = model if model is not None else _default_model()
        self.subpixel = subpixel
        if compiled and not kernels.AVAILABLE:
            raise ValueError("compiled landmarks need numba (pip install numba)")
        # The compiled loop packs two feature-pixel indices into an int32 (dlib's models use a few hundred).
        fits = self.model.pixels_per_cascade < 1 << 15
        if compiled and not fits:
            raise ValueError("compiled landmarks take models of fewer than 32768 feature pixels per cascade")
        self.compiled = (kernels.AVAILABLE and fits) if compiled is None else compiled
        m = self.model
        if m.splits_per_tree > _MAX_SPLITS_FOR_TABLE:
            raise ValueError(f"trees with {m.splits_per_tree} splits are not supported (at most 15)")

        # dlib fits, at every cascade level, the similarity transform [[a, -b], [b, a]] taking the mean shape
        # to the current one (Umeyama's method, by SVD). For 2-D points the optimum has a closed form, linear in
        # the current shape: a = sum(cur . ref_c) / |ref_c|^2 and b = sum(cur x ref_c) / |ref_c|^2 with ref_c
        # the centred mean shape (centring cur is unnecessary since ref_c sums to zero). It equals dlib's up to
        # rounding in the last bits of a float64, below what the float32 cast dlib then applies can see.
        ref = m.initial_shape.astype(np.float64).reshape(-1, 2)
        ref = ref - ref.mean(axis=0)
        norm = float((ref**2).sum())
        rotated = np.stack([-ref[:, 1], ref[:, 0]], axis=1)
        self._similarity_weights = np.stack([ref.ravel(), rotated.ravel()], axis=1) / norm  # (2N, 2)

        # The transform [[a, -b], [b, a]] applied to delta (dx, dy) is a * (dx, dy) + b * (-dy, dx): written this
        # way the float32 products and sums are the same IEEE operations as dlib's matrix product.
        self._deltas = m.deltas
        self._deltas_rotated = np.stack([-m.deltas[..., 1], m.deltas[..., 0]], axis=-1)
        self._anchor = m.anchor_idx.astype(np.intp)

        # Every split of every tree is evaluated at once; the 15 outcomes of a tree (padded to 16 with a split
        # that never goes left) are packed into two bytes that index a table giving the leaf reached.
        pad = ((0, 0), (0, 0), (0, 16 - m.splits_per_tree))
        operands = [np.pad(m.split_pixel_a, pad), np.pad(m.split_pixel_b, pad)]
        self._split_pixels = np.stack(operands, axis=1).astype(np.intp)  # (C, 2, T, 16)
        self._threshold = np.pad(m.split_threshold, pad, constant_values=np.inf)  # (C, T, 16)
        self._leaf_of_code = _leaf_table(m.splits_per_tree)  # code: low byte splits 0-7, high byte splits 8-15
        # Leaf increments of each cascade laid out (2N, T * L) so that the tree-by-tree accumulation below runs
        # along contiguous memory; a tree's leaf l is column t * L + l.
        leaves = m.splits_per_tree + 1
        self._leaf_offsets = np.arange(m.trees_per_cascade, dtype=np.intp) * leaves
        self._leaf_columns = np.ascontiguousarray(
            m.leaf_values.reshape(m.num_cascades, m.trees_per_cascade * leaves, -1).transpose(0, 2, 1)
        )
        nodes = np.zeros((*m.split_threshold.shape, 2), np.float32)
        nodes[..., 0] = m.split_threshold
        packed = m.split_pixel_a.astype(np.int32) | (m.split_pixel_b.astype(np.int32) << 16)
        nodes.view(np.int32)[..., 1] = packed
        self._kernel_arrays = (
            np.ascontiguousarray(m.initial_shape, np.float32),
            np.ascontiguousarray(self._similarity_weights, np.float64),
            np.ascontiguousarray(m.deltas, np.float32),
            np.ascontiguousarray(m.anchor_idx, np.intp),
            # Each split as one 8-byte record (threshold, and both feature pixels packed in an int32), read through
            # two views of the same memory: the tree walk is bound by memory when the other models have pushed
            # these tables (6 MB) out of the caches between faces.
            nodes,
            nodes.view(np.int32),
            np.ascontiguousarray(m.leaf_values, np.float32),
        )

    @property
    def num_parts(self) -> int:
        return self.model.num_parts

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The landmarks (N x 2, float32) of the face in ``box`` (x1, y1, x2, y2, exclusive right/bottom)."""
        return self.landmarks_batch(image, np.asarray(box).reshape(1, 4))[0]

    def landmarks_batch(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The landmarks (F x N x 2, float32) of several faces of one image, computed together."""
        image = np.asarray(image)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
            raise ValueError(f"expected an H x W x 3 RGB or H x W grey image, got shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image, got {image.dtype}")
        rects = _boxes_as_dlib_rects(boxes)
        faces = rects.shape[0]
        m = self.model
        if faces == 0:
            return np.zeros((0, m.num_parts, 2), dtype=np.float32)
        if self.compiled:
            return kernels.shape_predictor(image, rects, self._kernel_arrays, self.subpixel)

        height, width = image.shape[:2]
        sample = _pixel_sampler(image)
        origin = rects[:, None, :2]  # (F, 1, 2)
        # dlib's unnormalizing transform maps (0,0) to the box's top-left and (1,1) to its bottom-right corner.
        extent = rects[:, None, 2:] - rects[:, None, :2]

        shape = np.broadcast_to(m.initial_shape, (faces, m.initial_shape.shape[0])).astype(np.float32)
        for level in range(m.num_cascades):
            a_b = (shape.astype(np.float64) @ self._similarity_weights).astype(np.float32)  # (F, 2)
            anchors = shape.reshape(faces, -1, 2).take(self._anchor[level], axis=1)  # (F, P, 2)
            normalised = (
                a_b[:, 0, None, None] * self._deltas[level] + a_b[:, 1, None, None] * self._deltas_rotated[level]
            ) + anchors
            where = normalised.astype(np.float64) * extent + origin
            where += 0.5
            where = np.floor(where, out=where).astype(np.int64)
            # Negative coordinates wrap to huge unsigned numbers, so one comparison per axis finds those inside.
            unsigned = where.view(np.uint64)
            inside = (unsigned[..., 0] < width) & (unsigned[..., 1] < height)
            sampled = sample(np.where(inside[..., None], where, 0))  # (F, P, channels)
            # dlib's rgb -> grey conversion: the integer mean of the three channels.
            grey = sampled.sum(axis=-1, dtype=np.uint16) // 3 if sampled.shape[-1] == 3 else sampled[..., 0]
            values = (grey * inside).astype(np.float32)  # 0 outside the image, as in dlib

            operands = values.take(self._split_pixels[level], axis=1)  # (F, 2, T, 16)
            goes_left = operands[:, 0] - operands[:, 1] > self._threshold[level]
            # Pack each tree's 16 outcomes (bytes of 0/1) into two bytes: multiplying 8 such bytes read as one
            # little-endian uint64 by 0x0102040810204080 gathers byte i's bit at bit 56 + i.
            packed = ((goes_left.view("<u8") * _PACK_BITS) >> np.uint64(56)).astype(np.uint8)  # (F, T, 2)
            leaves = self._leaf_of_code.take(packed.view("<u2")[..., 0]) + self._leaf_offsets  # (F, T)
            increments = self._leaf_columns[level].take(leaves, axis=1)  # (2N, F, T)
            # dlib adds the trees' increments to the shape one after another, in float32; accumulate does the same.
            series = np.concatenate([shape.T[:, :, None], increments], axis=2)  # (2N, F, 1 + T)
            shape = np.add.accumulate(series, axis=2)[:, :, -1].T

        result = shape.reshape(faces, -1, 2).astype(np.float64) * extent + origin
        if not self.subpixel:
            result = np.floor(result + 0.5)
        return result.astype(np.float32)

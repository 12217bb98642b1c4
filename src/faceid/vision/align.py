"""Aligned face chips exactly as ``dlib.get_face_chip`` cuts them, in numpy.

dlib (``dlib/image_transforms/interpolation.h``) aligns a face in two steps:

* ``get_face_chip_details``: the least-squares similarity transform taking a fixed 5-point template (scaled to
  the chip and padded) onto the face's landmarks gives the chip's rotation angle and, as a rectangle centred on
  the chip's centre, its extent in the image;
* ``extract_image_chip``: when the chip is much smaller than that rectangle, the image region around it is
  first halved (``pyramid_down<2>``: a 5-tap [1 4 6 4 1] binomial filter and every other pixel, integer
  arithmetic) until one more halving would leave it no larger than the chip; the chip is then sampled from that
  level by bilinear interpolation in float64, truncated to uint8, with black where the 2x2 neighbourhood of a
  sample is not entirely inside the (cropped) source.

Each step is reproduced with the same arithmetic, so chips match dlib's to the grey level except where a
float64 rounding in the last bit tips a truncation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from faceid.vision import kernels

# dlib's 5-point face template (get_face_chip_details), in units of the unpadded chip, in the order of dlib's 5
# landmarks: outer then inner corner of the eye on the image's right, the same for the eye on the image's left,
# then the base of the nose.
FACE_TEMPLATE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)

# A rectangle (left, top, right, bottom), dlib style: right and bottom are inclusive, so width = right - left + 1.
Rect = tuple[float, float, float, float]


@dataclass(frozen=True)
class ChipDetails:
    """dlib's ``chip_details``: where in the image a chip is cut from and at what angle."""

    rect: Rect  # dlib drectangle in image coordinates, before rotation about its centre
    angle: float  # radians; the chip's x axis is the image's rotated by this angle
    rows: int
    cols: int

    @property
    def size(self) -> int:
        return self.rows * self.cols


# ---------------------------------------------------------------------------------------------------------------
# dlib geometry helpers (drectangle semantics)


def _width(rect: Rect) -> float:
    return 0.0 if _is_empty(rect) else rect[2] - rect[0] + 1


def _height(rect: Rect) -> float:
    return 0.0 if _is_empty(rect) else rect[3] - rect[1] + 1


def _area(rect: Rect) -> float:
    return _width(rect) * _height(rect)


def _is_empty(rect: Rect) -> bool:
    return rect[1] > rect[3] or rect[0] > rect[2]


def _center(rect: Rect) -> tuple[float, float]:
    return (rect[0] + rect[2]) / 2.0, (rect[1] + rect[3]) / 2.0


def _point_down(x: float, y: float) -> tuple[float, float]:
    """pyramid_down<2>::point_down: where a point of an image lands in its half-size pyramid level."""
    return x / 2.0 - 1.25, y / 2.0 - 0.75


def _rect_down(rect: Rect) -> Rect:
    left, top = _point_down(rect[0], rect[1])
    right, bottom = _point_down(rect[2], rect[3])
    return min(left, right), min(top, bottom), max(left, right), max(top, bottom)


def _rotate_point(center: tuple[float, float], x: float, y: float, angle: float) -> tuple[float, float]:
    sin, cos = math.sin(angle), math.cos(angle)
    dx, dy = x - center[0], y - center[1]
    return cos * dx - sin * dy + center[0], sin * dx + cos * dy + center[1]


def _round_rect(rect: Rect) -> tuple[int, int, int, int]:
    """drectangle -> rectangle: each side rounded with floor(v + 0.5)."""
    left, top, right, bottom = (math.floor(v + 0.5) for v in rect)
    return left, top, right, bottom


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    if b[0] > b[2] or b[1] > b[3]:
        return a
    if a[0] > a[2] or a[1] > a[3]:
        return b
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _similarity_transform(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity (scaled rotation + translation) mapping ``source`` points onto ``target`` points.

    dlib's find_similarity_transform (Umeyama's method via an SVD); for 2-D points the optimal scaled rotation
    [[a, -b], [b, a]] has this closed form, equal to dlib's up to rounding in the last bits of a float64.
    """
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - source_mean, target - target_mean
    norm = float((src**2).sum())
    if norm == 0.0:
        linear = np.eye(2)
    else:
        a = float((src * dst).sum()) / norm
        b = float((src[:, 0] * dst[:, 1] - src[:, 1] * dst[:, 0]).sum()) / norm
        linear = np.array([[a, -b], [b, a]])
    return linear, target_mean - linear @ source_mean


def _affine_from_points(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dlib's find_affine_transform: the least-squares affine map, target = m @ source + b, via a pseudo-inverse."""
    homogeneous = np.vstack([source.T, np.ones(len(source))])
    m = target.T @ np.linalg.pinv(homogeneous)
    return m[:, :2], m[:, 2]


# ---------------------------------------------------------------------------------------------------------------
# Chip geometry


def face_chip_details(landmarks5: np.ndarray, size: int = 150, padding: float = 0.25) -> ChipDetails:
    """dlib's ``get_face_chip_details`` for a 5-point shape: the chip's angle and its rectangle in the image.

    dlib's landmarks are whole pixels; fractional ones are used as they are.
    """
    points = np.asarray(landmarks5, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected 5 landmarks as a (5, 2) array, got shape {points.shape}")
    if size <= 0 or padding < 0:
        raise ValueError("size must be positive and padding non-negative")
    template = (padding + FACE_TEMPLATE_5) / (2 * padding + 1) * size
    linear, offset = _similarity_transform(template, points)
    angle = math.atan2(linear[1, 0], linear[0, 0])
    scale = math.hypot(linear[0, 0], linear[1, 0])
    center_x, center_y = linear @ np.array([size / 2.0, size / 2.0]) + offset
    # dlib's centered_drect: the rectangle's width counts both end pixels, hence the - 1.
    half = (size * scale - 1) / 2
    rect = (float(center_x - half), float(center_y - half), float(center_x + half), float(center_y + half))
    return ChipDetails(rect=rect, angle=angle, rows=size, cols=size)


def _chip_to_source(details: ChipDetails, rect: Rect) -> tuple[np.ndarray, np.ndarray]:
    """The affine map from chip pixels to the image in which ``rect`` is the chip's (unrotated) rectangle."""
    center = _center(rect)
    corners = [(rect[0], rect[1]), (rect[2], rect[1]), (rect[0], rect[3])]  # top-left, top-right, bottom-left
    (x0, y0), (x1, y1), (x2, y2) = (_rotate_point(center, x, y, details.angle) for x, y in corners)
    # dlib fits the affine map through these three point pairs by least squares (a pseudo-inverse); three pairs
    # determine it exactly, so it is written out: chip (0, 0) -> top-left, the x axis to the top-right corner over
    # cols - 1 pixels, the y axis to the bottom-left over rows - 1. It agrees with the pseudo-inverse's to the last
    # bits of a float64 (_chip_to_source_pinv; tests compare them) at a tenth of its cost.
    sx, sy = max(details.cols - 1.0, 1.0), max(details.rows - 1.0, 1.0)
    linear = np.array([[(x1 - x0) / sx, (x2 - x0) / sy], [(y1 - y0) / sx, (y2 - y0) / sy]])
    return linear, np.array([x0, y0])


def _chip_to_source_pinv(details: ChipDetails, rect: Rect) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_chip_to_source` the way dlib computes it, through a pseudo-inverse (the reference it is tested on)."""
    center = _center(rect)
    corners = [(rect[0], rect[1]), (rect[2], rect[1]), (rect[0], rect[3])]
    target = np.array([_rotate_point(center, x, y, details.angle) for x, y in corners])
    source = np.array([[0.0, 0.0], [details.cols - 1.0, 0.0], [0.0, details.rows - 1.0]])
    return _affine_from_points(source, target)


def chip_transform(landmarks5: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The 2x3 affine matrix mapping chip pixel (x, y, 1) to image coordinates, for :func:`face_chip`'s chip.

    Image points map into the chip through its inverse (e.g. ``cv2.invertAffineTransform``).
    """
    details = face_chip_details(landmarks5, size, padding)
    linear, offset = _chip_to_source(details, details.rect)
    return np.hstack([linear, offset[:, None]])


# ---------------------------------------------------------------------------------------------------------------
# Pixels


def pyramid_down(image: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_down<2>``: a 5x5 [1 4 6 4 1]^2 / 256 filter and every other row and column, in integers.

    Output pixel (r, c) is centred on input pixel (2r + 2, 2c + 2); the output has (H - 3) // 2 rows and
    (W - 3) // 2 columns; images of 8 pixels or fewer on a side give an empty image.
    """
    if image.ndim == 2:
        return pyramid_down(image[:, :, None])[:, :, 0]
    height, width = image.shape[:2]
    if height <= 8 or width <= 8:
        return np.zeros((0, 0, *image.shape[2:]), dtype=image.dtype)
    out_h, out_w = (height - 3) // 2, (width - 3) // 2
    # dlib filters rows then columns; the sums are exact integers (the largest, 16 * 16 * 255, fits in uint16 as in
    # dlib's own accumulators), so filtering columns first gives the same result. It is faster here: slicing along
    # the first axis keeps numpy's inner loops long and contiguous, and the second pass runs on channel planes.
    columns_filtered = _binomial_taps(image.astype(np.uint16), out_h, axis=0)  # (out_h, W, C)
    planes = np.ascontiguousarray(np.moveaxis(columns_filtered, -1, 0))  # (C, out_h, W)
    filtered = _binomial_taps(planes, out_w, axis=2) >> 8  # (C, out_h, out_w), // 256
    return np.ascontiguousarray(np.moveaxis(filtered.astype(np.uint8), 0, -1))


def _binomial_taps(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """out[i] = a[2i] + 4 a[2i+1] + 6 a[2i+2] + 4 a[2i+3] + a[2i+4] along ``axis``, for i < n (exact integers)."""

    def tap(k: int) -> np.ndarray:
        index = [slice(None)] * a.ndim
        index[axis] = slice(k, k + 2 * n, 2)
        return a[tuple(index)]

    out = tap(0) + tap(4)
    side = tap(1) + tap(3)
    side *= 4
    out += side
    centre = tap(2) * 6
    out += centre
    return out


# The chip's pixels come from the compiled loop (faceid.vision.kernels) where numba is installed; both give the
# same pixels. Tests switch this off to compare the two.
USE_KERNELS = kernels.AVAILABLE


def _sample_bilinear(source: np.ndarray, linear: np.ndarray, offset: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """dlib's transform_image with interpolate_bilinear and a black background: chip pixel (c, r) takes the
    value at ``linear @ (c, r) + offset`` in ``source``, or black where the 2x2 neighbourhood is not inside."""
    if USE_KERNELS:
        return kernels.sample_bilinear(source, linear, offset, rows, cols)
    return _sample_bilinear_numpy(source, linear, offset, rows, cols)


def _sample_bilinear_numpy(
    source: np.ndarray, linear: np.ndarray, offset: np.ndarray, rows: int, cols: int
) -> np.ndarray:
    channels = source.shape[2]
    chip = np.zeros((rows, cols, channels), dtype=np.uint8)
    height, width = source.shape[:2]
    if height < 2 or width < 2:
        return chip
    c = np.arange(cols, dtype=np.float64)[None, :]
    r = np.arange(rows, dtype=np.float64)[:, None]
    # Same operation order as dlib's m * p + b.
    x = ((linear[0, 0] * c + linear[0, 1] * r) + offset[0]).ravel()
    y = ((linear[1, 0] * c + linear[1, 1] * r) + offset[1]).ravel()
    left, top = np.floor(x), np.floor(y)
    inside = (left >= 0) & (top >= 0) & (left + 1 < width) & (top + 1 < height)
    if not inside.any():
        return chip
    everywhere = bool(inside.all())
    if not everywhere:
        x, y, left, top = x[inside], y[inside], left[inside], top[inside]
    lr_frac, tb_frac = x - left, y - top
    corner = top.astype(np.intp) * width + left.astype(np.intp)
    # The four neighbours of every sample in one gather, then channel-major so that the arithmetic below runs
    # along contiguous rows: (channels, 4, samples), neighbours top-left, top-right, bottom-left, bottom-right.
    neighbours = source.reshape(height * width, channels).take(
        np.concatenate([corner, corner + 1, corner + width, corner + width + 1]), axis=0
    )
    tl, tr, bl, br = np.ascontiguousarray(neighbours.T, dtype=np.float64).reshape(channels, 4, -1).transpose(1, 0, 2)
    # dlib's (1-tb)*((1-lr)*tl + lr*tr) + tb*((1-lr)*bl + lr*br), operation by operation in the same order (so
    # every float64 rounding is the same), in place to spare temporaries.
    left_weight = 1 - lr_frac
    value = left_weight * tl
    value += lr_frac * tr
    value *= 1 - tb_frac
    bottom = left_weight * bl
    bottom += lr_frac * br
    bottom *= tb_frac
    value += bottom
    # dlib's double -> uint8 assignment truncates, saturating at 0 and 255.
    np.clip(value, 0, 255, out=value)
    if everywhere:
        chip.reshape(rows * cols, channels)[...] = value.T
    else:
        chip.reshape(rows * cols, channels)[inside] = value.T
    return chip


def _copy_rect(image: np.ndarray, rect: Rect) -> np.ndarray:
    """dlib's basic_extract_image_chip: the pixels of ``rect`` (rounded), black where it leaves the image."""
    left, top, right, bottom = _round_rect(rect)
    rows, cols = max(bottom - top + 1, 0), max(right - left + 1, 0)
    chip = np.zeros((rows, cols, image.shape[2]), dtype=np.uint8)
    height, width = image.shape[:2]
    y0, y1, x0, x1 = max(top, 0), min(bottom + 1, height), max(left, 0), min(right + 1, width)
    if y0 < y1 and x0 < x1:
        chip[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return chip


def extract_image_chips(image: np.ndarray, chips: Sequence[ChipDetails]) -> list[np.ndarray]:
    """dlib's ``extract_image_chips`` with bilinear interpolation; all chips share one image pyramid, as in dlib."""
    image = _as_channels(image)
    height, width = image.shape[:2]
    image_rect: Rect = (0.0, 0.0, width - 1.0, height - 1.0)

    # How deep the pyramid must go, and which part of the image it needs (the chips' rotated rectangles plus
    # a border that grows with the depth).
    max_depth = 0
    region = (0, 0, -1, -1)
    for details in chips:
        depth, grow = 0, 2.0
        rect = _rect_down(details.rect)
        while _area(rect) > details.size:
            rect = _rect_down(rect)
            depth += 1
            grow = grow * 2 + 2
        center = _center(details.rect)
        left, top, right, bottom = details.rect
        corners = [
            _rotate_point(center, x, y, details.angle)
            for x, y in ((left, top), (right, top), (left, bottom), (right, bottom))
        ]
        xs, ys = [p[0] for p in corners], [p[1] for p in corners]
        grown = (min(xs) - grow, min(ys) - grow, max(xs) + grow, max(ys) + grow)
        clipped = (
            max(grown[0], image_rect[0]),
            max(grown[1], image_rect[1]),
            min(grown[2], image_rect[2]),
            min(grown[3], image_rect[3]),
        )
        region = _union(region, _round_rect(clipped))
        max_depth = max(max_depth, depth)

    # The source crop: the region, clipped to the image (dlib's sub_image).
    rx0, ry0 = max(region[0], 0), max(region[1], 0)
    rx1, ry1 = min(region[2] + 1, width), min(region[3] + 1, height)
    # Contiguous, so that sampling it gathers from one flat array instead of copying the view per chip.
    crop = np.ascontiguousarray(image[ry0 : max(ry1, ry0), rx0 : max(rx1, rx0)])
    levels: list[np.ndarray] = []
    for _ in range(max_depth):
        levels.append(pyramid_down(levels[-1] if levels else crop))

    out: list[np.ndarray] = []
    for details in chips:
        left, top, right, bottom = details.rect
        if details.angle == 0 and details.rows == _height(details.rect) and details.cols == _width(details.rect):
            out.append(_copy_rect(image, details.rect))
            continue
        level = -1
        rect = (left - region[0], top - region[1], right - region[0], bottom - region[1])
        while _area(_rect_down(rect)) > details.size:
            level += 1
            rect = _rect_down(rect)
        source = crop if level < 0 else levels[min(level, len(levels) - 1)]
        linear, offset = _chip_to_source(details, rect)
        out.append(_sample_bilinear(source, linear, offset, details.rows, details.cols))
    return out


def _as_channels(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected an H x W x 3 uint8 image, got {image.dtype} with shape {image.shape}")
    return image[:, :, None] if image.ndim == 2 else image


def face_chip(image: np.ndarray, landmarks5: np.ndarray, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """The aligned (size, size, 3) uint8 face chip, as ``dlib.get_face_chip(image, shape, size, padding)``."""
    chip = extract_image_chips(image, [face_chip_details(landmarks5, size, padding)])[0]
    return chip if np.asarray(image).ndim == 3 else chip[:, :, 0]


def face_chips(
    image: np.ndarray,
    landmarks_list: Sequence[np.ndarray],
    size: int = 150,
    padding: float = 0.25,
    *,
    shared_pyramid: bool = False,
) -> np.ndarray:
    """(N, size, size, 3) uint8 chips of several faces of one image.

    By default each chip equals :func:`face_chip`'s. ``shared_pyramid=True`` builds one pyramid for all the
    faces, as ``dlib.get_face_chips`` does, and matches that function instead (the pyramid's pixel grid
    depends on the region it covers, so the two differ slightly when a pyramid is used).
    """
    image = np.asarray(image)
    details = [face_chip_details(points, size, padding) for points in landmarks_list]
    if shared_pyramid:
        chips = extract_image_chips(image, details)
    else:
        chips = [extract_image_chips(image, [d])[0] for d in details]
    channels = () if image.ndim == 2 else (image.shape[2],)
    if not chips:
        return np.zeros((0, size, size, *channels), dtype=np.uint8)
    stacked = np.stack(chips)
    return stacked if image.ndim == 3 else stacked[..., 0]

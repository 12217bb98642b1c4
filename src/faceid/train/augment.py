"""Views of an aligned chip for training: the chip itself, its mirror, and small random re-alignments.

The jitter imitates what alignment errors and lighting do between two photos of one person:
a slight rotation, scale and shift of the chip, a random mirror, and a brightness/contrast change.
It is kept small because the chips are already aligned by the same landmarks at test time.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MAX_ROTATION_DEGREES = 6.0
MAX_SCALE_CHANGE = 0.06
MAX_SHIFT_PIXELS = 5.0
MAX_BRIGHTNESS = 0.12
MAX_CONTRAST = 0.12


def jitter(chip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random view of a (S, S, 3) uint8 chip."""
    size = chip.shape[0]
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
    scale = 1.0 + rng.uniform(-MAX_SCALE_CHANGE, MAX_SCALE_CHANGE)
    shift = rng.uniform(-MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS, size=2)
    centre = (size - 1) / 2
    # PIL maps each output pixel to an input pixel: input = A @ (output - centre) + centre - shift.
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    a, b = cos, -sin
    d, e = sin, cos
    c = centre - a * centre - b * centre - shift[0]
    f = centre - d * centre - e * centre - shift[1]
    image = Image.fromarray(chip).transform(
        (size, size), Image.Transform.AFFINE, (a, b, c, d, e, f), resample=Image.Resampling.BILINEAR
    )
    out = np.asarray(image, np.float32)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    contrast = 1.0 + rng.uniform(-MAX_CONTRAST, MAX_CONTRAST)
    brightness = 255.0 * rng.uniform(-MAX_BRIGHTNESS, MAX_BRIGHTNESS)
    out = (out - 127.5) * contrast + 127.5 + brightness
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def view(chips: np.ndarray, index: int, rng: np.random.Generator) -> np.ndarray:
    """View ``index`` of a batch of chips: 0 the chips, 1 their mirror images, from 2 on random jitter."""
    if index == 0:
        return np.ascontiguousarray(chips)
    if index == 1:
        return np.ascontiguousarray(chips[:, :, ::-1])
    return np.stack([jitter(chip, rng) for chip in chips])

"""Turn whatever the caller has (a path, bytes, a numpy array, a PIL image) into an RGB uint8 array.

EXIF orientation is applied, alpha is dropped, grayscale is expanded, 16-bit and float images are
scaled to 8 bits. Unreadable input raises :class:`faceid.errors.ImageError` with the reason; an
image with more pixels than :data:`faceid.thresholds.MAX_IMAGE_PIXELS` is refused before it is
decoded, so a small file claiming a huge size cannot exhaust memory.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from faceid.errors import ImageError, ImageTooLargeError
from faceid.thresholds import MAX_IMAGE_PIXELS

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray | Image.Image

# PIL's own guard only warns below twice its limit; faceid checks the size itself, before decoding.
Image.MAX_IMAGE_PIXELS = None


def describe_source(source: Any) -> str:
    """An image source in words, for messages: its path, its size in bytes or its type."""
    if isinstance(source, str | os.PathLike):
        return str(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def load_image(source: ImageSource, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Return the image as a C-contiguous ``H x W x 3`` uint8 RGB array."""
    if isinstance(source, np.ndarray):
        return array_to_rgb(source)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source, "<PIL image>", max_pixels)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path}: no such file")
        data = path.read_bytes()
    else:
        raise ImageError(f"cannot read an image from a {type(source).__name__}")
    name = describe_source(source)
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image, or an image format faceid cannot read") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"{name}: unreadable image ({error})") from None
    return _pil_to_rgb(image, name, max_pixels)


def _pil_to_rgb(image: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{name}: image is {width}x{height} pixels, over the limit of {max_pixels} pixels")
    try:
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return array_to_rgb(_pil_to_array(image))
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageError(f"{name}: corrupt or truncated image ({error})") from None


def _pil_to_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.uint16)
    if image.mode == "I":
        values = np.asarray(image, dtype=np.int64)
        # 32-bit integer mode holds 16-bit data when PIL widens it.
        return np.clip(values, 0, 65535).astype(np.uint16)
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    if image.mode in ("RGB", "L"):
        return np.asarray(image)
    if image.mode in ("RGBA", "LA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1", "RGBX", "RGBa"):
        return np.asarray(image.convert("RGB"))
    return np.asarray(image.convert("RGB"))


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    """Normalise a numpy image (gray, RGB or RGBA; uint8, uint16, bool or float in [0, 1]) to RGB uint8."""
    if not isinstance(array, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"expected an H x W, H x W x 3 or H x W x 4 image array, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError("image has no pixels")
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("image array holds NaN or infinite values")
        scale = 255.0 if array.max(initial=0.0) <= 1.0 else 1.0
        array = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        array = np.clip(array, 0, 255).astype(np.uint8)
    else:
        raise ImageError(f"unsupported image array type {array.dtype}")
    return np.ascontiguousarray(array)


def sample_grid(rgb: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Single pixels of ``rgb`` on a grid of about ``rows`` x ``columns``, each in the middle of its cell."""
    height, width = rgb.shape[:2]
    step_y, step_x = max(1, height // rows), max(1, width // columns)
    return rgb[step_y // 2 :: step_y, step_x // 2 :: step_x]

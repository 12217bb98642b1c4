"""Image decoding: every kind of input the pipeline accepts, and clear errors for bad input."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceid.errors import ImageError, ImageTooLargeError
from faceid.vision.image import array_to_rgb, load_image


def _png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_path_bytes_array_and_pil_give_the_same_pixels(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(_png_bytes(rgb))
    for source in (path, str(path), path.read_bytes(), rgb, Image.fromarray(rgb)):
        out = load_image(source)
        assert out.dtype == np.uint8 and out.shape == (40, 60, 3)
        assert np.array_equal(out, rgb)


def test_rgba_gray_and_16_bit_become_rgb() -> None:
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    assert np.array_equal(load_image(_png_bytes(rgba))[0, 0], [200, 0, 0])
    gray = np.full((10, 12), 77, np.uint8)
    assert np.array_equal(load_image(_png_bytes(gray))[3, 3], [77, 77, 77])
    gray16 = np.full((10, 12), 51200, np.uint16)
    for source in (Image.fromarray(gray16), _png_bytes(gray16), gray16):
        out = load_image(source)
        assert out.shape == (10, 12, 3) and out[0, 0, 0] == 200
    assert load_image(np.full((4, 4), 0.5, np.float32))[0, 0, 0] == 128


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (60, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    assert load_image(buffer.getvalue()).shape == (60, 20, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not an image"),
        (b"%PDF-1.4 something", "not an image"),
    ],
)
def test_unreadable_bytes_raise_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_jpeg_raises(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buffer, "JPEG")
    with pytest.raises(ImageError, match=r"truncated|corrupt|unreadable"):
        load_image(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def test_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match="50000x50000"):
        load_image(png_claiming_size(50000, 50000))


def test_missing_file_and_wrong_types() -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image("/nonexistent/photo.jpg")
    with pytest.raises(ImageError):
        load_image(12345)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="shape"):
        array_to_rgb(np.zeros((4, 4, 7), np.uint8))
    with pytest.raises(ImageError, match="NaN"):
        array_to_rgb(np.full((4, 4, 3), np.nan, np.float32))

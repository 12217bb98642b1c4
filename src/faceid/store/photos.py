"""From a photo the caller gives to the one face the store will keep, refusing what it cannot use.

All of this happens before any transaction starts, so a refused photo changes nothing.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image

from faceid.errors import ImageError, MultipleFacesError, NoFaceError
from faceid.vision.image import ImageSource, describe_source, load_image

if TYPE_CHECKING:
    from faceid.vision.types import Face

Pick = Literal["one", "largest"]
PICKS: tuple[Pick, ...] = ("one", "largest")

# PIL's format names -> the file extension the image folder uses.
IMAGE_TYPES = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif", "MPO": "jpg"}


@dataclass
class PreparedFace:
    """One face ready to be stored: its descriptor and where it came from."""

    embedding: np.ndarray
    model_id: str
    image: bytes | None = None
    image_type: str | None = None
    box: list[float] | None = None
    landmarks: list[list[float]] | None = None
    quality: float | None = None
    size: float | None = None
    label: str = ""
    image_size: tuple[int, int] | None = None  # (height, width) of the photo


def source_bytes(source: ImageSource) -> tuple[bytes, str]:
    """The bytes to keep for ``source`` and their image type; arrays and PIL images are kept as PNG."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path}: no such file")
        data = path.read_bytes()
    elif isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, np.ndarray | Image.Image):
        rgb = load_image(source)
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG")
        return buffer.getvalue(), "png"
    else:
        raise ImageError(f"cannot read an image from a {type(source).__name__}")
    if not data:
        raise ImageError(f"{describe_source(source)}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image_format = Image.open(io.BytesIO(data)).format or ""
    except Exception:
        raise ImageError(f"{describe_source(source)}: not an image, or an image format faceid cannot read") from None
    return data, IMAGE_TYPES.get(image_format, image_format.lower()[:8] or "bin")


def choose_face(
    faces: list[Face], pick: Pick, label: str, several: str = "pick the largest one (--largest) or crop the photo"
) -> Face:
    """The face to keep: refuse none; refuse several unless asked for the largest (faces come largest first).
    ``several`` tells the caller what to do about several faces, in the words of where they called from."""
    if not faces:
        raise NoFaceError(f"{label}: no face found")
    if len(faces) > 1 and pick != "largest":
        raise MultipleFacesError(f"{label}: {len(faces)} faces found; {several}")
    return faces[0]


def prepare_face(analyzer: object, source: ImageSource, pick: Pick = "one", keep_image: bool = True) -> PreparedFace:
    """Decode, detect, check and describe the face of one photo (``analyzer`` is a faceid.Analyzer)."""
    if pick not in PICKS:
        raise ValueError(f"pick must be one of {PICKS}, not {pick!r}")
    label = describe_source(source)
    data, image_type = source_bytes(source)
    rgb = load_image(data)
    face = choose_face(analyzer.analyze(rgb), pick, label)  # type: ignore[attr-defined]
    return prepared_from_face(
        face,
        str(analyzer.model_id),  # type: ignore[attr-defined]
        data if keep_image else None,
        image_type if keep_image else None,
        label,
    )


def prepare_candidates(analyzer: object, source: ImageSource, keep_image: bool = True) -> list[PreparedFace]:
    """Every face of one photo, described, largest first (a folder import chooses among them). None: NoFaceError."""
    label = describe_source(source)
    data, image_type = source_bytes(source)
    rgb = load_image(data)
    faces = analyzer.analyze(rgb)  # type: ignore[attr-defined]
    if not faces:
        raise NoFaceError(f"{label}: no face found")
    model_id = str(analyzer.model_id)  # type: ignore[attr-defined]
    prepared = [
        prepared_from_face(face, model_id, data if keep_image else None, image_type if keep_image else None, label)
        for face in faces
    ]
    for face in prepared:
        face.image_size = (int(rgb.shape[0]), int(rgb.shape[1]))
    return prepared


def prepared_from_face(
    face: Face, model_id: str, image: bytes | None, image_type: str | None, label: str = ""
) -> PreparedFace:
    return PreparedFace(
        embedding=np.asarray(face.embedding, np.float32).reshape(-1),
        model_id=model_id,
        image=image,
        image_type=image_type,
        box=[round(float(v), 2) for v in np.asarray(face.box).reshape(-1)],
        landmarks=[[round(float(x), 2), round(float(y), 2)] for x, y in np.asarray(face.landmarks).reshape(-1, 2)],
        quality=float(face.score),
        size=float(face.size),
        label=label,
    )

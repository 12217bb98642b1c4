"""Photos sent to the API: read, decoded and analysed with messages that name the file."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from fastapi import UploadFile
from PIL import Image

from faceid.errors import BadInputError
from faceid.server.errors import ApiError
from faceid.store.photos import IMAGE_TYPES
from faceid.vision.image import load_image


@dataclass
class Photo:
    name: str
    data: bytes
    rgb: np.ndarray
    image_type: str


def relabel(error: BadInputError, name: str) -> BadInputError:
    """The same error, naming the uploaded file instead of '<1234 bytes>'."""
    text = str(error)
    if text.startswith(f"{name}: "):
        return error
    if text.startswith("<") and ": " in text:
        text = text.split(": ", 1)[1]
    return type(error)(f"{name}: {text}")


def read_photo(upload: UploadFile | None, field: str = "photo") -> Photo:
    """Read and decode one uploaded photo (the handler runs in a worker thread, so reading blocks nothing)."""
    if upload is None or not hasattr(upload, "file"):
        raise ApiError(422, f"send a photo in the multipart field {field!r}", "bad_input")
    name = (upload.filename or field)[:200]
    data = upload.file.read()
    if not data:
        raise ApiError(422, f"{name}: the file is empty", "bad_input")
    try:
        rgb = load_image(data)
        with Image.open(io.BytesIO(data)) as image:
            kind = IMAGE_TYPES.get(image.format or "", (image.format or "bin").lower()[:8])
    except BadInputError as error:
        raise relabel(error, name) from None
    return Photo(name=name, data=data, rgb=rgb, image_type=kind)

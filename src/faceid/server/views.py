"""Read-side helpers: turning store records into API answers (with thumbnails and people's names)."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from fastapi import Request, Response
from PIL import Image, ImageOps

from faceid.errors import NotFoundError
from faceid.store import EventRecord, FaceRecord, PersonRecord, Store

API = "/api/v1"
THUMBNAIL_SIZE = 160
THUMBNAIL_CACHE = 1024
MEDIA_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
}


def media_type(image_type: str | None) -> str:
    return MEDIA_TYPES.get(image_type or "", "application/octet-stream")


def image_version(sha256: str) -> str:
    """What an image URL carries (``?v=``) so that it changes whenever the image does: browsers keep them."""
    return sha256[:16]


def image_response(request: Request, data: bytes, kind: str, version: str) -> Response:
    """An image with an ETag: kept for a year under a URL that names its version (``?v=``), revalidated
    (``If-None-Match``, answered 304) under any other."""
    etag = f'"{version}"'
    current = request.query_params.get("v") == version
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=31536000, immutable" if current else "private, no-cache",
    }
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=kind, headers=headers)


def person_out(person: PersonRecord, thumbnail_face: tuple[int, str] | None = None) -> dict[str, Any]:
    out = person.to_dict()
    out["thumbnail_url"] = None
    if thumbnail_face is not None:
        face_id, sha256 = thumbnail_face
        out["thumbnail_url"] = f"{API}/faces/{face_id}/thumbnail?v={image_version(sha256)}"
    return out


def people_out(store: Store, people: Sequence[PersonRecord]) -> list[dict[str, Any]]:
    thumbs = store.first_faces([p.id for p in people])
    return [person_out(p, thumbs.get(p.id)) for p in people]


def face_out(face: FaceRecord) -> dict[str, Any]:
    out = face.to_dict()
    sha = face.image_sha256
    out["image_url"] = f"{API}/faces/{face.id}/image?v={image_version(sha)}" if sha else None
    out["thumbnail_url"] = f"{API}/faces/{face.id}/thumbnail?v={image_version(sha)}" if sha else None
    return out


# Kept in the store, left out of every event the API sends: the face crop a monitor sends along (base64, a few
# kB each; the face is served at face_url instead).
EVENT_METADATA_NOT_SENT = ("crop_jpeg",)
# Left out for those who may not change anything (viewers, read-only keys): where the device read its video
# from (a local file path, a stream URL).
EVENT_METADATA_PRIVATE = ("source",)


def event_out(event: EventRecord, name: str | None = None) -> dict[str, Any]:
    out = event.to_dict()
    # An unknown track's descriptor stays in the store (its camera's calibration reads it): never sent out.
    out["metadata"] = {k: v for k, v in (out.get("metadata") or {}).items() if k != "template"}
    out["person_name"] = name
    out["metadata"] = {k: v for k, v in out["metadata"].items() if k not in EVENT_METADATA_NOT_SENT}
    sha = event.snapshot_sha256
    out["snapshot_url"] = f"{API}/events/{event.id}/snapshot?v={image_version(sha)}" if sha else None
    has_face = sha is not None and event.box is not None and len(event.box) == 4
    out["face_url"] = f"{API}/events/{event.id}/face?v={image_version(sha or '')}" if has_face else None
    return out


def event_for(out: dict[str, Any], full: bool) -> dict[str, Any]:
    """An event as ``event_out`` made it, for a caller who may see everything (``full``) or not."""
    if full:
        return out
    return {**out, "metadata": {k: v for k, v in out["metadata"].items() if k not in EVENT_METADATA_PRIVATE}}


def events_out(store: Store, events: Sequence[EventRecord]) -> list[dict[str, Any]]:
    names = store.person_names(e.person_id for e in events)
    return [event_out(e, names.get(e.person_id) if e.person_id is not None else None) for e in events]


class Thumbnails:
    """Square JPEG crops around a face, made on first request and kept (images never change: they are
    named by their content)."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[str, tuple[float, ...]], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, store: Store, face: FaceRecord) -> bytes:
        if face.image_sha256 is None or face.image_type is None:
            raise NotFoundError(f"face {face.id} has no stored image")
        return self.crop(store, face.image_sha256, face.image_type, face.box)

    def crop(self, store: Store, sha256: str, image_type: str, box: Sequence[float] | None) -> bytes:
        key = (sha256, tuple(box or ()))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        data = store.files.read(sha256, image_type)
        thumbnail = crop_thumbnail(data, box)
        with self._lock:
            self._cache[key] = thumbnail
            while len(self._cache) > THUMBNAIL_CACHE:
                self._cache.popitem(last=False)
        return thumbnail


def crop_thumbnail(data: bytes, box: Sequence[float] | None, size: int = THUMBNAIL_SIZE) -> bytes:
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened) or opened
        image = image.convert("RGB")
        if box and len(box) == 4:
            x1, y1, x2, y2 = box
            side = max(x2 - x1, y2 - y1) * 1.6  # some hair and chin around the detector's tight box
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            image = image.crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
        image = ImageOps.fit(image, (size, size))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=85)
        return out.getvalue()

"""Identify (who is in this photo?) and verify (is this the same person?)."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from faceid.errors import NoFaceError
from faceid.server.api.common import ERRORS, MAX_ID, Svc
from faceid.server.auth import IDENTIFY, Principal, require
from faceid.server.errors import ApiError
from faceid.server.schemas import IdentifyOut, VerifyOut
from faceid.server.uploads import Photo, read_photo
from faceid.store import Identification
from faceid.vision.analyzer import same_person_threshold
from faceid.vision.types import Face

router = APIRouter(tags=["recognition"], responses=ERRORS)

Identifier = Annotated[Principal, Depends(require(IDENTIFY))]
PHOTO_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"description": "upload too large"},
    415: {"description": "not an image"},
    422: {"description": "no face, or a bad field"},
}


def identification_out(result: Identification) -> dict[str, Any]:
    out = result.to_dict()
    out["person"] = None if result.person is None else {"id": result.person.person_id, "name": result.person.name}
    return out


@router.post(
    "/identify",
    response_model=IdentifyOut,
    responses=PHOTO_ERRORS,
    summary="Find every face in a photo and say who each is, or unknown",
)
def identify(
    svc: Svc,
    _: Identifier,
    photo: Annotated[UploadFile, File(description="the photo to search")],
    top_k: Annotated[int, Query(ge=1, le=20, description="candidates listed per face")] = 5,
    max_faces: Annotated[int, Query(ge=1, le=100, description="the largest faces only")] = 20,
) -> dict[str, Any]:
    picture = read_photo(photo)
    with svc.analysing():
        results = svc.store.identify(picture.rgb, top_k=top_k, max_faces=max_faces)
    if not results:
        raise NoFaceError(f"{picture.name}: no face found")
    metrics = svc.metrics.identified
    for result in results:
        metrics.labels("known" if result.known else "unknown").inc()
    height, width = picture.rgb.shape[:2]
    faces = []
    for result in results:
        out = identification_out(result)
        out["quality"] = _quality(picture.rgb, result.box)
        faces.append(out)
    return {"width": width, "height": height, "faces": faces}


def _quality(rgb: np.ndarray, box: list[float] | None) -> dict[str, Any] | None:
    """The face's quality as the monitor scores it (size, sharpness, pose), for reading the answer."""
    if not box:
        return None
    from faceid.monitor.quality import assess
    from faceid.vision.types import Detection

    return assess(rgb, Detection(np.asarray(box, np.float32), 1.0)).to_dict()


def _largest_face(svc: Any, photo: Photo) -> Face:
    with svc.analysing():
        faces = svc.store.analyzer.analyze(photo.rgb, max_faces=1)
    if not faces:
        raise NoFaceError(f"{photo.name}: no face found")
    return faces[0]


def _box(face: Face) -> list[float]:
    return [round(float(v), 2) for v in np.asarray(face.box).reshape(-1)]


@router.post(
    "/verify",
    response_model=VerifyOut,
    responses=PHOTO_ERRORS,
    summary="Is the largest face of a photo the same person as in a second photo, or as a known person?",
)
def verify(
    svc: Svc,
    _: Identifier,
    photo: Annotated[UploadFile, File(description="the photo to check")],
    photo2: Annotated[UploadFile | None, File(description="a second photo (or give person_id)")] = None,
    person_id: Annotated[int | None, Form(ge=1, le=MAX_ID, description="a person to compare with")] = None,
) -> dict[str, Any]:
    has_second = photo2 is not None and bool(getattr(photo2, "filename", None) or getattr(photo2, "size", 0))
    if has_second == (person_id is not None):
        raise ApiError(422, "give either a second photo (photo2) or a person (person_id), not both or neither")
    first = _largest_face(svc, read_photo(photo))
    model = svc.store.model_id
    threshold = same_person_threshold(first.embedding)  # dlib's 0.6, or the fused descriptor's 1.0
    out: dict[str, Any] = {"model_id": model, "threshold": threshold, "box": _box(first)}
    if person_id is not None:
        person = svc.store.get_person(person_id)
        embeddings = [
            f.embedding
            for f in svc.store.faces(person_id, with_embeddings=True)
            if f.model_id == model and f.embedding is not None
        ]
        if not embeddings:
            raise ApiError(422, f"{person.name} has no enrolled face to compare with", "no_face")
        reference = np.mean(np.stack(embeddings), axis=0)
        out["person"] = {"id": person.id, "name": person.name}
    else:
        second = _largest_face(svc, read_photo(photo2, "photo2"))
        reference = second.embedding
        out["other_box"] = _box(second)
    distance = float(np.linalg.norm(np.asarray(first.embedding, np.float32) - np.asarray(reference, np.float32)))
    out["distance"] = round(distance, 6)
    out["same"] = distance <= threshold
    return out

"""People and their faces: list, search, enroll from photos, edit, merge, delete."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile

from faceid.errors import BadInputError, FaceidError
from faceid.server.api.common import ERRORS, FaceId, Limit, Offset, PersonId, Svc
from faceid.server.auth import VIEW, WRITE, Principal, require
from faceid.server.errors import ApiError
from faceid.server.schemas import (
    DeletedPerson,
    FaceOut,
    MergeIn,
    PeoplePage,
    PersonCreate,
    PersonDetailOut,
    PersonOut,
    PersonUpdate,
)
from faceid.server.services import Services
from faceid.server.uploads import read_photo, relabel
from faceid.server.views import face_out, image_response, image_version, media_type, people_out, person_out
from faceid.store import PreparedFace
from faceid.store.photos import choose_face, prepared_from_face

log = logging.getLogger(__name__)

router = APIRouter(tags=["people"], responses=ERRORS)

Viewer = Annotated[Principal, Depends(require(VIEW))]
Writer = Annotated[Principal, Depends(require(WRITE))]
MAX_PHOTOS = 20
SEVERAL_FACES = "take the largest face (the 'largest' option) or crop the photo"


def prepare_photos(svc: Services, uploads: list[UploadFile], largest: bool) -> list[PreparedFace]:
    """Every photo must show one face (or the largest is taken); any refused photo refuses them all,
    before anything is written."""
    if not uploads:
        raise ApiError(422, "send at least one photo in the multipart field 'photos'", "bad_input")
    if len(uploads) > MAX_PHOTOS:
        raise ApiError(422, f"at most {MAX_PHOTOS} photos at once", "bad_input")
    prepared = []
    for upload in uploads:
        photo = read_photo(upload, "photos")
        with svc.analysing():
            faces = svc.store.analyzer.analyze(photo.rgb)
        try:
            face = choose_face(faces, "largest" if largest else "one", photo.name, several=SEVERAL_FACES)
        except BadInputError as error:
            raise relabel(error, photo.name) from None
        prepared.append(prepared_from_face(face, svc.store.model_id, photo.data, photo.image_type, photo.name))
    return prepared


def gallery_warnings(svc: Services, prepared: list[PreparedFace], person_id: int | None = None) -> list[str | None]:
    """For each face about to be enrolled (as a new person, or as ``person_id``'s): a warning when the gallery
    already names it as someone else (the same photo enrolled twice, or one person under two names)."""
    warnings: list[str | None] = []
    for face in prepared:
        try:
            result = svc.store.identify_embedding(face.embedding, top_k=1)
        except FaceidError as error:  # a warning is worth no refused enrollment
            log.warning("%s: could not look for the face in the gallery: %s", face.label, error)
            warnings.append(None)
            continue
        other = result.person
        if other is None or other.person_id == person_id:
            warnings.append(None)
            continue
        warnings.append(
            f"{face.label}: this face is already in the gallery as {other.name} (person {other.person_id}): "
            f"distance {other.distance:.3f}, within the threshold {result.threshold:.3f}"
        )
    return warnings


def with_warnings(faces: list[dict[str, Any]], warnings: list[str | None]) -> list[dict[str, Any]]:
    """``faces`` as answered, newest last, with the warnings of the newest ``len(warnings)`` of them."""
    start = len(faces) - len(warnings)
    for face, warning in zip(faces[start:], warnings, strict=True):
        face["warning"] = warning
    return faces


def _detail(svc: Services, person_id: int) -> dict[str, Any]:
    person = svc.store.get_person(person_id)
    out = people_out(svc.store, [person])[0]
    out["faces"] = [face_out(f) for f in svc.store.faces(person_id)]
    return out


@router.get("/people", response_model=PeoplePage, summary="List or search people")
def list_people(
    svc: Svc,
    _: Viewer,
    q: Annotated[str | None, Query(max_length=200, description="part of a name, or an external id")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    people = svc.store.list_people(query=q or None, limit=limit + 1, offset=offset)
    more = len(people) > limit
    people = people[:limit]
    total = svc.store.count_people() if not q else offset + len(people) + (1 if more else 0)
    return {
        "items": people_out(svc.store, people),
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
        "total": total,
    }


@router.post("/people", response_model=PersonOut, status_code=201, summary="Create a person without photos")
def create_person(request: Request, body: PersonCreate, svc: Svc, principal: Writer) -> dict[str, Any]:
    person = svc.store.enroll_prepared(
        body.name, [], external_id=body.external_id, notes=body.notes, metadata=body.metadata
    )
    svc.record(request, principal, "person.create", "person", person.id, {"name": person.name})
    return person_out(person)


@router.post(
    "/enroll",
    response_model=PersonDetailOut,
    status_code=201,
    summary="Enroll a new person from one or more photos",
    responses={
        413: {"description": "upload too large"},
        415: {"description": "not an image"},
        422: {"description": "no face, several faces, or a bad field"},
        409: {"description": "name taken"},
    },
)
def enroll(
    request: Request,
    svc: Svc,
    principal: Writer,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    photos: Annotated[list[UploadFile], File(description="one face per photo")],
    external_id: Annotated[str | None, Form(max_length=200)] = None,
    notes: Annotated[str | None, Form(max_length=10_000)] = None,
    largest: Annotated[bool, Form(description="in a photo with several faces, take the largest")] = False,
) -> dict[str, Any]:
    prepared = prepare_photos(svc, photos, largest)
    warnings = gallery_warnings(svc, prepared)
    person = svc.store.enroll_prepared(name, prepared, external_id=external_id or None, notes=notes or None)
    svc.changes.notify("gallery")
    svc.record(
        request, principal, "person.enroll", "person", person.id, {"name": person.name, "faces": person.face_count}
    )
    detail = _detail(svc, person.id)
    with_warnings(detail["faces"], warnings)
    return detail


@router.get("/people/{person_id}", response_model=PersonDetailOut, summary="A person and their faces")
def get_person(person_id: PersonId, svc: Svc, _: Viewer) -> dict[str, Any]:
    return _detail(svc, person_id)


@router.patch("/people/{person_id}", response_model=PersonOut, summary="Rename or edit a person")
def update_person(
    request: Request, person_id: PersonId, body: PersonUpdate, svc: Svc, principal: Writer
) -> dict[str, Any]:
    before = svc.store.get_person(person_id)
    person = svc.store.update_person(
        person_id,
        name=body.name,
        external_id=body.external_id,
        notes=body.notes,
        metadata=body.metadata,
        merge_metadata=body.merge_metadata,
        clear_external_id=body.clear_external_id,
    )
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if k not in ("merge_metadata",)}
    if body.name is not None and body.name != before.name:
        changes["old_name"] = before.name
        svc.changes.notify("gallery")
    svc.record(request, principal, "person.update", "person", person_id, changes)
    return people_out(svc.store, [person])[0]


@router.delete("/people/{person_id}", response_model=DeletedPerson, summary="Delete a person, their faces and events")
def delete_person(request: Request, person_id: PersonId, svc: Svc, principal: Writer) -> dict[str, Any]:
    summary = svc.store.delete_person(person_id)
    svc.changes.notify("gallery")
    svc.record(request, principal, "person.delete", "person", person_id, dict(summary))
    return summary


@router.post(
    "/people/{person_id}/merge",
    response_model=PersonOut,
    summary="Merge another person into this one (their faces and events move here; they are deleted)",
)
def merge_people(request: Request, person_id: PersonId, body: MergeIn, svc: Svc, principal: Writer) -> dict[str, Any]:
    absorbed = svc.store.get_person(body.absorb)
    person = svc.store.merge_people(person_id, body.absorb)
    svc.changes.notify("gallery")
    svc.record(
        request,
        principal,
        "person.merge",
        "person",
        person_id,
        {"absorbed_id": absorbed.id, "absorbed_name": absorbed.name},
    )
    return people_out(svc.store, [person])[0]


@router.get("/people/{person_id}/faces", response_model=list[FaceOut], summary="A person's faces")
def list_faces(person_id: PersonId, svc: Svc, _: Viewer) -> list[dict[str, Any]]:
    return [face_out(f) for f in svc.store.faces(person_id)]


@router.post(
    "/people/{person_id}/faces",
    response_model=list[FaceOut],
    status_code=201,
    summary="Add photos of a person",
    responses={
        413: {"description": "upload too large"},
        415: {"description": "not an image"},
        422: {"description": "no face or several faces"},
    },
)
def add_faces(
    request: Request,
    person_id: PersonId,
    svc: Svc,
    principal: Writer,
    photos: Annotated[list[UploadFile], File(description="one face per photo")],
    largest: Annotated[bool, Form()] = False,
) -> list[dict[str, Any]]:
    svc.store.get_person(person_id)  # a 404 before the slow part
    prepared = prepare_photos(svc, photos, largest)
    warnings = gallery_warnings(svc, prepared, person_id)
    faces = svc.store.add_prepared(person_id, prepared)
    svc.changes.notify("gallery")
    svc.record(request, principal, "face.add", "person", person_id, {"face_ids": [f.id for f in faces]})
    return with_warnings([face_out(f) for f in faces], warnings)


@router.get("/faces/{face_id}", response_model=FaceOut, summary="One face")
def get_face(face_id: FaceId, svc: Svc, _: Viewer) -> dict[str, Any]:
    return face_out(svc.store.get_face(face_id))


@router.delete("/faces/{face_id}", response_model=FaceOut, summary="Remove one face")
def remove_face(request: Request, face_id: FaceId, svc: Svc, principal: Writer) -> dict[str, Any]:
    face = svc.store.remove_face(face_id)
    svc.changes.notify("gallery")
    svc.record(request, principal, "face.remove", "face", face_id, {"person_id": face.person_id})
    return face_out(face)


IMAGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "the image"}
}


@router.get(
    "/faces/{face_id}/image",
    response_class=Response,
    responses=IMAGE_RESPONSE,
    summary="The photo a face was enrolled from",
)
def face_image(face_id: FaceId, svc: Svc, _: Viewer, request: Request) -> Response:
    face = svc.store.get_face(face_id)
    data, kind = svc.store.face_image(face_id)
    return image_response(request, data, media_type(kind), image_version(face.image_sha256 or ""))


@router.get(
    "/faces/{face_id}/thumbnail",
    response_class=Response,
    responses=IMAGE_RESPONSE,
    summary="A small square crop around a face (JPEG)",
)
def face_thumbnail(face_id: FaceId, svc: Svc, _: Viewer, request: Request) -> Response:
    face = svc.store.get_face(face_id)
    data = request.app.state.thumbnails.get(svc.store, face)
    return image_response(request, data, "image/jpeg", image_version(face.image_sha256 or ""))

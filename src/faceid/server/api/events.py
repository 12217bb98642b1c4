"""Events: what the cameras saw. Devices post them (idempotently); people browse, filter and watch them live."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from faceid.errors import BadInputError, MultipleFacesError, NoFaceError, NotFoundError
from faceid.server.api.common import ERRORS, MAX_ID, EventId, Limit, Offset, Svc
from faceid.server.api.people import _detail, gallery_warnings, with_warnings
from faceid.server.auth import INGEST, VIEW, WRITE, Principal, allowed, require
from faceid.server.errors import ApiError
from faceid.server.schemas import EnrollFromEvent, EventOut, EventsPage, PersonDetailOut
from faceid.server.services import Services
from faceid.server.uploads import read_photo, relabel
from faceid.server.views import (
    event_for,
    event_out,
    events_out,
    image_response,
    image_version,
    media_type,
)
from faceid.store import EventRecord
from faceid.store.photos import prepared_from_face
from faceid.thresholds import EVENT_FACE_MIN_IOU
from faceid.vision.boxes import iou
from faceid.vision.image import load_image
from faceid.vision.types import Detection, Face

log = logging.getLogger(__name__)

router = APIRouter(tags=["events"], responses=ERRORS)

Viewer = Annotated[Principal, Depends(require(VIEW))]
Writer = Annotated[Principal, Depends(require(WRITE))]
Ingester = Annotated[Principal, Depends(require(INGEST))]
KEEPALIVE_SECONDS = 15.0
TEXT_MAX = 200


@router.get("/events", response_model=EventsPage, summary="Events, newest first, with filters")
def list_events(
    svc: Svc,
    principal: Viewer,
    person_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only this person's")] = None,
    source: Annotated[str | None, Query(max_length=TEXT_MAX, description="only from this camera")] = None,
    unknown: Annotated[bool, Query(description="only unknown faces")] = False,
    since: Annotated[datetime | None, Query(description="at or after this time (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="before this time (ISO 8601)")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    try:
        events = svc.store.list_events(
            person=person_id,
            source=source or None,
            since=since,
            until=until,
            unknown_only=unknown,
            limit=limit + 1,
            offset=offset,
        )
    except NotFoundError:
        events = []  # a filter on a person who does not exist matches nothing
    more = len(events) > limit
    return {
        "items": [event_for(e, allowed(principal, WRITE)) for e in events_out(svc.store, events[:limit])],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
    }


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "one 'event' message per new event"}},
    summary="Live feed of new events (Server-Sent Events)",
)
async def stream_events(
    request: Request,
    svc: Svc,
    principal: Viewer,
    person_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    source: Annotated[str | None, Query(max_length=TEXT_MAX)] = None,
    unknown: bool = False,
) -> StreamingResponse:
    queue = svc.hub.subscribe()
    full = allowed(principal, WRITE)

    def wanted(event: dict[str, Any]) -> bool:
        if person_id is not None and event.get("person_id") != person_id:
            return False
        if source and event.get("source") != source:
            return False
        return not (unknown and event.get("person_id") is not None)

    async def messages() -> Any:
        try:
            yield "retry: 2000\n: connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is None:  # the server is shutting down
                    return
                if wanted(event):
                    event = event_for(event, full)
                    yield f"id: {event['id']}\nevent: event\ndata: {json.dumps(event)}\n\n"
        finally:
            svc.hub.unsubscribe(queue)

    return StreamingResponse(
        messages(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def _json_field(text: str | None, name: str, kind: type) -> Any:
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ApiError(422, f"{name} must be JSON", "bad_input") from None
    if not isinstance(value, kind):
        raise ApiError(422, f"{name} must be a JSON {kind.__name__}", "bad_input")
    return value


@router.post(
    "/events",
    response_model=EventOut,
    status_code=201,
    responses={
        200: {"model": EventOut, "description": "this idempotency key was seen before: the event recorded then"},
        413: {"description": "upload too large"},
        415: {"description": "the snapshot is not an image"},
    },
    summary="Record an event from a device (camera, monitor); retries with the same idempotency key never duplicate",
)
def ingest_event(
    request: Request,
    svc: Svc,
    principal: Ingester,
    snapshot: Annotated[UploadFile | None, File(description="the frame or face crop (JPEG/PNG)")] = None,
    person_id: Annotated[int | None, Form(ge=1, le=MAX_ID, description="who it was; omit for unknown")] = None,
    source: Annotated[str | None, Form(max_length=TEXT_MAX, description="camera or device name")] = None,
    time: Annotated[datetime | None, Form(description="when (ISO 8601); default now")] = None,
    distance: Annotated[float | None, Form(ge=0, le=1e6, allow_inf_nan=False)] = None,
    confidence: Annotated[float | None, Form(ge=0, le=1, allow_inf_nan=False)] = None,
    track_id: Annotated[str | None, Form(max_length=TEXT_MAX)] = None,
    model_id: Annotated[str | None, Form(max_length=100)] = None,
    box: Annotated[str | None, Form(max_length=1000, description="JSON [x1, y1, x2, y2] in snapshot pixels")] = None,
    metadata: Annotated[str | None, Form(max_length=100_000, description="a JSON object")] = None,
    idempotency_key: Annotated[str | None, Form(max_length=TEXT_MAX)] = None,
    idempotency_header: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=TEXT_MAX, description="or this header")
    ] = None,
) -> Any:
    key = (idempotency_header or idempotency_key or "").strip() or None
    existing = svc.store.event_by_key(key) if key is not None else None
    if existing is not None:
        svc.metrics.ingested.labels("duplicate").inc()
        name = svc.store.person_names([existing.person_id]).get(existing.person_id or -1)
        return JSONResponse(json.loads(json.dumps(event_out(existing, name))), status_code=200)
    box_value = _json_field(box, "box", list)
    if box_value is not None and (
        len(box_value) != 4 or not all(isinstance(v, int | float) and np.isfinite(v) for v in box_value)
    ):
        raise ApiError(422, "box must be [x1, y1, x2, y2] (four finite numbers)", "bad_input")
    meta = _json_field(metadata, "metadata", dict)
    snapshot_bytes = None
    if snapshot is not None and (snapshot.filename or snapshot.size):
        snapshot_bytes = read_photo(snapshot, "snapshot").data
    try:
        record = svc.store.record_event(
            person_id=person_id,
            source=source or None,
            time=time,
            distance=distance,
            confidence=confidence,
            snapshot=snapshot_bytes,
            track_id=track_id or None,
            idempotency_key=key,
            model_id=model_id or None,
            box=box_value,
            metadata=meta,
        )
    except NotFoundError as error:
        raise ApiError(422, str(error), "bad_input") from None
    svc.metrics.ingested.labels("new").inc()
    name = svc.store.person_names([record.person_id]).get(record.person_id or -1)
    payload = event_out(record, name)
    svc.hub.publish(payload)
    svc.changes.notify("event", record.id)
    log.debug("event %d from %s (%s)", record.id, source, principal.name)
    return JSONResponse(json.loads(json.dumps(payload)), status_code=201)


@router.get("/events/{event_id}", response_model=EventOut, summary="One event")
def get_one(event_id: EventId, svc: Svc, principal: Viewer) -> dict[str, Any]:
    event = svc.store.get_event(event_id)
    return event_for(events_out(svc.store, [event])[0], allowed(principal, WRITE))


@router.get(
    "/events/{event_id}/snapshot",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "the snapshot"}},
    summary="The snapshot a device sent with an event",
)
def snapshot(event_id: EventId, svc: Svc, _: Viewer, request: Request) -> Response:
    event = svc.store.get_event(event_id)
    if event.snapshot_sha256 is None or event.snapshot_type is None:
        raise NotFoundError(f"event {event_id} has no snapshot")
    data = svc.store.files.read(event.snapshot_sha256, event.snapshot_type)
    return image_response(request, data, media_type(event.snapshot_type), image_version(event.snapshot_sha256))


@router.get(
    "/events/{event_id}/face",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the face"}},
    summary="The face an event is about: a small square crop of its snapshot around its box (JPEG)",
)
def event_face_image(event_id: EventId, svc: Svc, _: Viewer, request: Request) -> Response:
    event = svc.store.get_event(event_id)
    if event.snapshot_sha256 is None or event.snapshot_type is None or event.box is None or len(event.box) != 4:
        raise NotFoundError(f"event {event_id} has no snapshot with a face box")
    data = request.app.state.thumbnails.crop(svc.store, event.snapshot_sha256, event.snapshot_type, event.box)
    return image_response(request, data, "image/jpeg", image_version(event.snapshot_sha256))


@router.delete("/events/{event_id}", response_model=EventOut, summary="Delete an event (and its snapshot)")
def delete_event(request: Request, event_id: EventId, svc: Svc, principal: Writer) -> dict[str, Any]:
    event = svc.store.get_event(event_id)
    out = events_out(svc.store, [event])[0]
    svc.store.delete_events([event_id])
    svc.record(request, principal, "event.delete", "event", event_id, {"source": event.source})
    return out


def event_face(svc: Services, event: EventRecord, rgb: np.ndarray, label: str) -> Face:
    """The one face an event is about: the face at its box (found again by this server's detector, or, where
    the detector misses it, described at the box itself). An event without a box names a face only when its
    snapshot shows exactly one."""
    analyzer = svc.store.analyzer
    with svc.analysing():
        faces = analyzer.analyze(rgb)
        if event.box is None:
            if not faces:
                raise NoFaceError(f"{label}: no face found")
            if len(faces) > 1:
                raise MultipleFacesError(
                    f"{label}: {len(faces)} faces and the event does not say which one it is about; "
                    "enroll from a photo of that person instead"
                )
            return faces[0]
        box = [float(v) for v in event.box]
        height, width = rgb.shape[:2]
        clipped = [max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3])]
        if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
            raise NoFaceError(f"{label}: the event's box {box} is outside its snapshot ({width}x{height})")
        best = max(faces, key=lambda f: iou([float(v) for v in f.box], box), default=None)
        if best is not None and iou([float(v) for v in best.box], box) >= EVENT_FACE_MIN_IOU:
            return best
        log.info("%s: no face found at the event's box %s; describing it there", label, box)
        return analyzer.faces_from_detections(rgb, [Detection(box=np.asarray(clipped, np.float32), score=0.0)])[0]


@router.post(
    "/events/{event_id}/enroll",
    response_model=PersonDetailOut,
    status_code=201,
    responses={409: {"description": "name taken"}, 422: {"description": "no snapshot or no face in it"}},
    summary="Enroll the face an event is about (its box in its snapshot) as a new person",
)
def enroll_from_event(
    request: Request, event_id: EventId, body: EnrollFromEvent, svc: Svc, principal: Writer
) -> dict[str, Any]:
    event = svc.store.get_event(event_id)
    if event.snapshot_sha256 is None or event.snapshot_type is None:
        raise ApiError(422, f"event {event_id} has no snapshot to enroll from", "no_face")
    data = svc.store.files.read(event.snapshot_sha256, event.snapshot_type)
    label = f"event {event_id}'s snapshot"
    try:
        rgb = load_image(data)
    except BadInputError as error:
        raise relabel(error, label) from None
    face = event_face(svc, event, rgb, label)
    prepared = prepared_from_face(face, svc.store.model_id, data, event.snapshot_type, label)
    warnings = gallery_warnings(svc, [prepared])
    # The event was of this person all along: the person, their face and the event's new person are stored
    # together, or none of them.
    person, _ = svc.store.enroll_from_event(event_id, body.name, prepared)
    svc.changes.notify("gallery")
    svc.record(
        request, principal, "person.enroll_from_event", "person", person.id, {"name": person.name, "event_id": event_id}
    )
    detail = _detail(svc, person.id)
    with_warnings(detail["faces"], warnings)
    return detail

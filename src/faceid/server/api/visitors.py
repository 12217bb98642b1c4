"""The unknown-faces inbox: visitors and their actions, corrections, history searched by face, retention, erasure.

Every change is one store transaction that writes its own audit row (faceid.store.visitors.audit), so these
routes do not call ``svc.record`` after it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from faceid.errors import BadInputError
from faceid.server.api.common import ERRORS, MAX_ID, EventId, Limit, Offset, PersonId, Svc
from faceid.server.auth import ADMIN, VIEW, WRITE, Principal, require
from faceid.server.errors import ApiError
from faceid.server.services import client_address
from faceid.server.uploads import read_photo
from faceid.server.views import events_out
from faceid.store.visitors import Actor, inbox

log = logging.getLogger(__name__)

router = APIRouter(tags=["inbox"], responses=ERRORS)

Viewer = Annotated[Principal, Depends(require(VIEW))]
Writer = Annotated[Principal, Depends(require(WRITE))]
Admin = Annotated[Principal, Depends(require(ADMIN))]
VisitorId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a visitor's id")]


def actor(request: Request, principal: Principal) -> Actor:
    return Actor(principal.name, principal.kind, client_address(request))


class NameIn(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200, description="a new person's name")
    person_id: int | None = Field(default=None, ge=1, le=MAX_ID, description="or an existing person")
    cap: int | None = Field(default=None, ge=1, le=50, description="at most this many faces enrolled")


class MergeVisitorIn(BaseModel):
    other: int = Field(ge=1, le=MAX_ID, description="the visitor whose events move into this one")


class SplitIn(BaseModel):
    event_ids: list[int] = Field(min_length=1, max_length=10_000)


class IgnoreIn(BaseModel):
    ignored: bool = True


class ThisIsIn(BaseModel):
    person_id: int = Field(ge=1, le=MAX_ID)


class RetentionIn(BaseModel):
    days: int | None = Field(default=None, ge=0, le=100_000, description="days kept; null: for ever")


def _visitor_detail(svc: Any, visitor_id: int, limit: int = 200) -> dict[str, Any]:
    box = inbox(svc.store)
    summary = box.get(visitor_id).to_dict()
    ids = box.events(visitor_id)[:limit]
    summary["event_list"] = events_out(svc.store, [svc.store.get_event(i) for i in ids])
    return summary


@router.get("/visitors", summary="Visitors (clusters of unknown events), the most recently seen first")
def list_visitors(
    svc: Svc,
    _: Viewer,
    status: Annotated[str | None, Query(pattern="^(open|ignored|named)$")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    return [v.to_dict() for v in inbox(svc.store).list_visitors(status=status, limit=limit, offset=offset)]


@router.get("/visitors/{visitor_id}", summary="One visitor with its events, newest first")
def get_visitor(visitor_id: VisitorId, svc: Svc, _: Viewer) -> dict[str, Any]:
    return _visitor_detail(svc, visitor_id)


@router.post("/visitors/{visitor_id}/name", summary="Name a visitor: a new person, or an existing one")
def name_visitor(visitor_id: VisitorId, body: NameIn, request: Request, svc: Svc, principal: Writer) -> dict[str, Any]:
    if (body.name is None) == (body.person_id is None):
        raise ApiError(422, "give either 'name' (a new person) or 'person_id' (an existing one)", "bad_input")
    from faceid.thresholds import VISITOR_ENROLL_CAP

    return inbox(svc.store).name(
        visitor_id,
        body.name,
        person=body.person_id,
        cap=body.cap or VISITOR_ENROLL_CAP,
        actor=actor(request, principal),
    )


@router.post("/visitors/{visitor_id}/merge", summary="Move another visitor's events into this one")
def merge_visitors(
    visitor_id: VisitorId, body: MergeVisitorIn, request: Request, svc: Svc, principal: Writer
) -> dict[str, Any]:
    return inbox(svc.store).merge(visitor_id, body.other, actor=actor(request, principal)).to_dict()


@router.post("/visitors/{visitor_id}/split", summary="Pick events out of a visitor into a new one")
def split_visitor(
    visitor_id: VisitorId, body: SplitIn, request: Request, svc: Svc, principal: Writer
) -> dict[str, Any]:
    return inbox(svc.store).split(visitor_id, body.event_ids, actor=actor(request, principal)).to_dict()


@router.post("/visitors/{visitor_id}/ignore", summary="Never alert for this visitor again (or again, with false)")
def ignore_visitor(
    visitor_id: VisitorId, body: IgnoreIn, request: Request, svc: Svc, principal: Writer
) -> dict[str, Any]:
    return inbox(svc.store).ignore(visitor_id, body.ignored, actor=actor(request, principal)).to_dict()


@router.delete("/visitors/{visitor_id}", summary="Discard an unnamed visitor with its events and snapshots")
def discard_visitor(visitor_id: VisitorId, request: Request, svc: Svc, principal: Writer) -> dict[str, Any]:
    return inbox(svc.store).discard(visitor_id, actor=actor(request, principal))


@router.post("/visitors/recluster", summary="Cluster the unknown events again (ids kept where membership is)")
def recluster(request: Request, svc: Svc, principal: Admin) -> dict[str, Any]:
    return inbox(svc.store).recluster(actor=actor(request, principal))


@router.post("/events/{event_id}/not-person", summary="This event is not the person it names (kept as a negative)")
def not_person(event_id: EventId, request: Request, svc: Svc, principal: Writer) -> dict[str, Any]:
    from faceid.store.corrections import not_this_person

    return not_this_person(svc.store, event_id, actor=actor(request, principal))


@router.post("/events/{event_id}/this-is", summary="This event shows this person")
def this_is(event_id: EventId, body: ThisIsIn, request: Request, svc: Svc, principal: Writer) -> dict[str, Any]:
    from faceid.store.corrections import this_is as label

    return label(svc.store, event_id, body.person_id, actor=actor(request, principal))


@router.get("/people/{person_id}/negatives", summary="A person's 'not this person' exemplars")
def person_negatives(person_id: PersonId, svc: Svc, _: Viewer) -> list[dict[str, Any]]:
    from faceid.store.corrections import negatives

    return [n.to_dict() for n in negatives(svc.store, person_id)]


def _search_out(svc: Any, found: dict[str, Any]) -> dict[str, Any]:
    names = svc.store.person_names(e["person_id"] for e in found["events"])
    for event in found["events"]:
        event["person_name"] = names.get(event["person_id"]) if event["person_id"] is not None else None
        sha = event.get("snapshot_sha256")
        event["face_url"] = f"/api/v1/events/{event['id']}/face" if sha and event.get("box") else None
    return found


@router.get("/search/history", summary="Past events of a person or a visitor, newest first, with distances")
def search_by_reference(
    svc: Svc,
    _: Viewer,
    person_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    visitor_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Limit = 200,
) -> dict[str, Any]:
    from faceid.store.corrections import search_history

    if (person_id is None) == (visitor_id is None):
        raise ApiError(422, "give person_id or visitor_id (or post a photo)", "bad_input")
    return _search_out(svc, search_history(svc.store, person=person_id, visitor=visitor_id, limit=limit))


@router.post("/search/history", summary="Past events of the face in a photo, newest first, with distances")
async def search_by_photo(
    svc: Svc, _: Viewer, photo: Annotated[UploadFile, File(description="a photo of the face")], limit: Limit = 200
) -> dict[str, Any]:
    from faceid.store.corrections import search_history

    upload = read_photo(photo, "photo")

    def run() -> dict[str, Any]:
        with svc.analysing():
            faces = svc.store.analyzer.analyze(upload.rgb)
        if not faces:
            raise BadInputError(f"{upload.name}: no face found")
        largest = max(faces, key=lambda f: float(f.size))
        return search_history(svc.store, embedding=largest.embedding, limit=limit)

    return _search_out(svc, await run_in_threadpool(run))


@router.get("/retention", summary="Days kept per kind of record, and the last pass of the retention job")
def get_retention(request: Request, svc: Svc, _: Viewer) -> dict[str, Any]:
    from faceid.store.retention import retention_rules

    job = getattr(request.app.state, "retention", None)
    return {"rules": retention_rules(svc.store), "last_pass": None if job is None else job.last}


@router.put("/retention/{kind}", summary="Set how many days a kind of record is kept (null: for ever)")
def put_retention(kind: str, body: RetentionIn, request: Request, svc: Svc, principal: Admin) -> dict[str, Any]:
    from faceid.store.retention import set_retention

    return {"rules": set_retention(svc.store, kind, body.days, actor=actor(request, principal))}


@router.post("/retention/apply", summary="Apply the retention rules now")
def apply_retention_now(request: Request, svc: Svc, principal: Admin) -> dict[str, Any]:
    from faceid.store.retention import apply_retention

    return {"removed": apply_retention(svc.store, actor=actor(request, principal))}


@router.post("/people/{person_id}/forget", summary="Erase a person and every trace of them; returns the receipt")
def forget_person(person_id: PersonId, request: Request, svc: Svc, principal: Admin) -> dict[str, Any]:
    from faceid.store.retention import forget

    return forget(svc.store, person_id, actor=actor(request, principal))

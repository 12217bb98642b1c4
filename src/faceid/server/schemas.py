"""Request and response bodies of the REST API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from faceid.store.accounts import PASSWORD_MAX, USERNAME_MAX


class ErrorOut(BaseModel):
    detail: str
    code: str


class PersonOut(BaseModel):
    id: int
    name: str
    external_id: str | None
    notes: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    face_count: int
    thumbnail_url: str | None = None


class FaceOut(BaseModel):
    id: int
    person_id: int
    model_id: str
    box: list[float] | None
    landmarks: list[list[float]] | None
    quality: float | None
    size: float | None
    created_at: datetime
    image_url: str | None
    thumbnail_url: str | None
    warning: str | None = Field(
        default=None, description="only when this face was just added: the gallery already names it as someone else"
    )


class PersonDetailOut(PersonOut):
    faces: list[FaceOut]


class PeoplePage(BaseModel):
    items: list[PersonOut]
    limit: int
    offset: int
    next_offset: int | None
    total: int


class PersonCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    external_id: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=10_000)
    metadata: dict[str, Any] | None = None


class PersonUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    external_id: str | None = Field(default=None, max_length=200)
    clear_external_id: bool = False
    notes: str | None = Field(default=None, max_length=10_000)
    metadata: dict[str, Any] | None = None
    merge_metadata: bool = False


class MergeIn(BaseModel):
    absorb: int = Field(
        ge=1, le=2**63 - 1, description="id of the person whose faces and events move over; they are then deleted"
    )


class DeletedPerson(BaseModel):
    id: int
    name: str
    faces: int
    events: int


class CandidateOut(BaseModel):
    person_id: int
    name: str
    distance: float
    score: float
    face_id: int


class PersonRef(BaseModel):
    id: int
    name: str


class IdentifiedFace(BaseModel):
    box: list[float] | None
    known: bool
    outcome: str = Field(description="known, unknown, or ambiguous (two people pass, too close to call)")
    person: PersonRef | None
    confidence: float = Field(description="1 - stranger_rate for a known face (a probability); 0 otherwise")
    stranger_rate: float | None = Field(
        None,
        description="the calibration's estimate of the share of strangers who would score as well as the best "
        "candidate against the whole gallery (read it as 'about 1 in 1/stranger_rate'); null when uncalibrated",
    )
    threshold: float
    method: str
    calibration: str = Field("none", description="where the decision rule comes from: shipped, store, camera, none")
    model_id: str
    quality: dict[str, Any] | None = Field(None, description="face quality: size, sharpness and pose scores")
    candidates: list[CandidateOut]


class IdentifyOut(BaseModel):
    width: int
    height: int
    faces: list[IdentifiedFace]


class VerifyOut(BaseModel):
    same: bool
    distance: float
    threshold: float
    model_id: str
    box: list[float] | None
    other_box: list[float] | None = None
    person: PersonRef | None = None


class EventOut(BaseModel):
    id: int
    time: datetime
    source: str | None
    person_id: int | None
    person_name: str | None
    known: bool
    distance: float | None
    confidence: float | None
    track_id: str | None
    idempotency_key: str | None
    model_id: str | None
    box: list[float] | None
    metadata: dict[str, Any]
    snapshot_url: str | None
    face_url: str | None = None


class EventsPage(BaseModel):
    items: list[EventOut]
    limit: int
    offset: int
    next_offset: int | None


class EnrollFromEvent(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=USERNAME_MAX)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    disabled: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="send it back as the X-CSRF-Token header on every change")
    expires_at: datetime


class MeOut(BaseModel):
    kind: str
    user: UserOut | None
    csrf_token: str | None
    scopes: list[str] | None


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    new_password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=USERNAME_MAX)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)
    role: str = Field(default="viewer", description="viewer, operator or admin")


class UserUpdate(BaseModel):
    role: str | None = None
    password: str | None = Field(default=None, min_length=1, max_length=PASSWORD_MAX)
    disabled: bool | None = None


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] | None = Field(
        default=None, min_length=1, description="read, identify, ingest, write (added to the preset's)"
    )
    preset: str | None = Field(
        default=None,
        description="a named set of scopes: device = read, ingest (what a camera or a connected monitor needs); "
        "the default when no scopes are given",
    )


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_by: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    active: bool
    key: str | None = Field(default=None, description="the key itself: shown in this answer only, never again")


class AuditOut(BaseModel):
    id: int
    time: datetime
    actor: str | None
    actor_type: str
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    address: str | None


class HealthOut(BaseModel):
    status: str
    version: str
    backend: str
    database: bool


class StatsOut(BaseModel):
    people: int
    faces: int
    events: int
    unknown_events_today: int
    backend: str
    model_id: str
    detector: str


class GalleryPerson(BaseModel):
    id: int
    name: str
    face_ids: list[int]
    embeddings: list[list[float]]


class GalleryOut(BaseModel):
    model_id: str
    version: int
    threshold: float
    method: str
    calibrated: bool
    dim: int
    people: list[GalleryPerson]
    cohort: list[list[float]] | None = None
    calibration: dict[str, Any] | None = None

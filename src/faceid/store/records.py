"""What the store hands back: plain frozen values, detached from any database session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from faceid.store.schema import Event, Face, Person


@dataclass(frozen=True)
class PersonRecord:
    id: int
    name: str
    external_id: str | None
    notes: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    face_count: int = 0

    @classmethod
    def of(cls, person: Person, face_count: int = 0) -> PersonRecord:
        return cls(
            id=person.id,
            name=person.name,
            external_id=person.external_id,
            notes=person.notes,
            metadata=dict(person.meta or {}),
            created_at=person.created_at,
            updated_at=person.updated_at,
            face_count=face_count,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "external_id": self.external_id,
            "notes": self.notes,
            "metadata": self.metadata,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "face_count": self.face_count,
        }


@dataclass(frozen=True)
class FaceRecord:
    id: int
    person_id: int
    model_id: str
    image_sha256: str | None
    image_type: str | None
    box: list[float] | None
    landmarks: list[list[float]] | None
    quality: float | None
    size: float | None
    created_at: datetime
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, face: Face, with_embedding: bool = False) -> FaceRecord:
        return cls(
            id=face.id,
            person_id=face.person_id,
            model_id=face.model_id,
            image_sha256=face.image_sha256,
            image_type=face.image_type,
            box=face.box,
            landmarks=face.landmarks,
            quality=face.quality,
            size=face.size,
            created_at=face.created_at,
            embedding=face.embedding if with_embedding else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "person_id": self.person_id,
            "model_id": self.model_id,
            "image_sha256": self.image_sha256,
            "image_type": self.image_type,
            "box": self.box,
            "landmarks": self.landmarks,
            "quality": self.quality,
            "size": self.size,
            "created_at": self.created_at.isoformat(),
        }


class FirstFace(NamedTuple):
    """A person's earliest face with a stored image: what shows them as a thumbnail."""

    face_id: int
    image_sha256: str


@dataclass(frozen=True)
class FaceImage:
    """Where a face's stored photo is (``image_sha256`` and ``image_type``, None when it has none) and its
    landmarks in it, with whose face it is."""

    face_id: int
    person_id: int
    person_name: str
    image_sha256: str | None
    image_type: str | None
    landmarks: list[list[float]] | None


@dataclass(frozen=True, eq=False)
class GalleryFaces:
    """Every face of one descriptor model, in face id order, as of gallery ``version``."""

    model_id: str
    version: int
    face_ids: np.ndarray  # (N,) int64
    person_ids: np.ndarray  # (N,) int64
    embeddings: np.ndarray  # (N, D) float32; (0, 0) when there is no face
    has_image: np.ndarray  # (N,) bool: a stored photo (thumbnails, re-embedding)

    def __len__(self) -> int:
        return len(self.face_ids)


@dataclass(frozen=True)
class EventRecord:
    id: int
    time: datetime
    source: str | None
    person_id: int | None
    distance: float | None
    confidence: float | None
    snapshot_sha256: str | None
    snapshot_type: str | None
    track_id: str | None
    idempotency_key: str | None
    model_id: str | None
    box: list[float] | None
    metadata: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventRecord:
        return cls(
            id=event.id,
            time=event.time,
            source=event.source,
            person_id=event.person_id,
            distance=event.distance,
            confidence=event.confidence,
            snapshot_sha256=event.snapshot_sha256,
            snapshot_type=event.snapshot_type,
            track_id=event.track_id,
            idempotency_key=event.idempotency_key,
            model_id=event.model_id,
            box=event.box,
            metadata=dict(event.meta or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "source": self.source,
            "person_id": self.person_id,
            "known": self.person_id is not None,
            "distance": self.distance,
            "confidence": self.confidence,
            "snapshot_sha256": self.snapshot_sha256,
            "snapshot_type": self.snapshot_type,
            "track_id": self.track_id,
            "idempotency_key": self.idempotency_key,
            "model_id": self.model_id,
            "box": self.box,
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class Candidate:
    """One person a probe may be: the distance to their centroid, and the method's score (lower = likelier;
    the cohort-normalised distance once the model is calibrated), with their face nearest to the probe."""

    person_id: int
    name: str
    distance: float
    score: float
    face_id: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "distance": round(self.distance, 6),
            "score": round(self.score, 6),
            "face_id": self.face_id,
        }


def stranger_odds(rate: float | None) -> str:
    """A stranger rate in words ("about 1 in 12,000 strangers would match this well"): how the calibration's
    estimate reads, never as a percentage that looks like the chance of being right."""
    if rate is None:
        return "uncalibrated: no estimate of how many strangers would match"
    if rate <= 1e-6:
        return "fewer than 1 in a million strangers would match this well"
    return f"about 1 in {round(1 / rate):,} strangers would match this well"


@dataclass(frozen=True)
class Identification:
    """The answer for one probe face: ranked candidates and the open-set decision."""

    candidates: list[Candidate]
    person: Candidate | None  # the decision: the best candidate if it passes the threshold clearly, else None
    confidence: float  # for a known decision, 1 - stranger_rate (a probability); 0 otherwise
    threshold: float
    method: str
    model_id: str
    box: list[float] | None = None
    outcome: str = ""  # "known", "unknown" or "ambiguous" (two people pass, too close to call); derived if empty
    # The calibration's estimate of the share of strangers who would score as well as the best candidate
    # against the whole gallery (None without a calibration): "about 1 in 1/stranger_rate".
    stranger_rate: float | None = None
    calibration: str = "none"  # where the rule came from: "shipped", "store", "camera", "none"

    def __post_init__(self) -> None:
        if not self.outcome:
            object.__setattr__(self, "outcome", "known" if self.person is not None else "unknown")

    @property
    def known(self) -> bool:
        return self.person is not None

    @property
    def ambiguous(self) -> bool:
        return self.outcome == "ambiguous"

    def to_dict(self) -> dict[str, Any]:
        return {
            "known": self.known,
            "outcome": self.outcome,
            "person": None if self.person is None else self.person.to_dict(),
            "confidence": round(self.confidence, 6),
            "stranger_rate": None if self.stranger_rate is None else float(f"{self.stranger_rate:.3g}"),
            "threshold": round(self.threshold, 6),
            "method": self.method,
            "calibration": self.calibration,
            "model_id": self.model_id,
            "box": self.box,
            "candidates": [c.to_dict() for c in self.candidates],
        }


@dataclass
class ImportReport:
    """What a bulk import did: who was enrolled and every skipped image or person with the reason."""

    people_enrolled: int = 0
    faces_enrolled: int = 0
    skipped_images: list[dict[str, str]] = field(default_factory=list)
    skipped_people: list[dict[str, str]] = field(default_factory=list)
    # Photos with several faces where one was taken: which (1 = largest) of how many, and why.
    chosen: list[dict[str, Any]] = field(default_factory=list)

    def skip_image(self, path: str, reason: str) -> None:
        self.skipped_images.append({"path": path, "reason": reason})

    def choose(self, path: str, index: int, faces: int, how: str) -> None:
        self.chosen.append({"path": path, "face": index + 1, "faces": faces, "how": how})

    def chosen_by_rule(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.chosen:
            counts[item["how"]] = counts.get(item["how"], 0) + 1
        return counts

    def skip_person(self, name: str, reason: str) -> None:
        self.skipped_people.append({"name": name, "reason": reason})

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.skipped_images:
            key = item["reason"].split(":", 1)[0]
            counts[key] = counts.get(key, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "people_enrolled": self.people_enrolled,
            "faces_enrolled": self.faces_enrolled,
            "skipped_image_count": len(self.skipped_images),
            "skipped_by_reason": self.reasons(),
            "skipped_images": self.skipped_images,
            "skipped_people": self.skipped_people,
            "chosen_count": len(self.chosen),
            "chosen_by_rule": self.chosen_by_rule(),
            "chosen": self.chosen,
        }

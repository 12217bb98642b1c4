"""Who a face is, frame by frame, and who a track is, by a vote over its frames weighted by face quality.

Each embedded frame is identified by the store's open-set rule (centroid + cohort normalisation, the
calibrated threshold for the gallery's size: ``faceid.store.match``), through one of two recognisers:

* :class:`StoreRecognizer`, standalone: the local store decides, exactly as ``faceid identify`` does.
* :class:`GalleryRecognizer`, connected: the gallery pulled from the server (every face's descriptor, the
  threshold the server computed for its gallery, the calibration cohort), scored by the same
  :class:`~faceid.store.match.Matcher` in memory. The server does not send the calibration's stranger
  scores, so the confidence is interpolated from the thresholds it reports for 10 ... 10,000 people
  (each is the score a stranger beats with a known probability); the decision itself is exact.

The vote (:func:`vote`) never names anyone that single frames did not: a person is named only when the
frames the calibrated rule gave to that person hold a majority of the track's quality weight, so a
stranger is named only if most of the track's good frames pass the threshold for the same person.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from faceid.store.index import Neighbours
from faceid.store.match import METHOD_COHORT, METHOD_DISTANCE, Calibration, Matcher
from faceid.thresholds import MONITOR_NAME_MIN_QUALITY, MONITOR_VOTE_MAJORITY

if TYPE_CHECKING:
    from faceid.store.records import Identification
    from faceid.store.store import Store
    from faceid.vision.types import Detection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameDecision:
    """The open-set decision on one frame's descriptor."""

    person_id: int | None  # None: unknown
    name: str | None
    distance: float | None  # to the named person's centroid, or to the nearest person's when unknown
    score: float | None  # the rule's score (cohort-normalised distance), lower = likelier
    threshold: float
    confidence: float  # chance that a stranger would not score this well against the gallery; 0 when unknown
    nearest_id: int | None = None  # the best candidate even when it is above the threshold
    nearest_name: str | None = None
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)  # the frame's descriptor
    ambiguous: bool = False  # the best two people pass and are too close to call (nobody named)
    stranger_rate: float | None = None  # the calibration's share of strangers who would score this well
    second_name: str | None = None  # the second-best person, with their distance
    second_distance: float | None = None


class Recognizer(Protocol):
    @property
    def model_id(self) -> str: ...

    def identify(self, embedding: np.ndarray) -> FrameDecision: ...

    def describe(self) -> dict[str, Any]: ...


class StoreRecognizer:
    """Standalone: the local store's calibrated decision, always with the store's active model version."""

    def __init__(self, store: Store, camera: str | None = None) -> None:
        self.store = store
        self.camera = camera  # the camera's own calibration applies once it has seen enough strangers

    @property
    def model_id(self) -> str:
        return self.store.model_id

    def identify(self, embedding: np.ndarray) -> FrameDecision:
        """The decision on a descriptor of the store's active model."""
        return _store_decision(self.store.identify_embedding(embedding, top_k=1, camera=self.camera))

    def identify_face(self, rgb: np.ndarray, detection: Detection) -> FrameDecision:
        """Describe a detected face with the active version's embedder and decide with the same version's
        gallery (a fine-tune activated while the monitor runs is followed from the next face on)."""
        ((face, result),) = self.store.identify_faces(rgb, [detection], top_k=1, camera=self.camera)
        return replace(_store_decision(result), embedding=np.asarray(face.embedding, np.float32))

    def describe(self) -> dict[str, Any]:
        matcher = self.store.matcher()
        camera = self.store.camera_calibration(self.camera, matcher).to_dict() if self.camera else None
        return {
            "mode": "store",
            "camera_calibration": camera,
            "model_id": self.model_id,
            "method": matcher.method,
            "calibrated": matcher.calibration is not None,
            "threshold": round(matcher.threshold(), 6),
            "people": matcher.gallery.people_count(),
        }


def _store_decision(result: Identification) -> FrameDecision:
    best = result.candidates[0] if result.candidates else None
    second = result.candidates[1] if len(result.candidates) > 1 else None
    person = result.person
    return FrameDecision(
        person_id=person.person_id if person else None,
        name=person.name if person else None,
        distance=best.distance if best else None,
        score=best.score if best else None,
        threshold=result.threshold,
        confidence=result.confidence,
        nearest_id=best.person_id if best else None,
        nearest_name=best.name if best else None,
        ambiguous=result.ambiguous,
        stranger_rate=result.stranger_rate,
        second_name=second.name if second else None,
        second_distance=second.distance if second else None,
    )


class MemoryGallery:
    """The part of :class:`faceid.store.gallery_cache.Gallery` a Matcher uses, over descriptors held in memory."""

    def __init__(
        self, model_id: str, face_ids: np.ndarray, person_ids: np.ndarray, embeddings: np.ndarray, names: dict[int, str]
    ) -> None:
        self.model_id = model_id
        self.face_ids = np.asarray(face_ids, np.int64)
        self.person_ids = np.asarray(person_ids, np.int64)
        self.embeddings = np.ascontiguousarray(np.asarray(embeddings, np.float32).reshape(len(self.face_ids), -1))
        self._sq = (self.embeddings * self.embeddings).sum(1)
        self._names = dict(names)
        self._centroids: dict[int, np.ndarray] = {}
        for person in np.unique(self.person_ids).tolist():
            self._centroids[int(person)] = self.embeddings[self.person_ids == person].mean(axis=0).astype(np.float32)

    def search(self, probe: np.ndarray, k: int) -> Neighbours:
        if not len(self.face_ids):
            empty = np.zeros(0, np.int64)
            return Neighbours(empty, empty, np.zeros(0, np.float32))
        probe = np.asarray(probe, np.float32).reshape(-1)
        squared = self._sq - 2.0 * (self.embeddings @ probe) + float(probe @ probe)
        distances = np.sqrt(np.maximum(squared, 0.0))
        order = np.argsort(distances, kind="stable")[:k]
        return Neighbours(self.face_ids[order], self.person_ids[order], distances[order].astype(np.float32))

    def centroids(self, person_ids: Sequence[int]) -> dict[int, np.ndarray]:
        return {p: self._centroids[p] for p in person_ids if p in self._centroids}

    def people_count(self, refresh: bool = True) -> int:
        return len(self._centroids)

    def names(self, person_ids: Sequence[int]) -> dict[int, str]:
        return {p: self._names.get(p, "?") for p in person_ids}

    def __len__(self) -> int:
        return len(self.face_ids)


class GalleryRecognizer:
    """Connected: the server's gallery (``GET /api/v1/gallery/embeddings?include_cohort=true``) in memory."""

    def __init__(self, payload: dict[str, Any], analyzer: Any = None) -> None:
        self.model_id = str(payload["model_id"])
        self.analyzer = analyzer  # describes faces with this gallery's model (None: the pipeline's own)
        self.version = payload.get("version")
        face_ids: list[int] = []
        person_ids: list[int] = []
        vectors: list[list[float]] = []
        names: dict[int, str] = {}
        for person in payload.get("people", []):
            pid = int(person["id"])
            names[pid] = str(person["name"])
            for face_id, vector in zip(person["face_ids"], person["embeddings"], strict=True):
                face_ids.append(int(face_id))
                person_ids.append(pid)
                vectors.append(vector)
        dim = int(payload.get("dim") or 128)
        embeddings = np.asarray(vectors, np.float32).reshape(-1, dim)
        self.gallery = MemoryGallery(self.model_id, np.asarray(face_ids), np.asarray(person_ids), embeddings, names)
        self.method = str(payload.get("method") or METHOD_DISTANCE)
        self.threshold = float(payload["threshold"])
        self.calibrated = bool(payload.get("calibrated"))
        cohort = payload.get("cohort")
        summary = payload.get("calibration") or {}
        if self.method == METHOD_COHORT and cohort is None:
            raise ValueError("the server scores with a cohort but sent none (ask with include_cohort=true)")
        calibration = None
        if self.calibrated:
            calibration = Calibration(
                model_id=self.model_id,
                method=self.method,
                threshold=self.threshold,  # already for the server's gallery size: no stranger tail to recompute it
                target_fpir=float(summary.get("target_fpir", 0.01)),
                gallery_size=self.gallery.people_count(),
                dim=dim,
                cohort=None if cohort is None else np.asarray(cohort, np.float32).reshape(-1, dim),
            )
        self.matcher = Matcher(self.gallery, calibration)  # type: ignore[arg-type]
        self._fmr_curve = _fmr_curve(summary)

    @property
    def people(self) -> int:
        return self.gallery.people_count()

    def identify_face(self, rgb: np.ndarray, detection: Detection) -> FrameDecision:
        """Describe a face with this gallery's model, then decide (the pipeline asks this when it exists)."""
        if self.analyzer is None:
            raise RuntimeError("this gallery has no analyzer of its own")
        face = self.analyzer.faces_from_detections(rgb, [detection])[0]
        embedding = np.asarray(face.embedding, np.float32)
        return replace(self.identify(embedding), embedding=embedding)

    def identify(self, embedding: np.ndarray) -> FrameDecision:
        ranked = self.matcher.rank(np.asarray(embedding, np.float32).reshape(-1), 1)
        best = ranked[0] if ranked else None
        known = best is not None and best.score <= self.threshold
        name = self.gallery.names([best.person_id])[best.person_id] if best is not None else None
        confidence = self.confidence(best.score) if known and best else 0.0
        return FrameDecision(
            person_id=best.person_id if known and best else None,
            name=name if known else None,
            distance=best.distance if best else None,
            score=best.score if best else None,
            threshold=self.threshold,
            confidence=confidence,
            nearest_id=best.person_id if best else None,
            nearest_name=name,
            # With the server's stranger curve, the confidence is 1 - the stranger rate, as in the store.
            stranger_rate=1.0 - confidence if known and self._fmr_curve else None,
        )

    def confidence(self, score: float) -> float:
        """(1 - fmr(score)) ^ people, with fmr interpolated on the server's thresholds by gallery size."""
        if not self._fmr_curve:
            return float(np.clip(1.0 - score / (2 * self.threshold), 0.0, 1.0)) if self.threshold > 0 else 0.0
        scores = [s for s, _ in self._fmr_curve]
        logs = [math.log(f) for _, f in self._fmr_curve]
        if len(scores) == 1:
            log_fmr = logs[0]
        elif score <= scores[0]:  # more alike than any point: extend the steepest known slope
            slope = (logs[1] - logs[0]) / max(scores[1] - scores[0], 1e-9)
            log_fmr = logs[0] - slope * (scores[0] - score)
        else:
            log_fmr = float(np.interp(score, scores, logs))
        fmr = min(1.0, math.exp(log_fmr))
        return float((1.0 - fmr) ** max(self.people, 1))

    def describe(self) -> dict[str, Any]:
        return {
            "mode": "server gallery",
            "model_id": self.model_id,
            "version": self.version,
            "method": self.method,
            "calibrated": self.calibrated,
            "threshold": round(self.threshold, 6),
            "people": self.people,
        }


def _fmr_curve(summary: dict[str, Any]) -> list[tuple[float, float]]:
    """(score, stranger match rate per comparison) points, ascending, from a calibration summary."""
    fpir = float(summary.get("target_fpir") or 0.0)
    points = summary.get("thresholds_by_gallery_size") or {}
    if not 0 < fpir < 1 or not isinstance(points, dict):
        return []
    curve = []
    for size, threshold in points.items():
        try:
            people = int(size)
            curve.append((float(threshold), 1.0 - (1.0 - fpir) ** (1.0 / people)))
        except (TypeError, ValueError):
            continue
    curve.sort()
    # Keep it increasing in both: equal thresholds (a short stranger tail) carry no slope.
    cleaned: list[tuple[float, float]] = []
    for score, fmr in curve:
        if not cleaned or (score > cleaned[-1][0] and fmr > cleaned[-1][1]):
            cleaned.append((score, fmr))
    return cleaned


# -- the vote over a track's frames ---------------------------------------------------------------------


@dataclass
class Sample:
    """One embedded frame of a track."""

    time: float
    index: int
    quality: float
    decision: FrameDecision


@dataclass(frozen=True)
class Verdict:
    person_id: int | None
    name: str | None
    share: float  # the winner's part of the track's quality weight
    confidence: float
    distance: float | None
    score: float | None
    threshold: float | None
    votes: dict[str, float]  # label (a name or "unknown") -> quality weight
    frames: int  # embedded frames that voted
    nearest_name: str | None = None
    ambiguous: bool = False
    stranger_rate: float | None = None

    @property
    def known(self) -> bool:
        return self.person_id is not None


def track_template(samples: Sequence[Sample]) -> np.ndarray | None:
    """The track's template: the quality-weighted mean of the descriptors of its frames good enough to name
    anyone (of every frame when none is), or None when no frame kept its descriptor.

    Averaging a track's frames cancels the noise of any one of them, as a person's centroid does in the
    gallery (faces-dev pseudo-tracks and the Hamilton clip: bench/RESULTS.md, "Track templates")."""
    usable = [s for s in samples if s.decision.embedding is not None]
    good = [s for s in usable if s.quality >= MONITOR_NAME_MIN_QUALITY] or usable
    if not good:
        return None
    weights = np.array([max(s.quality, 1e-6) for s in good], np.float64)
    vectors = np.stack([np.asarray(s.decision.embedding, np.float64) for s in good])
    return (weights[:, None] * vectors).sum(axis=0).astype(np.float32) / np.float32(weights.sum())


def template_verdict(samples: Sequence[Sample], decision: FrameDecision) -> Verdict:
    """The track's verdict from its template's decision, with the frames' votes kept for the record. A track
    seen only in frames too poor to name anyone stays unknown, as in the vote."""
    votes = vote(samples)
    assert votes is not None
    named = decision.person_id is not None and any(s.quality >= MONITOR_NAME_MIN_QUALITY for s in samples)
    total = sum(max(s.quality, 1e-6) for s in samples)
    if not named:
        return Verdict(
            None,
            None,
            votes.share if not votes.known else 1.0 - votes.share,
            0.0,
            decision.distance,
            decision.score,
            decision.threshold,
            votes.votes,
            len(samples),
            decision.nearest_name,
            ambiguous=decision.ambiguous,
            stranger_rate=decision.stranger_rate,
        )
    agreeing = sum(max(s.quality, 1e-6) for s in samples if s.decision.person_id == decision.person_id)
    return Verdict(
        decision.person_id,
        decision.name,
        agreeing / total,
        decision.confidence,
        decision.distance,
        decision.score,
        decision.threshold,
        votes.votes,
        len(samples),
        decision.name,
        stranger_rate=decision.stranger_rate,
    )


def vote(samples: Sequence[Sample]) -> Verdict | None:
    """The track's decision, or None when no frame was embedded.

    Each frame votes for what the calibrated rule said about it, with its quality as weight. Frames below
    ``MONITOR_NAME_MIN_QUALITY`` vote "unknown" whatever they matched: their descriptors are too unreliable
    to name anyone (blurred, tiny or turned faces drift towards whoever the gallery holds), though they
    still count, so that a track seen only that badly is reported as an unknown face.
    """
    if not samples:
        return None
    weights: dict[int | None, float] = {}
    names: dict[int | None, str] = {None: "unknown"}
    for sample in samples:
        weight = max(sample.quality, 1e-6)
        decision = sample.decision
        label = decision.person_id if sample.quality >= MONITOR_NAME_MIN_QUALITY else None
        weights[label] = weights.get(label, 0.0) + weight
        if label is not None:
            names[label] = decision.name or "?"
    total = sum(weights.values())
    winner = max(weights, key=lambda k: (weights[k], k is None))  # a tie goes to unknown
    share = weights[winner] / total
    if winner is not None and share < MONITOR_VOTE_MAJORITY:
        winner = None
    votes = {names[k]: round(v, 4) for k, v in sorted(weights.items(), key=lambda kv: -kv[1])}
    nearest = max(samples, key=lambda s: s.quality).decision
    if winner is None:
        return Verdict(
            None,
            None,
            weights.get(None, 0.0) / total,
            0.0,
            nearest.distance,
            nearest.score,
            nearest.threshold,
            votes,
            len(samples),
            nearest.nearest_name,
        )
    chosen = [s for s in samples if s.decision.person_id == winner and s.quality >= MONITOR_NAME_MIN_QUALITY]
    mass = sum(max(s.quality, 1e-6) for s in chosen)

    def mean(values: list[float]) -> float:
        return sum(max(s.quality, 1e-6) * v for s, v in zip(chosen, values, strict=True)) / mass

    confidence = mean([s.decision.confidence for s in chosen]) * share
    distance = mean([s.decision.distance or 0.0 for s in chosen])
    score = mean([s.decision.score or 0.0 for s in chosen])
    return Verdict(
        winner,
        names[winner],
        share,
        confidence,
        distance,
        score,
        chosen[0].decision.threshold,
        votes,
        len(samples),
        names[winner],
    )

"""Open-set identification: rank the people a probe may be, normalise the score, decide person or unknown.

How a probe is scored against a person, chosen by measurement on faces-dev (``faceid bench identify``,
bench/RESULTS.md "Identification"):

* **Centroid, not nearest face.** A person with several faces is represented by the mean of their
  descriptors. With 3 photos enrolled per person it found more people at 1% stranger matches than the
  nearest face (and far more at 0.1%): averaging cancels the noise of any one photo.
* **Cohort normalisation.** The distance ``d`` between probe ``p`` and centroid ``c`` is divided by
  ``sqrt(m(p) * m(c))``, where ``m(x)`` is the mean distance from ``x`` to its ``k`` nearest faces in a
  cohort of background faces (strangers to the gallery, saved by ``faceid calibrate``). A face that sits
  in a crowded part of descriptor space (many look-alikes) gets its distances stretched, an isolated one
  shrunk, so one threshold means the same thing everywhere. Normalising both sides also re-ranks
  candidates, which lifts closed-set rank-1 as well.

Candidates come from the nearest faces in the gallery's index (exact or approximate); only those people
are re-scored. The decision threshold comes from the stored calibration: the distribution of stranger
scores (per comparison) gives, for the gallery's current number of people ``N``, the score that a
stranger beats with probability ``target_fpir`` against the whole gallery (``1 - (1 - fmr)^N = fpir``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from faceid.store.gallery_cache import Gallery

if TYPE_CHECKING:
    from faceid.store.camera import CameraCalibration
from faceid.store.records import Candidate, Identification
from faceid.store.schema import ModelVersion
from faceid.thresholds import (
    AMBIGUOUS_SCORE_GAP,
    COHORT_K,
    IDENTIFY_CANDIDATE_FACES,
    IDENTIFY_CANDIDATE_PEOPLE,
    UNCALIBRATED_CENTROID_THRESHOLD,
    UNCALIBRATED_FUSED_CENTROID_THRESHOLD,
)

log = logging.getLogger(__name__)

METHOD_DISTANCE = "centroid-distance"
METHOD_COHORT = "centroid-cohort"


# -- scoring, shared by the store and the benchmark (batched) ------------------------------------------


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` (n, d) and ``b`` (m, d) -> (n, m)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    squared = (a * a).sum(1)[:, None] - 2.0 * (a @ b.T) + (b * b).sum(1)[None, :]
    return np.sqrt(np.maximum(squared, 0.0))


def cohort_means(
    vectors: np.ndarray, cohort: np.ndarray, k: int = COHORT_K, cohort_sq_norms: np.ndarray | None = None
) -> np.ndarray:
    """Mean distance from each row of ``vectors`` to its ``k`` nearest cohort faces."""
    vectors = np.atleast_2d(np.asarray(vectors, np.float32))
    if cohort_sq_norms is None:
        distances = pairwise_distances(vectors, cohort)
    else:
        squared = (vectors * vectors).sum(1)[:, None] - 2.0 * (vectors @ cohort.T) + cohort_sq_norms[None, :]
        distances = np.sqrt(np.maximum(squared, 0.0))
    k = max(1, min(k, distances.shape[1]))
    nearest = np.partition(distances, k - 1, axis=1)[:, :k] if k < distances.shape[1] else distances
    return nearest.mean(axis=1)


def one_face_equivalent(distances: np.ndarray, faces: np.ndarray, within_variance: float) -> np.ndarray:
    """Distances to centroids of ``faces`` faces each (the last axis), made comparable with distances to one face.

    A centroid of k faces sits closer to the person's true mean than any one face: its expected squared distance
    to anyone is smaller by ``s^2 (1 - 1/k)``, ``s^2`` the within-person variance, for strangers as for the person.
    Calibrations score one-face centroids, so without this a person enrolled with 2 or 3 photos let 3-4% of
    strangers through for a 1% target (faceid bench identify --enroll 3). Adding the shrinkage back keeps the
    order among equals and the benefit of averaging (a steadier template), and restores the stranger rate.
    """
    extra = within_variance * (1.0 - 1.0 / np.maximum(np.asarray(faces, np.float64), 1.0))
    return np.sqrt(np.asarray(distances, np.float64) ** 2 + extra).astype(np.float32)


def normalise(distances: np.ndarray, probe_means: np.ndarray, gallery_means: np.ndarray) -> np.ndarray:
    """``d / sqrt(m(probe) * m(gallery item))`` for a (probes, items) matrix of distances."""
    scale = np.sqrt(np.maximum(np.outer(probe_means, gallery_means), 1e-12))
    return np.asarray(distances / scale, np.float32)


def centroids(embeddings: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(people, centroid matrix): the mean descriptor of each owner's faces."""
    people, inverse = np.unique(owners, return_inverse=True)
    sums = np.zeros((len(people), embeddings.shape[1]), np.float64)
    np.add.at(sums, inverse, embeddings)
    counts = np.bincount(inverse, minlength=len(people))[:, None]
    return people, (sums / counts).astype(np.float32)


def ambiguous_pairs(scores: np.ndarray, threshold: float, gap: float = AMBIGUOUS_SCORE_GAP) -> np.ndarray:
    """For a (probes, people) score matrix: which probes' best person passes ``threshold`` with the second-best
    person within ``gap`` of it (too close to call, so nobody is named)."""
    if scores.shape[1] < 2:
        return np.zeros(len(scores), bool)
    two = np.partition(scores, 1, axis=1)[:, :2]
    return (two[:, 0] <= threshold) & (two[:, 1] - two[:, 0] < gap)


def is_ambiguous(scores: Sequence[float], threshold: float, gap: float = AMBIGUOUS_SCORE_GAP) -> bool:
    """The same rule for one probe's ranked scores (best first)."""
    return len(scores) >= 2 and scores[0] <= threshold and scores[1] - scores[0] < gap


# -- calibration ----------------------------------------------------------------------------------------


@dataclass
class Calibration:
    """A model's decision rule: the method, the stranger-score tail that sets the threshold, the cohort.

    ``impostor_tail`` holds the lowest (most person-like) stranger comparison scores, ascending, out of
    ``impostor_count`` comparisons; ``threshold`` is the value for ``gallery_size`` people, kept for the
    record; :meth:`threshold_for` recomputes it for the gallery's actual size.
    """

    model_id: str
    method: str
    threshold: float
    target_fpir: float
    gallery_size: int
    dim: int = 128
    cohort: np.ndarray | None = None
    impostor_tail: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    impostor_count: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    # The mixture a synthetic cohort was drawn from (faceid.store.population), kept for shipping it.
    population: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.cohort is not None and np.ndim(self.cohort) == 2:
            self.dim = int(np.shape(self.cohort)[1])  # the cohort's descriptors say how long the model's are

    @classmethod
    def from_row(cls, row: ModelVersion) -> Calibration:
        info = dict(row.calibration or {})
        cohort = None
        if row.cohort:
            cohort = np.frombuffer(row.cohort, "<f4").astype(np.float32).reshape(-1, row.dim)
        return cls(
            model_id=row.model_id,
            method=row.method or METHOD_DISTANCE,
            threshold=float(row.threshold or 0.0),
            target_fpir=float(info.pop("target_fpir", 0.01)),
            gallery_size=int(info.pop("gallery_size", 0)),
            dim=row.dim,
            cohort=cohort,
            impostor_tail=np.asarray(info.pop("impostor_tail", []), np.float32),
            impostor_count=int(info.pop("impostor_count", 0)),
            details=info,
        )

    def fill_row(self, row: ModelVersion) -> None:
        row.dim = self.dim
        row.method = self.method
        row.threshold = float(self.threshold)
        row.calibration = {
            **self.details,
            "target_fpir": self.target_fpir,
            "gallery_size": self.gallery_size,
            "impostor_tail": [round(float(v), 6) for v in self.impostor_tail],
            "impostor_count": self.impostor_count,
        }
        row.cohort = None if self.cohort is None else np.asarray(self.cohort, "<f4").tobytes()

    def false_match_rate(self, score: float) -> float:
        """Share of stranger comparisons scoring at or below ``score`` (more alike); beyond the tail, an upper bound."""
        if self.impostor_count <= 0:
            return 1.0
        below = int(np.searchsorted(self.impostor_tail, score, side="right"))
        if below >= len(self.impostor_tail):
            return max(below, len(self.impostor_tail)) / self.impostor_count
        return below / self.impostor_count

    def typical_best_score(self, people: int) -> float | None:
        """The median of a stranger's best score against ``people`` people: the score x with
        1 - (1 - F(x)) ^ people = 1/2, read off the stranger score percentiles (None without them)."""
        quantiles = self.details.get("impostor_quantiles")
        if not quantiles:
            return None
        table = np.asarray(quantiles, np.float64)
        share = 1.0 - 0.5 ** (1.0 / max(people, 1))
        return float(np.interp(np.log(share), np.log(table[:, 0]), table[:, 1]))

    def threshold_for(self, people: int) -> float:
        """The score a stranger beats (matches someone) with probability ``target_fpir`` among ``people``."""
        if self.impostor_count <= 0 or len(self.impostor_tail) == 0:
            return self.threshold
        people = max(people, 1)
        fmr = 1.0 - (1.0 - self.target_fpir) ** (1.0 / people)
        rank = int(np.floor(fmr * self.impostor_count))
        if rank >= len(self.impostor_tail):
            return float(self.impostor_tail[-1])
        if rank == 0:
            return float(self.impostor_tail[0]) - 1e-6  # below every stranger seen: the tightest we can tell
        return float((self.impostor_tail[rank - 1] + self.impostor_tail[rank]) / 2)

    def summary(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "method": self.method,
            "threshold": round(self.threshold, 6),
            "target_fpir": self.target_fpir,
            "gallery_size": self.gallery_size,
            "cohort_size": 0 if self.cohort is None else len(self.cohort),
            "impostor_comparisons": self.impostor_count,
            # The distributions kept in the details (stranger percentiles, an inherited rule) stay out of it.
            **{k: v for k, v in self.details.items() if k not in ("distance_rule", "impostor_quantiles")},
        }


# -- the matcher ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranked:
    person_id: int
    face_id: int  # the person's nearest face to the probe
    distance: float  # to the person's centroid
    score: float  # the method's score: lower = likelier


class Matcher:
    """Scores a probe against one model's gallery and decides, using that model's calibration (if any)."""

    def __init__(self, gallery: Gallery, calibration: Calibration | None) -> None:
        self.gallery = gallery
        self.calibration = calibration
        self.cohort: np.ndarray | None = None
        self.method = METHOD_DISTANCE
        if calibration is not None and calibration.method == METHOD_COHORT and calibration.cohort is not None:
            self.method = METHOD_COHORT
            self.cohort = np.ascontiguousarray(calibration.cohort, np.float32)
            self._cohort_sq = (self.cohort * self.cohort).sum(1)
        # m(centroid) per person, valid while the gallery hands back the same centroid array.
        self._centroid_means: dict[int, tuple[np.ndarray, float]] = {}

    def _means_of_centroids(self, people: list[int], centres: dict[int, np.ndarray]) -> np.ndarray:
        assert self.cohort is not None
        stale = [p for p in people if (cached := self._centroid_means.get(p)) is None or cached[0] is not centres[p]]
        if stale:
            # One query per person would be one small matrix product each; batch the new ones.
            means = cohort_means(np.stack([centres[p] for p in stale]), self.cohort, COHORT_K, self._cohort_sq)
            for person, value in zip(stale, means.tolist(), strict=True):
                self._centroid_means[person] = (centres[person], float(value))
            if len(self._centroid_means) > 4 * max(len(centres), 50_000):
                self._centroid_means.clear()
        return np.array([self._centroid_means[p][1] for p in people], np.float32)

    def rank(self, probe: np.ndarray, top_k: int) -> list[Ranked]:
        probe = np.asarray(probe, np.float32).reshape(-1)
        neighbours = self.gallery.search(probe, max(IDENTIFY_CANDIDATE_FACES, 4 * top_k))
        nearest_face: dict[int, int] = {}
        for face_id, person_id in zip(neighbours.face_ids.tolist(), neighbours.person_ids.tolist(), strict=True):
            nearest_face.setdefault(person_id, face_id)
            if len(nearest_face) >= max(IDENTIFY_CANDIDATE_PEOPLE, top_k):
                break
        if not nearest_face:
            return []
        by_person = self.gallery.centroids(list(nearest_face))
        people = [p for p in nearest_face if p in by_person]  # a person deleted since the search has none
        if not people:
            return []
        centres = np.stack([by_person[p] for p in people])
        distances = np.sqrt(np.maximum(((centres - probe[None, :]) ** 2).sum(axis=1), 0.0))
        details = self.calibration.details if self.calibration is not None and self.calibrated else {}
        within = float((details or {}).get("within_variance") or 0.0)
        if within > 0:
            counts = self.gallery.face_counts(people)
            faces = np.array([counts.get(p, 1) for p in people], np.float64)
            scored = one_face_equivalent(distances, faces, within)
        else:
            faces, scored = np.ones(len(people)), distances
        if self.cohort is not None:
            probe_mean = cohort_means(probe, self.cohort, COHORT_K, self._cohort_sq)
            centre_means = self._means_of_centroids(people, by_person)
            if within > 0:
                centre_means = one_face_equivalent(centre_means, faces, within)
            scores = normalise(scored[None, :], probe_mean, centre_means)[0]
        else:
            scores = scored
        order = np.argsort(scores, kind="stable")[:top_k]
        return [Ranked(people[i], nearest_face[people[i]], float(distances[i]), float(scores[i])) for i in order]

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None and self.method == self.calibration.method

    def threshold(self) -> float:
        if not self.calibrated:
            return uncalibrated_threshold(self.gallery.model_id)
        assert self.calibration is not None
        return self.calibration.threshold_for(self.gallery.people_count(refresh=False))

    def decide(self, candidates: list[Candidate], camera: CameraCalibration | None = None) -> Identification:
        """Known (the best person passes the threshold, clear of the second), ambiguous (both too close to
        call: nobody is named) or unknown. A camera's own calibration, once in force, scales the threshold."""
        threshold = self.threshold()
        if camera is not None and camera.active:
            threshold *= camera.scale
        best = candidates[0] if candidates else None
        outcome = "unknown"
        if best is not None and best.score <= threshold:
            outcome = "ambiguous" if is_ambiguous([c.score for c in candidates[:2]], threshold) else "known"
        person = best if outcome == "known" else None
        # Only an answer that names someone, or nearly does, needs the estimate; far from everyone it is a bound.
        rate = self.stranger_rate(best.score) if best is not None and outcome != "unknown" else None
        source = "none"
        if self.calibrated and self.calibration is not None:
            source = "shipped" if self.calibration.details.get("source") == "shipped" else "store"
            if camera is not None and camera.active:
                source = "camera"
        return Identification(
            candidates=candidates,
            person=person,
            confidence=1.0 - rate
            if person is not None and rate is not None
            else (self.confidence(person.score) if person is not None else 0.0),
            threshold=threshold,
            method=self.method if self.calibrated else f"{self.method} (uncalibrated)",
            model_id=self.gallery.model_id,
            outcome=outcome,
            stranger_rate=rate,
            calibration=source,
        )

    def stranger_rate(self, score: float) -> float | None:
        """The calibration's estimate of the share of strangers who would score ``score`` or better against the
        whole gallery: 1 - (1 - fmr(score)) ^ people. None without a calibration's stranger scores. Below every
        stranger score it has seen, it is the bound 1 - (1 - 1/comparisons) ^ people."""
        if not self.calibrated or self.calibration is None or not self.calibration.impostor_count:
            return None
        people = max(self.gallery.people_count(refresh=False), 1)
        fmr = max(self.calibration.false_match_rate(score), 1.0 / self.calibration.impostor_count)
        return float(-np.expm1(people * np.log1p(-min(fmr, 1.0 - 1e-12))))

    def confidence(self, score: float) -> float:
        """For a calibrated model, the chance that a stranger would not score this well against the whole
        gallery; uncalibrated, how far inside the threshold the score is (1 at distance 0)."""
        rate = self.stranger_rate(score)
        if rate is not None:
            return 1.0 - rate
        return float(np.clip(1.0 - score / (2 * uncalibrated_threshold(self.gallery.model_id)), 0.0, 1.0))


def uncalibrated_threshold(model_id: str) -> float:
    """The plain centroid distance that decides for a model with no calibration: fused descriptors
    (dlib + SFace) have their own scale."""
    from faceid.vision.sface import split_fused_id

    try:
        fused = split_fused_id(model_id) is not None
    except ValueError:
        fused = True
    return UNCALIBRATED_FUSED_CENTROID_THRESHOLD if fused else UNCALIBRATED_CENTROID_THRESHOLD


def with_box(result: Identification, box: list[float]) -> Identification:
    return replace(result, box=box)

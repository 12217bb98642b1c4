"""A background cohort made from population statistics, holding no one's descriptor.

Cohort normalisation (:mod:`faceid.store.match`) needs background faces: strangers whose distances tell how
crowded each part of descriptor space is. A calibration shipped inside the package, or kept for a camera,
must not carry anyone's face, so the cohort is synthesised:

1. One descriptor per person of a labelled set is clustered (k-means), and clusters are merged until each
   holds at least ``min_people`` different people: a cluster centre is the average of several people's
   faces, nobody's own.
2. Cohort vectors are drawn from the mixture: a centre (chosen in proportion to its people) plus Gaussian
   noise with the covariance of people around their centres.

A single Gaussian over the whole population loses what normalisation needs (which regions are crowded):
on faces-dev it gained nothing over plain distances, while the mixture keeps most of a real cohort's gain
(bench/RESULTS.md, "Built-in calibration").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceid.store.match import pairwise_distances
from faceid.thresholds import (
    POPULATION_COMPONENT_PEOPLE,
    POPULATION_COMPONENTS_PER_PERSON,
    SYNTHETIC_COHORT_SIZE,
)

log = logging.getLogger(__name__)


@dataclass
class PopulationModel:
    """Mixture of ``centres`` (each the mean of at least ``min_people`` people's faces) with one shared
    within-component covariance; ``weights`` are the people per centre."""

    centres: np.ndarray
    weights: np.ndarray
    covariance: np.ndarray
    min_people: int

    def sample(self, size: int = SYNTHETIC_COHORT_SIZE, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(self.centres), size=size, p=self.weights / self.weights.sum())
        noise = rng.multivariate_normal(np.zeros(self.centres.shape[1]), self.covariance, size=size, method="eigh")
        return (self.centres[chosen] + noise).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        return {
            "components": len(self.centres),
            "min_people_per_component": int(self.weights.min()),
            "people": int(self.weights.sum()),
        }


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 50) -> np.ndarray:
    """Plain Lloyd's k-means (k-means++ start); returns each point's cluster."""
    centres = [points[rng.integers(len(points))]]
    nearest = pairwise_distances(points, np.stack(centres))[:, 0] ** 2
    for _ in range(1, k):
        centres.append(points[rng.choice(len(points), p=nearest / nearest.sum())])
        nearest = np.minimum(nearest, pairwise_distances(points, centres[-1][None])[:, 0] ** 2)
    centre_array = np.stack(centres)
    labels = np.zeros(len(points), np.int64)
    for _ in range(iterations):
        new = pairwise_distances(points, centre_array).argmin(axis=1)
        if _ and np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            members = points[labels == c]
            if len(members):
                centre_array[c] = members.mean(axis=0)
    return labels


def fit_population(
    person_faces: np.ndarray,
    min_people: int = POPULATION_COMPONENT_PEOPLE,
    components: int | None = None,
    seed: int = 0,
) -> PopulationModel:
    """The mixture from one descriptor per person (rows of ``person_faces``, each a different person)."""
    points = np.asarray(person_faces, np.float64)
    if len(points) < 2 * min_people:
        raise ValueError(f"a population model needs at least {2 * min_people} people, got {len(points)}")
    k = components or max(1, round(len(points) * POPULATION_COMPONENTS_PER_PERSON))
    k = min(k, len(points) // min_people)
    labels = _kmeans(points, k, np.random.default_rng(seed))
    # Merge clusters of too few people into their nearest neighbour, smallest first.
    while True:
        sizes = np.bincount(labels, minlength=k)
        small = [c for c in np.argsort(sizes) if 0 < sizes[c] < min_people]
        if not small:
            break
        victim = int(small[0])
        alive = [c for c in range(k) if sizes[c] > 0 and c != victim]
        centres = np.stack([points[labels == c].mean(axis=0) for c in alive])
        members = labels == victim
        labels[members] = np.asarray(alive)[pairwise_distances(points[members], centres).argmin(axis=1)]
    kept = [c for c in range(k) if np.any(labels == c)]
    centres = np.stack([points[labels == c].mean(axis=0) for c in kept])
    weights = np.array([np.sum(labels == c) for c in kept], np.float64)
    residuals = points - centres[np.searchsorted(kept, labels)]
    covariance = residuals.T @ residuals / max(len(points) - len(kept), 1)
    return PopulationModel(centres.astype(np.float32), weights, covariance, min_people)


def synthetic_cohort(
    person_faces: np.ndarray,
    size: int = SYNTHETIC_COHORT_SIZE,
    seed: int = 0,
    components: int | None = None,
    min_people: int = POPULATION_COMPONENT_PEOPLE,
) -> tuple[PopulationModel, np.ndarray, dict[str, Any]]:
    """The mixture, a cohort of ``size`` synthetic descriptors drawn from it, and what they are made of.
    ``components=1`` is a single Gaussian over the population (measured against the mixture)."""
    model = fit_population(person_faces, min_people=min_people, components=components, seed=seed)
    cohort = model.sample(size, seed)
    nearest = pairwise_distances(cohort, np.asarray(person_faces, np.float32)).min(axis=1)
    info = {
        **model.summary(),
        "size": size,
        "seed": seed,
        # How close a shipped vector comes to any real face it was made from (a same-person match is ~0.4).
        "nearest_source_distance": {
            "min": round(float(nearest.min()), 4),
            "median": round(float(np.median(nearest)), 4),
        },
    }
    return model, cohort, info

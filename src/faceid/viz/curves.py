"""Same-person and different-person pair scores, and the curves drawn from them: histograms, ROC, DET.

From a gallery, every pair of one person's faces is a same-person pair and pairs of faces of two people are
drawn at random for the different-person side. Scores are in the units the store decides with, so that the
current threshold can be marked on them: with a cohort calibration, ``d / sqrt(m(a) m(b))`` (each face's
mean distance to its nearest cohort faces, as :mod:`faceid.store.match` normalises); otherwise the plain
distance. The store compares a probe with a person's centroid rather than with one face, so the histogram
shows where single faces fall against the threshold, which is the harder case.

From an LFW-style pairs file the scores are plain distances (:func:`faceid.eval.pairs.embed_images`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from faceid.eval.metrics import best_threshold, roc_auc, roc_curve, tar_at_far
from faceid.thresholds import DLIB_DISTANCE_THRESHOLD
from faceid.viz.embeddings import GalleryEmbeddings

if TYPE_CHECKING:
    from faceid.store import Store
    from faceid.vision.analyzer import Analyzer

UNIT_DISTANCE = "distance"
UNIT_COHORT = "cohort-normalised score"
MAX_PAIRS = 200_000
CURVE_POINTS = 300
HISTOGRAM_BINS = 60


@dataclass
class PairScores:
    same: np.ndarray  # scores of same-person pairs (lower = more alike)
    different: np.ndarray
    unit: str
    threshold: float | None
    threshold_label: str
    source: str  # "gallery" or the pairs file
    markers: dict[str, float] = field(default_factory=dict)  # other values worth marking (dlib's 0.6...)


def same_pairs(person_ids: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    for person in np.unique(person_ids):
        rows = np.nonzero(person_ids == person)[0]
        if len(rows) < 2:
            continue
        i, j = np.triu_indices(len(rows), k=1)
        first.append(rows[i])
        second.append(rows[j])
    if not first:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = np.concatenate(first), np.concatenate(second)
    if len(a) > limit:
        keep = rng.choice(len(a), limit, replace=False)
        a, b = a[keep], b[keep]
    return a, b


def different_pairs(person_ids: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = len(person_ids)
    if n < 2 or len(np.unique(person_ids)) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if n * (n - 1) // 2 <= 2 * count:
        # A small gallery: every different-person pair (random draws would repeat pairs).
        a, b = np.triu_indices(n, k=1)
        keep = person_ids[a] != person_ids[b]
        a, b = a[keep], b[keep]
        if len(a) > count:
            chosen = rng.choice(len(a), count, replace=False)
            a, b = a[chosen], b[chosen]
        return a.astype(np.int64), b.astype(np.int64)
    # Draw a little more than needed and keep the pairs of two different people (repeats are negligible here).
    a = rng.integers(0, n, int(count * 1.3) + 16)
    b = rng.integers(0, n, len(a))
    keep = person_ids[a] != person_ids[b]
    return a[keep][:count], b[keep][:count]


def gallery_pair_scores(
    store: Store, gallery: GalleryEmbeddings, max_pairs: int = MAX_PAIRS, seed: int = 0
) -> PairScores:
    """Pair scores of a gallery in the store's decision units, with the store's current threshold."""
    from faceid.store.match import METHOD_COHORT, cohort_means

    rng = np.random.default_rng(seed)
    a_same, b_same = same_pairs(gallery.person_ids, max_pairs, rng)
    # As many different-person pairs as same ones (at least 5,000): enough to draw the false-accept tail.
    a_diff, b_diff = different_pairs(gallery.person_ids, min(max_pairs, max(len(a_same), 5000)), rng)
    vectors = gallery.embeddings
    same = np.linalg.norm(vectors[a_same] - vectors[b_same], axis=1)
    different = np.linalg.norm(vectors[a_diff] - vectors[b_diff], axis=1)
    matcher = store.matcher(gallery.model_id)
    threshold = float(matcher.threshold())
    calibrated = matcher.calibration is not None and matcher.method == matcher.calibration.method
    markers: dict[str, float] = {}
    if matcher.method == METHOD_COHORT and matcher.cohort is not None:
        means = cohort_means(vectors, matcher.cohort) if len(vectors) else np.zeros(0, np.float32)
        same = same / np.sqrt(np.maximum(means[a_same] * means[b_same], 1e-12))
        different = different / np.sqrt(np.maximum(means[a_diff] * means[b_diff], 1e-12))
        unit = UNIT_COHORT
    else:
        unit = UNIT_DISTANCE
        markers["dlib 0.6"] = DLIB_DISTANCE_THRESHOLD
    people = matcher.gallery.people_count()
    label = f"calibrated, {matcher.method}, for {people} people" if calibrated else "uncalibrated fallback"
    return PairScores(same.astype(np.float32), different.astype(np.float32), unit, threshold, label, "gallery", markers)


def pairs_file_scores(
    analyzer: Analyzer, pairs_file: Path, root: Path, use_cache: bool = True, progress: bool = False
) -> PairScores:
    """Plain distances of the pairs in an LFW-style file; dlib's 0.6 marked, and the best-accuracy threshold."""
    from faceid.errors import BadInputError
    from faceid.eval.pairs import embed_images, read_pairs

    pairs, _ = read_pairs(pairs_file)
    images = sorted({p.first for p in pairs} | {p.second for p in pairs})
    results = embed_images(analyzer, root, images, use_cache=use_cache, progress=progress)
    if any(results[rel].embedding is None for rel in images):
        raise BadInputError(f"some images named in {pairs_file} are missing or unreadable under {root}")
    first = np.stack([results[p.first].embedding for p in pairs])  # type: ignore[misc]
    second = np.stack([results[p.second].embedding for p in pairs])  # type: ignore[misc]
    distances = np.linalg.norm(first - second, axis=1).astype(np.float32)
    same = np.array([p.same for p in pairs])
    best = best_threshold(distances, same)
    return PairScores(
        distances[same],
        distances[~same],
        UNIT_DISTANCE,
        DLIB_DISTANCE_THRESHOLD,
        "dlib's threshold",
        str(pairs_file),
        {"best on these pairs": best},
    )


@dataclass
class Curves:
    far: np.ndarray  # ROC: false accept rate (x), true accept rate (y), at each threshold
    tar: np.ndarray
    thresholds: np.ndarray
    auc: float
    eer: float
    eer_threshold: float
    tar_at_far: dict[str, float]
    histogram_edges: np.ndarray
    histogram_same: np.ndarray  # densities
    histogram_different: np.ndarray
    at_threshold: dict[str, float] = field(default_factory=dict)  # FAR and FRR at the marked threshold

    @property
    def fnmr(self) -> np.ndarray:
        return 1.0 - self.tar


def _sampled(far: np.ndarray, tar: np.ndarray, thresholds: np.ndarray, points: int) -> tuple[np.ndarray, ...]:
    """The ROC at ``points`` false-accept rates spread on a log scale (and its ends), for plots and JSON."""
    if len(far) <= points:
        return far, tar, thresholds
    positive = far[far > 0]
    low = float(positive.min()) if len(positive) else 1e-6
    grid = np.unique(np.concatenate([[0.0], np.geomspace(low, 1.0, points)]))
    # For each grid value, the last ROC point whose FAR does not exceed it (the best TAR allowed there).
    index = np.searchsorted(far, grid, side="right") - 1
    index = np.unique(np.clip(index, 0, len(far) - 1))
    return far[index], tar[index], thresholds[index]


def compute_curves(scores: PairScores, points: int = CURVE_POINTS, bins: int = HISTOGRAM_BINS) -> Curves:
    values = np.concatenate([scores.same, scores.different]).astype(np.float64)
    same = np.concatenate([np.ones(len(scores.same), bool), np.zeros(len(scores.different), bool)])
    far, tar, thresholds = roc_curve(values, same)
    auc = roc_auc(values, same) if len(scores.same) and len(scores.different) else float("nan")
    frr = 1.0 - tar
    crossing = int(np.argmin(np.abs(far - frr)))
    eer = float((far[crossing] + frr[crossing]) / 2)
    at_far = {}
    for target in (1e-3, 1e-2):
        at_far[f"{target:g}"] = tar_at_far(values, same, target)[0] if len(values) else float("nan")
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    if scores.threshold is not None:
        low, high = min(low, scores.threshold), max(high, scores.threshold)
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    hist_same = np.histogram(scores.same, edges, density=True)[0] if len(scores.same) else np.zeros(bins)
    hist_diff = np.histogram(scores.different, edges, density=True)[0] if len(scores.different) else np.zeros(bins)
    at_threshold: dict[str, float] = {}
    if scores.threshold is not None:
        # The store accepts a score at or below its threshold.
        if len(scores.different):
            at_threshold["false_accept_rate"] = float(np.mean(scores.different <= scores.threshold))
        if len(scores.same):
            at_threshold["false_reject_rate"] = float(np.mean(scores.same > scores.threshold))
    sampled_far, sampled_tar, sampled_thresholds = _sampled(far, tar, thresholds, points)
    return Curves(
        far=sampled_far,
        tar=sampled_tar,
        thresholds=sampled_thresholds,
        auc=float(auc),
        eer=eer,
        eer_threshold=float(thresholds[crossing]),
        tar_at_far=at_far,
        histogram_edges=edges,
        histogram_same=hist_same,
        histogram_different=hist_diff,
        at_threshold=at_threshold,
    )


def probit(p: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """The normal deviate of each probability: DET curves are straight lines for normal score distributions."""
    unit = NormalDist()
    clipped = np.clip(np.asarray(p, np.float64), floor, 1 - floor)
    return np.array([unit.inv_cdf(float(v)) for v in clipped])


def curves_to_dict(scores: PairScores, curves: Curves) -> dict[str, Any]:
    def rounded(values: np.ndarray, digits: int = 6) -> list[float]:
        return [round(float(v), digits) for v in values]

    return {
        "source": scores.source,
        "unit": scores.unit,
        "threshold": scores.threshold,
        "threshold_label": scores.threshold_label,
        "markers": scores.markers,
        "same_pairs": len(scores.same),
        "different_pairs": len(scores.different),
        "auc": curves.auc,
        "eer": curves.eer,
        "eer_threshold": curves.eer_threshold,
        "tar_at_far": curves.tar_at_far,
        "at_threshold": curves.at_threshold,
        "roc": {"far": rounded(curves.far, 8), "tar": rounded(curves.tar), "threshold": rounded(curves.thresholds)},
        "det": {"fmr": rounded(curves.far, 8), "fnmr": rounded(curves.fnmr)},
        "histogram": {
            "edges": rounded(curves.histogram_edges),
            "same": rounded(curves.histogram_same),
            "different": rounded(curves.histogram_different),
        },
    }

"""Calibration: thresholds from stranger scores, stored per model, used by identification."""

from __future__ import annotations

import numpy as np
import pytest

from faceid.errors import BadInputError
from faceid.store import Store
from faceid.store.calibrate import LabelledFaces, calibrate_faces
from faceid.store.identify_bench import evaluate_faces, open_set_rates
from faceid.store.match import METHOD_COHORT, METHOD_DISTANCE, centroids, cohort_means, normalise

from .helpers import TEST_MODEL


def clustered_faces(people: int, photos: int, seed: int = 0, spread: float = 0.25) -> LabelledFaces:
    """Synthetic labelled descriptors: one centre per person, photos scattered around it."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    counts = [1 if p % 2 else photos for p in range(people)]  # half of them single-photo strangers
    vectors = np.concatenate(
        [centres[p] + spread / np.sqrt(128) * rng.normal(size=(n, 128)) for p, n in enumerate(counts)]
    )
    names = [f"p{p:04d}" for p, n in enumerate(counts) for _ in range(n)]
    paths = [f"{name}/{name}_{i:04d}.jpg" for i, name in enumerate(names)]
    return LabelledFaces(paths, np.array(names), vectors.astype(np.float32), np.ones(len(names), bool))


def test_threshold_follows_gallery_size() -> None:
    faces = clustered_faces(300, 4)
    calibration = calibrate_faces(faces, "m", target_fpir=0.01, gallery_size=100)
    assert calibration.method == METHOD_COHORT and calibration.cohort is not None
    assert 0 < len(calibration.cohort) <= 150
    sizes = [calibration.threshold_for(n) for n in (1, 10, 100, 1000)]
    assert sizes == sorted(sizes, reverse=True)  # more people, stricter threshold
    assert calibration.threshold == pytest.approx(calibration.threshold_for(100))
    assert calibration.details["match_rate_at_threshold"] > 0.9
    assert calibration.false_match_rate(calibration.impostor_tail[0] - 1) == 0.0
    with pytest.raises(BadInputError):
        calibrate_faces(clustered_faces(10, 3), "m")
    with pytest.raises(BadInputError):
        calibrate_faces(faces, "m", target_fpir=2)


def test_calibration_is_stored_per_model_and_used(store: Store) -> None:
    faces = clustered_faces(300, 4, seed=1)
    calibration = calibrate_faces(faces, TEST_MODEL, target_fpir=0.01, gallery_size=50)
    store.save_calibration(calibration)
    other = calibrate_faces(faces, "other-model", method=METHOD_DISTANCE)
    store.save_calibration(other)
    loaded = store.calibration(TEST_MODEL)
    assert loaded is not None and loaded.method == METHOD_COHORT
    np.testing.assert_array_equal(loaded.cohort, calibration.cohort)
    np.testing.assert_allclose(loaded.impostor_tail, calibration.impostor_tail, atol=1e-5)
    assert store.calibration("other-model").method == METHOD_DISTANCE  # type: ignore[union-attr]
    assert store.calibration("unknown-model") is None

    groups = faces.by_person()
    enrolled = [p for p, idx in groups.items() if len(idx) > 1][:50]
    for person in enrolled:
        store.enroll_embeddings(person, faces.embeddings[groups[person][:1]])
    known = store.identify_embedding(faces.embeddings[groups[enrolled[3]][2]])
    assert known.method == METHOD_COHORT and known.known and known.person.name == enrolled[3]  # type: ignore[union-attr]
    assert 0.5 < known.confidence <= 1.0
    assert known.threshold == pytest.approx(loaded.threshold_for(50))
    strangers = [p for p, idx in groups.items() if len(idx) == 1][:100]
    matched = sum(store.identify_embedding(faces.embeddings[groups[p][0]]).known for p in strangers)
    assert matched <= 5


def test_batch_scores_match_the_definitions() -> None:
    rng = np.random.default_rng(3)
    gallery, probes, cohort = (rng.normal(size=(n, 128)).astype(np.float32) for n in (6, 4, 40))
    owners = np.array([0, 0, 1, 1, 2, 2])
    people, centres = centroids(gallery, owners)
    assert people.tolist() == [0, 1, 2]
    np.testing.assert_allclose(centres[1], gallery[2:4].mean(axis=0), rtol=1e-5)
    means = cohort_means(probes, cohort, 5)
    by_hand = np.sort(np.linalg.norm(probes[:, None] - cohort[None], axis=2), axis=1)[:, :5].mean(axis=1)
    np.testing.assert_allclose(means, by_hand, rtol=1e-4)
    scores = normalise(np.ones((4, 3)), np.full(4, 4.0), np.full(3, 1.0))
    np.testing.assert_allclose(scores, 0.5)


def test_open_set_rates_and_protocol() -> None:
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.1], [0.5, 0.6], [0.7, 0.9]])  # 3 genuine, 2 strangers
    rates = open_set_rates(scores, np.array([0, 1, 0]), genuine=3)
    assert rates["rank1"] == pytest.approx(2 / 3)
    results = evaluate_faces(clustered_faces(200, 4, seed=2), sizes=[20, "all"], draws=2, progress=False)
    assert [r["size_label"] for r in results] == ["20", "all"] and results[1]["draws"] == 1
    for result in results:
        methods = result["methods"]
        assert methods["centroid, cohort-normalised"]["rank1"] >= 0.9
        assert set(methods["nearest face, distance"]) == {"rank1", "dir_at_fpir_0.01", "dir_at_fpir_0.001"}

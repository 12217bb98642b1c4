"""Decisions out of the box: the shipped calibration (no one's descriptor in it), three outcomes, stranger odds,
and each camera's own calibration from its strangers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from faceid.store.match import METHOD_COHORT, Matcher, is_ambiguous
from faceid.store.records import Candidate, stranger_odds
from faceid.store.shipped import SHIPPED_DIR, load_shipped, shipped_models
from faceid.thresholds import CAMERA_COHORT_MIN, POPULATION_COMPONENT_PEOPLE
from faceid.vision.embed import DESCRIPTOR_MODEL_ID


def test_the_builtin_model_ships_a_calibration_made_of_no_ones_face() -> None:
    assert shipped_models(), f"no calibration shipped in {SHIPPED_DIR}"
    calibration = load_shipped(DESCRIPTOR_MODEL_ID)
    assert calibration is not None and calibration.method == METHOD_COHORT
    with np.load(next(SHIPPED_DIR.glob("*.npz"))) as saved:
        # Only a mixture (each component the average of several people), stranger scores and a description.
        assert set(saved.files) == {"centres", "weights", "covariance", "impostor_tail", "meta"}
        assert saved["weights"].min() >= POPULATION_COMPONENT_PEOPLE
        assert saved["impostor_tail"].ndim == 1
    info = calibration.details["synthetic_cohort"]
    # A shipped vector is no closer to the faces it was made from than a stranger is.
    assert info["nearest_source_distance"]["min"] >= 0.9 * info["strangers_nearest_source_distance"]["min"]
    assert calibration.cohort is not None and len(calibration.cohort) == info["size"]
    assert calibration.threshold_for(10) > calibration.threshold_for(1000)  # stricter for larger galleries


def test_a_fresh_store_decides_with_the_shipped_calibration(tmp_path: Path) -> None:
    from faceid.store import open_store

    with open_store(tmp_path / "data") as store:
        matcher = store.matcher()
        assert matcher.calibrated and matcher.method == METHOD_COHORT
        assert store.calibration() is not None and store.calibration().details["source"] == "shipped"


class _Gallery:
    model_id = "m"

    def people_count(self, refresh: bool = True) -> int:
        return 50


def _matcher() -> Matcher:
    calibration = load_shipped(DESCRIPTOR_MODEL_ID)
    assert calibration is not None
    return Matcher(_Gallery(), calibration)  # type: ignore[arg-type]


def test_three_outcomes_and_odds_in_words() -> None:
    matcher = _matcher()
    threshold = matcher.threshold()
    clear = [Candidate(1, "Ada", 0.3, threshold * 0.6, 1), Candidate(2, "Bo", 0.6, threshold * 1.2, 2)]
    close = [Candidate(1, "Ada", 0.4, threshold * 0.9, 1), Candidate(2, "Bo", 0.41, threshold * 0.9 + 0.005, 2)]
    far = [Candidate(1, "Ada", 0.8, threshold * 1.3, 1)]
    known, ambiguous, unknown = matcher.decide(clear), matcher.decide(close), matcher.decide(far)
    assert known.outcome == "known" and known.person is not None and known.person.name == "Ada"
    assert ambiguous.outcome == "ambiguous" and ambiguous.person is None and not ambiguous.known
    assert unknown.outcome == "unknown" and unknown.stranger_rate is None
    assert known.calibration == "shipped" and 0 < known.stranger_rate < 0.01
    assert known.confidence == pytest.approx(1 - known.stranger_rate)
    assert is_ambiguous([0.5, 0.51], 0.6) and not is_ambiguous([0.5, 0.7], 0.6) and not is_ambiguous([0.7, 0.71], 0.6)
    assert stranger_odds(1 / 40_000) == "about 1 in 40,000 strangers would match this well"
    assert "million" in stranger_odds(1e-9) and "uncalibrated" in stranger_odds(None)


def _vector(seed: str, base: np.ndarray | None = None, spread: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    if base is None:
        calibration = load_shipped(DESCRIPTOR_MODEL_ID)
        assert calibration is not None and calibration.cohort is not None
        return calibration.cohort[rng.integers(len(calibration.cohort))] + rng.normal(0, 0.01, 128).astype(np.float32)
    return (base + rng.normal(0, spread, base.shape)).astype(np.float32)


def test_a_camera_adapts_to_its_strangers_but_not_to_an_enrolled_persons_missed_faces(tmp_path: Path) -> None:
    from faceid.store.store import Store

    with Store(tmp_path / "data", model_id=DESCRIPTOR_MODEL_ID, index="exact") as store:
        ada = _vector("ada")
        store.enroll_embeddings("Ada", ada[None])
        for k in range(5):
            store.enroll_embeddings(f"person {k}", _vector(f"p{k}")[None])
        before = store.camera_calibration("gate")
        assert not before.active and before.scale == 1.0
        # Ada's own faces, missed as unknown: left out, they must not make Ada harder to name.
        for k in range(10):
            store.record_event(
                person_id=None,
                source="gate",
                model_id=store.model_id,
                metadata={"template": _vector(f"ada-{k}", ada, 0.01).tolist()},
            )
        for k in range(CAMERA_COHORT_MIN):
            store.record_event(
                person_id=None,
                source="gate",
                model_id=store.model_id,
                metadata={"template": _vector(f"stranger-{k}").tolist()},
            )
        after = store.camera_calibration("gate")
        assert after.active and after.strangers == CAMERA_COHORT_MIN and after.left_out == 10
        assert after.expected_score is not None and after.typical_score is not None
        assert store.camera_calibration("garage").strangers == 0  # per camera
        answer = store.identify_embedding(_vector("ada-probe", ada, 0.01), camera="gate")
        assert answer.known and answer.person is not None and answer.person.name == "Ada"
        assert answer.calibration == "camera"


def test_a_person_enrolled_with_several_faces_is_scored_like_one_face(tmp_path: Path) -> None:
    """A centroid of k faces sits closer to everyone than one face does; the store adds the shrinkage back
    (the calibration's within-person variance), so several photos do not let more strangers through."""
    from faceid.store.match import cohort_means, normalise, one_face_equivalent
    from faceid.store.store import Store

    calibration = load_shipped(DESCRIPTOR_MODEL_ID)
    assert calibration is not None and calibration.cohort is not None
    within = float(calibration.details["within_variance"])
    assert 0 < within < 1
    faces = np.stack([_vector(f"ada-{k}", _vector("ada"), 0.03) for k in range(3)])
    probe = _vector("probe")
    with Store(tmp_path / "data", model_id=DESCRIPTOR_MODEL_ID, index="exact") as store:
        store.enroll_embeddings("Ada", faces)
        best = store.identify_embedding(probe).candidates[0]
    centre = faces.mean(axis=0)
    distance = float(np.linalg.norm(probe - centre))
    expected = normalise(
        one_face_equivalent(np.array([[distance]]), np.array([3.0]), within),
        cohort_means(probe, calibration.cohort),
        one_face_equivalent(cohort_means(centre, calibration.cohort), np.array([3.0]), within),
    )[0, 0]
    assert best.distance == pytest.approx(distance, abs=1e-4)  # the distance shown is the plain one
    assert best.score == pytest.approx(float(expected), abs=1e-4) and best.score > distance / 2
    assert one_face_equivalent(np.array([0.5]), np.array([1.0]), within)[0] == pytest.approx(0.5)

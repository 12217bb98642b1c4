"""Calibrations that ship inside faceid: open-set decisions as good as a labelled calibration on a fresh install.

A shipped calibration is a :class:`~faceid.store.match.Calibration` made once, by the maintainers, from a
labelled set (``python bench/build_calibration.py --root faces-dev``), and read when a store holds no
calibration of its own for the model. It contains no photo and no individual's descriptor:

* the cohort is synthetic (:mod:`faceid.store.population`): draws from a mixture whose components are each the
  average of several people's faces;
* the stranger scores that set the threshold for each gallery size are numbers (cohort-normalised distances
  between different people), sorted, with no trace of whose they were.

``faceid calibrate --root`` still replaces it with a calibration on the user's own labelled photos.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from faceid.store.calibrate import LabelledFaces, calibrate_faces
from faceid.store.match import METHOD_COHORT, METHOD_DISTANCE, Calibration, pairwise_distances
from faceid.store.population import PopulationModel, synthetic_cohort
from faceid.thresholds import POPULATION_COMPONENT_PEOPLE, SYNTHETIC_COHORT_SIZE

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).with_name("calibrations")
SOURCE_SHIPPED = "shipped"
DISTANCE_TAIL_KEPT = 2000  # stranger distances kept for the inherited rule: thresholds down to ~1e-3 FMR


def _file_for(model_id: str, folder: Path = SHIPPED_DIR) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
    return folder / f"{safe}.npz"


def _half(name: str) -> int:
    return int(hashlib.sha256(("cohort-half|" + name).encode()).hexdigest(), 16) % 2


def _people_subset(faces: LabelledFaces, people: set[str]) -> LabelledFaces:
    keep = np.array([p in people for p in faces.people.tolist()])
    return LabelledFaces(
        paths=[p for p, k in zip(faces.paths, keep.tolist(), strict=True) if k],
        people=faces.people[keep],
        embeddings=faces.embeddings[keep],
        detected=faces.detected[keep],
    )


def build_calibration(
    faces: LabelledFaces,
    model_id: str,
    *,
    source: str,
    target_fpir: float = 0.01,
    gallery_size: int = 200,
    seed: int = 0,
    cohort_kind: str = "mixture",
    cohort_size: int = SYNTHETIC_COHORT_SIZE,
) -> Calibration:
    """A calibration from labelled descriptors that keeps no one's descriptor: a synthetic cohort drawn from a
    mixture fitted to one face per person, and the stranger scores of every person normalised with it.

    ``cohort_kind`` "gaussian" (one component) and "photos" (the people's own faces, which cannot ship) are
    there to measure the mixture against (``bench/bench_decisions.py``)."""
    # The mixture is fitted to one half of the people and the stranger scores come from the other half: a
    # cohort sits closer to the people it was made from, which would make their scores look less alike
    # than anyone else's and the thresholds too lenient.
    groups = faces.by_person()
    makers = [p for p in groups if _half(p) == 0]
    scored = set(groups) - set(makers)
    first_faces = faces.embeddings[[groups[p][0] for p in makers]]
    population: PopulationModel | None = None
    cohort_info: dict[str, Any]
    if cohort_kind == "photos":
        cohort, cohort_info = first_faces[:cohort_size], {"size": min(cohort_size, len(makers))}
    else:
        components = 1 if cohort_kind == "gaussian" else None
        population, cohort, cohort_info = synthetic_cohort(
            first_faces,
            size=cohort_size,
            seed=seed,
            components=components,
            min_people=len(first_faces) // 2 if components == 1 else POPULATION_COMPONENT_PEOPLE,
        )
    cohort_info["kind"] = cohort_kind
    calibration = calibrate_faces(
        _people_subset(faces, scored),
        model_id,
        method=METHOD_COHORT,
        target_fpir=target_fpir,
        gallery_size=gallery_size,
        source=source,
        cohort=cohort,
    )
    cohort_info["made_from_people"] = len(makers)
    # The same measure for real strangers (the scored people's faces against the makers'): a shipped vector is
    # no closer to the people it was made from than a passer-by is.
    strangers = faces.embeddings[[groups[p][0] for p in sorted(scored)]]
    nearest = pairwise_distances(strangers, first_faces).min(axis=1)
    cohort_info["strangers_nearest_source_distance"] = {
        "min": round(float(nearest.min()), 4),
        "median": round(float(np.median(nearest)), 4),
    }
    calibration.details["synthetic_cohort"] = cohort_info
    calibration.population = population
    # The same people's plain centroid-distance stranger scores: what a fine-tuned version inherits when it has
    # too few held-out people to be calibrated on (faceid.store.versions; its distances are rescaled to the
    # parent's operating point when it is made).
    plain = calibrate_faces(
        _people_subset(faces, scored),
        model_id,
        method=METHOD_DISTANCE,
        target_fpir=target_fpir,
        gallery_size=gallery_size,
        source=source,
    )
    calibration.details["distance_rule"] = {
        "impostor_tail": [round(float(v), 5) for v in plain.impostor_tail[:DISTANCE_TAIL_KEPT]],
        "impostor_count": plain.impostor_count,
    }
    return calibration


def save_shipped(calibration: Calibration, folder: Path = SHIPPED_DIR) -> Path:
    """Write ``calibration`` as the shipped one of its model: the mixture its cohort is drawn from (not the
    vectors: they are drawn again, with the same seed, when it is read) and the stranger scores."""
    population = calibration.population
    if population is None:
        raise ValueError("a shipped calibration needs the population model of its synthetic cohort")
    folder.mkdir(parents=True, exist_ok=True)
    path = _file_for(calibration.model_id, folder)
    info = calibration.details.get("synthetic_cohort", {})
    meta = {
        "model_id": calibration.model_id,
        "method": calibration.method,
        "threshold": calibration.threshold,
        "target_fpir": calibration.target_fpir,
        "gallery_size": calibration.gallery_size,
        "impostor_count": calibration.impostor_count,
        "cohort_size": int(info.get("size", len(calibration.cohort) if calibration.cohort is not None else 0)),
        "cohort_seed": int(info.get("seed", 0)),
        "details": calibration.details,
    }
    tmp = path.with_suffix(".part.npz")
    np.savez_compressed(
        tmp,
        centres=np.asarray(population.centres, "<f4"),
        weights=np.asarray(population.weights, "<f8"),
        covariance=np.asarray(population.covariance, "<f8"),
        impostor_tail=np.asarray(calibration.impostor_tail, "<f4"),
        meta=np.array(json.dumps(meta, sort_keys=True)),
    )
    tmp.replace(path)
    return path


@functools.lru_cache(maxsize=16)
def load_shipped(model_id: str, folder: Path = SHIPPED_DIR) -> Calibration | None:
    """The calibration shipped for ``model_id``, or None when faceid ships none for it."""
    path = _file_for(model_id, folder)
    if not path.is_file():
        return None
    with np.load(path) as saved:
        meta: dict[str, Any] = json.loads(str(saved["meta"]))
        population = PopulationModel(
            centres=saved["centres"].astype(np.float32),
            weights=saved["weights"].astype(np.float64),
            covariance=saved["covariance"].astype(np.float64),
            min_people=int(saved["weights"].min()),
        )
        tail = saved["impostor_tail"].astype(np.float32)
    if meta.get("model_id") != model_id:
        log.warning("ignoring %s: it was made for %s", path, meta.get("model_id"))
        return None
    cohort = population.sample(int(meta["cohort_size"]), int(meta["cohort_seed"]))
    details = dict(meta.get("details", {}))
    return Calibration(
        model_id=model_id,
        method=str(meta["method"]),
        threshold=float(meta["threshold"]),
        target_fpir=float(meta["target_fpir"]),
        gallery_size=int(meta["gallery_size"]),
        dim=int(cohort.shape[1]),
        cohort=cohort,
        impostor_tail=tail,
        impostor_count=int(meta["impostor_count"]),
        details={**details, "source": SOURCE_SHIPPED, "made_from": details.get("source")},
        population=population,
    )


def shipped_models(folder: Path = SHIPPED_DIR) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.npz"))

"""Identification quality on a labelled folder (``faceid bench identify``): closed-set rank-1 and open-set DIR.

Protocol (faces-dev layout ``ROOT/<person>/<person>_NNNN.jpg``):

* Gallery: N people drawn at random (seeds 0..draws-1) among those with more than ``enroll`` photos;
  each enrolled with their ``enroll`` lowest-numbered photos; up to ``max_probes`` of their other photos
  are probes. "all" takes every such person (one draw: there is nothing to draw).
* Strangers: the people with a single photo. They are split in two halves by a hash of the name; one
  half is the background cohort while the other is probed as strangers, then the halves swap, and the
  two results are averaged. So no stranger is ever in the cohort it is scored with (as in use, where the
  cohort comes from the calibration photos, not from the people who walk past the camera).
* Closed-set rank-1: probes whose best-scored person is theirs. DIR at FPIR x: probes named right *and*
  under the threshold that lets a share x of strangers match someone (the threshold read off the
  strangers' best scores: the standard open-set measure, the best threshold any calibration could pick).

Scores are computed in batches with the same functions the store uses (faceid.store.match), and one draw
is also run through a real :class:`~faceid.store.Store` to check that both give the same answers.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from faceid.errors import BadInputError
from faceid.store.calibrate import LabelledFaces, describe_photos, folder_photos
from faceid.store.match import METHOD_COHORT, Calibration, centroids, cohort_means, normalise, pairwise_distances
from faceid.thresholds import COHORT_K

log = logging.getLogger(__name__)

FPIRS = (0.01, 0.001)
BASELINE = "nearest face, distance"
STORE_METHOD = "centroid, cohort-normalised"


def _nearest_face(distances: np.ndarray, owners: np.ndarray, people: int) -> np.ndarray:
    """(probes, people): each person's smallest value over their faces."""
    result = np.full((distances.shape[0], people), np.inf, np.float32)
    for person in range(people):
        result[:, person] = distances[:, owners == person].min(axis=1)
    return result


def score_methods(
    gallery: np.ndarray, owners: np.ndarray, people: int, probes: np.ndarray, cohort: np.ndarray, k: int = COHORT_K
) -> dict[str, np.ndarray]:
    """(probes, people) score matrices, lower = likelier, for plain nearest neighbour and each improvement."""
    face_distances = pairwise_distances(probes, gallery)
    probe_means = cohort_means(probes, cohort, k)
    _, centres = centroids(gallery, owners)
    centre_distances = pairwise_distances(probes, centres)
    all_cohort = pairwise_distances(probes, cohort)
    tnorm = (centre_distances - all_cohort.mean(1, keepdims=True)) / (all_cohort.std(1, keepdims=True) + 1e-6)
    return {
        BASELINE: _nearest_face(face_distances, owners, people),
        "centroid, distance": centre_distances,
        "probe T-norm (whole cohort), centroid": tnorm,
        "nearest face, cohort-normalised": _nearest_face(
            normalise(face_distances, probe_means, cohort_means(gallery, cohort, k)), owners, people
        ),
        STORE_METHOD: normalise(centre_distances, probe_means, cohort_means(centres, cohort, k)),
    }


def open_set_rates(scores: np.ndarray, truth: np.ndarray, genuine: int) -> dict[str, float]:
    """rank-1 and DIR at each FPIR from a (probes, people) matrix whose first ``genuine`` rows are known people."""
    best = scores.argmin(axis=1)
    best_score = scores[np.arange(len(scores)), best]
    named_right = best[:genuine] == truth
    strangers = np.sort(best_score[genuine:])
    rates = {"rank1": float(named_right.mean())}
    for fpir in FPIRS:
        k = int(np.floor(fpir * len(strangers)))
        threshold = strangers[k] if k < len(strangers) else np.inf  # fewer than k strangers lie strictly below
        rates[f"dir_at_fpir_{fpir:g}"] = float(np.mean(named_right & (best_score[:genuine] < threshold)))
    return rates


def _stranger_halves(names: Sequence[str]) -> tuple[list[str], list[str]]:
    first = [n for n in names if int(hashlib.sha256(n.encode()).hexdigest(), 16) % 2 == 0]
    second = [n for n in names if int(hashlib.sha256(n.encode()).hexdigest(), 16) % 2 == 1]
    return first, second


def _draw(
    groups: dict[str, list[int]], eligible: list[str], size: int | str, seed: int, enroll: int, max_probes: int
) -> tuple[list[str], list[int], np.ndarray, list[int], np.ndarray]:
    rng = np.random.default_rng(seed)
    if size == "all":
        people = list(eligible)
    else:
        people = [eligible[i] for i in sorted(rng.choice(len(eligible), int(size), replace=False).tolist())]
    enrolled = [i for p in people for i in groups[p][:enroll]]
    owners = np.array([k for k, p in enumerate(people) for _ in groups[p][:enroll]])
    probes = [i for p in people for i in groups[p][enroll : enroll + max_probes]]
    truth = np.array([k for k, p in enumerate(people) for _ in groups[p][enroll : enroll + max_probes]])
    return people, enrolled, owners, probes, truth


def evaluate_faces(
    faces: LabelledFaces,
    sizes: Sequence[int | str] = (50, 200, "all"),
    draws: int = 5,
    enroll: int = 1,
    max_probes: int = 10,
    progress: bool = True,
    cohort_k: int = COHORT_K,
) -> list[dict[str, Any]]:
    groups = faces.by_person()
    eligible = sorted(p for p, idx in groups.items() if len(idx) > enroll)
    singles = sorted(p for p, idx in groups.items() if len(idx) == 1)
    halves = _stranger_halves(singles)
    if min(len(h) for h in halves) < 2 * COHORT_K:
        raise BadInputError(f"too few people with a single photo to act as strangers ({len(singles)})")
    results = []
    for size in sizes:
        if size != "all" and int(size) > len(eligible):
            raise BadInputError(
                f"a gallery of {size} needs {size} people with > {enroll} photos; there are {len(eligible)}"
            )
        runs = 1 if size == "all" else draws
        collected: dict[str, list[dict[str, float]]] = {}
        bar = tqdm(range(runs), desc=f"gallery {size}", unit="draw", disable=not progress, leave=False)
        genuine_probes = 0
        for seed in bar:
            people, enrolled, owners, probes, truth = _draw(groups, eligible, size, seed, enroll, max_probes)
            genuine_probes = len(probes)
            for cohort_half, stranger_half in (halves, halves[::-1]):
                cohort = faces.embeddings[[groups[p][0] for p in cohort_half]]
                strangers = [groups[p][0] for p in stranger_half]
                probe_vectors = faces.embeddings[probes + strangers]
                scored = score_methods(faces.embeddings[enrolled], owners, len(people), probe_vectors, cohort, cohort_k)
                for method, matrix in scored.items():
                    collected.setdefault(method, []).append(open_set_rates(matrix, truth, len(probes)))
        results.append(
            {
                "gallery_size": len(eligible) if size == "all" else int(size),
                "size_label": str(size),
                "draws": runs,
                "genuine_probes": genuine_probes,
                "strangers": len(singles),
                "methods": {
                    method: {key: float(np.mean([r[key] for r in runs_])) for key in runs_[0]}
                    for method, runs_ in collected.items()
                },
            }
        )
    return results


def _people_half(name: str) -> int:
    return int(hashlib.sha256(("calibration-half|" + name).encode()).hexdigest(), 16) % 2


def evaluate_shipped_calibration(
    faces: LabelledFaces,
    model_id: str,
    sizes: Sequence[int | str] = (50, 200, "all"),
    draws: int = 5,
    enroll: int = 1,
    max_probes: int = 10,
    target_fpir: float = 0.01,
    progress: bool = True,
) -> dict[str, Any]:
    """The built-in calibration, made as it ships (:func:`faceid.store.shipped.build_calibration`), measured on
    people it was not made from: the people are split in two halves by a hash of their name; a calibration
    made from one half decides for galleries, probes and strangers of the other half, then the halves swap.

    Per gallery size: the threshold the calibration gives for it, the share of strangers it let match someone
    (the observed FPIR, to hold against ``target_fpir``), the share of genuine probes named right under it
    (DIR at that threshold), the share of answers that were ambiguous, and DIR at the strangers' own 1% point
    (the best any threshold could do with this cohort: comparable with the table above).
    """
    from faceid.store.match import ambiguous_pairs, one_face_equivalent
    from faceid.store.shipped import _people_subset as _subset
    from faceid.store.shipped import build_calibration

    halves = [{p for p in set(faces.people.tolist()) if _people_half(p) == h} for h in (0, 1)]
    collected: dict[str, list[dict[str, float]]] = {}
    gallery_sizes: dict[str, list[int]] = {}
    for made_from, measured in ((halves[0], halves[1]), (halves[1], halves[0])):
        calibration = build_calibration(
            _subset(faces, made_from), model_id, source="bench: the other half of the people", target_fpir=target_fpir
        )
        assert calibration.cohort is not None
        measured_faces = _subset(faces, measured)
        groups = measured_faces.by_person()
        eligible = sorted(p for p, idx in groups.items() if len(idx) > enroll)
        singles = sorted(p for p, idx in groups.items() if len(idx) == 1)
        strangers = [groups[p][0] for p in singles]
        for size in sizes:
            label = str(size)
            runs = 1 if size == "all" else draws
            for seed in tqdm(
                range(runs), desc=f"shipped calibration, gallery {size}", disable=not progress, leave=False
            ):
                people, enrolled, owners, probes, truth = _draw(
                    groups,
                    eligible,
                    "all" if size == "all" else min(int(size), len(eligible)),
                    seed,
                    enroll,
                    max_probes,
                )
                vectors = measured_faces.embeddings
                _, centres = centroids(vectors[enrolled], owners)
                probe_vectors = vectors[probes + strangers]
                # As the store scores them: centroids of several faces made comparable with one face's.
                per_person = np.bincount(owners, minlength=len(centres)).astype(np.float64)
                within = float(calibration.details.get("within_variance") or 0.0)
                distances = one_face_equivalent(pairwise_distances(probe_vectors, centres), per_person[None, :], within)
                scores = normalise(
                    distances,
                    cohort_means(probe_vectors, calibration.cohort),
                    one_face_equivalent(cohort_means(centres, calibration.cohort), per_person, within),
                )
                threshold = calibration.threshold_for(len(people))
                best = scores.argmin(axis=1)
                best_score = scores[np.arange(len(scores)), best]
                genuine = len(probes)
                named = best_score <= threshold
                ambiguous = ambiguous_pairs(scores, threshold)
                rates = open_set_rates(scores, truth, genuine)
                run = {
                    "threshold": float(threshold),
                    "observed_fpir": float(named[genuine:].mean()),
                    "dir_at_threshold": float(
                        np.mean(named[:genuine] & (best[:genuine] == truth) & ~ambiguous[:genuine])
                    ),
                    "wrong_name_rate": float(
                        np.mean(named[:genuine] & (best[:genuine] != truth) & ~ambiguous[:genuine])
                    ),
                    "ambiguous_rate": float(ambiguous.mean()),
                    "ambiguous_rate_genuine": float(ambiguous[:genuine].mean()),
                    "dir_at_fpir_0.01": rates["dir_at_fpir_0.01"],
                    "rank1": rates["rank1"],
                }
                collected.setdefault(label, []).append(run)
                gallery_sizes.setdefault(label, []).append(len(people))
    return {
        "protocol": "calibration made from one half of the people (by name hash), measured on the other half's "
        "galleries, probes and strangers; both ways, averaged",
        "target_fpir": target_fpir,
        "sizes": {
            label: {
                "gallery_size": round(float(np.mean(gallery_sizes[label])), 1),
                **{key: round(float(np.mean([r[key] for r in runs])), 5) for key in runs[0]},
            }
            for label, runs in collected.items()
        },
    }


def check_against_store(faces: LabelledFaces, size: int = 50, enroll: int = 1, max_probes: int = 10) -> dict[str, Any]:
    """Run draw 0 of ``size`` people through a real store (SQLite, temporary) and compare with the batch scores."""
    from faceid.store.store import Store

    groups = faces.by_person()
    eligible = sorted(p for p, idx in groups.items() if len(idx) > enroll)
    singles = sorted(p for p, idx in groups.items() if len(idx) == 1)
    cohort_half, stranger_half = _stranger_halves(singles)
    people, enrolled, owners, probes, truth = _draw(groups, eligible, min(size, len(eligible)), 0, enroll, max_probes)
    cohort = faces.embeddings[[groups[p][0] for p in cohort_half]]
    strangers = [groups[p][0] for p in stranger_half]
    batch = score_methods(
        faces.embeddings[enrolled], owners, len(people), faces.embeddings[probes + strangers], cohort
    )[STORE_METHOD]
    expected = batch.argmin(axis=1)
    with tempfile.TemporaryDirectory() as folder, Store(folder, model_id="benchmark", index="exact") as store:
        ids = []
        for k, person in enumerate(people):
            ids.append(store.enroll_embeddings(person, faces.embeddings[enrolled][owners == k]).id)
        store.save_calibration(
            Calibration(
                model_id="benchmark",
                method=METHOD_COHORT,
                threshold=float("inf"),
                target_fpir=0.01,
                gallery_size=len(people),
                cohort=cohort,
            )
        )
        position = {person_id: k for k, person_id in enumerate(ids)}
        started = time.perf_counter()
        answers = [store.identify_embedding(v, top_k=1) for v in faces.embeddings[probes + strangers]]
        elapsed = time.perf_counter() - started
    got = np.array([position[a.candidates[0].person_id] for a in answers])
    return {
        "gallery_size": len(people),
        "probes": len(answers),
        "same_top1_as_batch": float(np.mean(got == expected)),
        "store_rank1": float(np.mean(got[: len(probes)] == truth)),
        "batch_rank1": float(np.mean(expected[: len(probes)] == truth)),
        "ms_per_identify": round(1000 * elapsed / max(len(answers), 1), 3),
    }


def run_identification_benchmark(
    analyzer: object,
    root: Path,
    *,
    sizes: Sequence[int | str] = (50, 200, "all"),
    draws: int = 5,
    enroll_per_person: int = 1,
    max_probes: int = 10,
    cohort_k: int = COHORT_K,
    use_cache: bool = True,
    progress: bool = True,
    describe: Callable[..., LabelledFaces] = describe_photos,
) -> dict[str, Any]:
    started = time.perf_counter()
    faces = describe(analyzer, root, folder_photos(root), use_cache=use_cache, progress=progress)
    results = evaluate_faces(faces, sizes, draws, enroll_per_person, max_probes, progress, cohort_k)
    # The store always normalises with COHORT_K; the check only means something with the same k.
    check = check_against_store(faces, 50, enroll_per_person, max_probes) if cohort_k == COHORT_K else None
    try:
        shipped = evaluate_shipped_calibration(
            faces,
            str(getattr(analyzer, "model_id", "?")),
            sizes,
            draws,
            enroll_per_person,
            max_probes,
            progress=progress,
        )
    except BadInputError as error:  # a small labelled set: too few people to make a calibration from half
        shipped = {"skipped": str(error)}
    return {
        "command": "faceid " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("faceid") else None,
        "root": str(root),
        "model_id": str(getattr(analyzer, "model_id", "?")),
        "detector": str(getattr(analyzer, "detector_name", "?")),
        "photos": len(faces.paths),
        "photos_without_detected_face": int((~faces.detected).sum()),
        "unreadable": faces.unreadable,
        "enroll_per_person": enroll_per_person,
        "max_probes": max_probes,
        "cohort_k": cohort_k,
        "results": results,
        "store_check": check,
        "shipped_calibration": shipped,
        "seconds": round(time.perf_counter() - started, 1),
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"identification on {report['root']}: {report['photos']} photos "
        f"({report['photos_without_detected_face']} without a detected face), model {report['model_id']}, "
        f"detector {report['detector']}, {report['enroll_per_person']} photo(s) enrolled per person, "
        f"cohort k={report.get('cohort_k', COHORT_K)}",
        "",
        "| gallery | method | rank-1 | DIR @ FPIR 1% | DIR @ FPIR 0.1% |",
        "|---|---|---|---|---|",
    ]
    for result in report["results"]:
        base = result["methods"][BASELINE]
        for method, rates in result["methods"].items():
            delta = 100 * (rates["dir_at_fpir_0.01"] - base["dir_at_fpir_0.01"])
            gain = "" if method == BASELINE else f" ({delta:+.1f})"
            lines.append(
                f"| {result['size_label']} ({result['gallery_size']} people, {result['draws']} draw(s)) | {method} | "
                f"{100 * rates['rank1']:.1f}% | {100 * rates['dir_at_fpir_0.01']:.1f}%{gain} | "
                f"{100 * rates['dir_at_fpir_0.001']:.1f}% |"
            )
    check = report["store_check"]
    if check:
        lines += [
            "",
            f"store check ({check['gallery_size']} people, {check['probes']} probes through "
            f"Store.identify_embedding): same top-1 as the batch scores for {100 * check['same_top1_as_batch']:.1f}% "
            f"of probes, {check['ms_per_identify']} ms per identification",
        ]
    shipped = report.get("shipped_calibration")
    if shipped and "skipped" in shipped:
        lines += ["", f"built-in calibration not measured: {shipped['skipped']}"]
    elif shipped:
        lines += [
            "",
            f"built-in calibration ({shipped['protocol']}), target FPIR {100 * shipped['target_fpir']:g}%:",
            "",
            "| gallery | threshold | observed FPIR | DIR at threshold | ambiguous | DIR @ FPIR 1% (best threshold) |",
            "|---|---|---|---|---|---|",
        ]
        for label, row in shipped["sizes"].items():
            lines.append(
                f"| {label} ({row['gallery_size']:g} people) | {row['threshold']:.4f} "
                f"| {100 * row['observed_fpir']:.2f}% "
                f"| {100 * row['dir_at_threshold']:.1f}% | {100 * row['ambiguous_rate']:.2f}% "
                f"| {100 * row['dir_at_fpir_0.01']:.1f}% |"
            )
    lines.append(f"({report['seconds']} s)")
    return "\n".join(lines)

"""Choose a model's decision threshold from labelled photos, and the cohort that normalises its scores.

Input: photos labelled by person (a folder tree ``ROOT/<person>/<photos>``, or the photos an LFW-style
pairs file names). Identities are split in two by a hash of their name: up to ``COHORT_MAX`` of them
give one face each to the background cohort; the others are scored, each photo against the first
photo of every other identity, as strangers would be. Those stranger scores fix the threshold that
lets ``target_fpir`` of strangers match someone in a gallery of ``gallery_size`` people (and, kept in
the calibration, the threshold for any other size). Same-person comparisons give the match rate at it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from faceid.errors import BadInputError
from faceid.store.match import (
    METHOD_COHORT,
    METHOD_DISTANCE,
    Calibration,
    cohort_means,
    normalise,
    pairwise_distances,
)
from faceid.store.types import utcnow
from faceid.thresholds import COHORT_K, COHORT_MAX

if TYPE_CHECKING:
    from faceid.store.store import Store

log = logging.getLogger(__name__)

DEFAULT_TARGET_FPIR = 0.01
DEFAULT_TARGET_GALLERY = 200
IMPOSTOR_TAIL = 5000  # stranger scores kept: enough to set thresholds down to ~5000/comparisons
MIN_IDENTITIES = 4 * COHORT_K
MAX_SCORED_PEOPLE = 4000  # bounds the comparison matrix (photos x people) on very large labelled sets


@dataclass
class LabelledFaces:
    """Descriptors of labelled photos: ``people[i]`` is who ``embeddings[i]`` shows; ``paths`` are relative."""

    paths: list[str]
    people: np.ndarray
    embeddings: np.ndarray
    detected: np.ndarray
    unreadable: int = 0

    def by_person(self) -> dict[str, list[int]]:
        """Indices of each person's photos, lowest-numbered (by file name) first."""
        groups: dict[str, list[int]] = {}
        for i, person in enumerate(self.people.tolist()):
            groups.setdefault(person, []).append(i)
        for indices in groups.values():
            indices.sort(key=lambda i: self.paths[i])
        return groups


def within_person_variance(faces: LabelledFaces) -> float:
    """How far one person's descriptors lie from their own mean, E|x - mean|^2 (summed over dimensions, unbiased),
    over the people with two or more photos; 0 when there are none."""
    total, weight = 0.0, 0
    for indices in faces.by_person().values():
        if len(indices) < 2:
            continue
        vectors = faces.embeddings[indices].astype(np.float64)
        total += float(((vectors - vectors.mean(axis=0)) ** 2).sum())
        weight += len(indices) - 1
    return round(total / weight, 6) if weight else 0.0


def folder_photos(root: Path) -> list[str]:
    """``<person>/<photo>`` paths under ``root`` (relative), sorted."""
    from faceid.store.bulk import IMAGE_SUFFIXES

    if not root.is_dir():
        raise BadInputError(f"{root}: not a folder")
    return sorted(
        str(p.relative_to(root))
        for p in root.glob("*/*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.parent.name.startswith(".")
    )


def _set_key(analyzer: object, root: Path, paths: Sequence[str]) -> str:
    """Names a labelled set as described by one pipeline: model, detector settings, and every file's identity."""
    try:
        from faceid.vision.detect import detector_signature

        detector = detector_signature(analyzer.detector)  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        detector = str(getattr(analyzer, "detector_name", "?"))
    pipeline = getattr(analyzer, "pipeline_id", None) or getattr(analyzer, "model_id", "?")
    digest = hashlib.sha256(f"{pipeline}|{detector}|{root.resolve()}".encode())
    for path in paths:
        stat = (root / path).stat()
        digest.update(f"|{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def describe_photos(
    analyzer: object, root: Path, paths: Sequence[str], use_cache: bool = True, progress: bool = True
) -> LabelledFaces:
    """The descriptor of the face of each photo (the most central one).

    With ``use_cache``, the whole set's descriptors are kept in one file under the cache folder, so
    a benchmark or calibration run again on the same photos starts at once.
    """
    import sqlite3

    from faceid.eval.pairs import embed_images
    from faceid.paths import cache_dir

    cached = cache_dir() / "labelled-sets" / f"{_set_key(analyzer, root, paths)}.npz" if use_cache else None
    if cached is not None and cached.is_file():
        try:
            with np.load(cached) as saved:
                return LabelledFaces(
                    paths=[str(p) for p in saved["paths"]],
                    people=saved["people"],
                    embeddings=saved["embeddings"],
                    detected=saved["detected"],
                    unreadable=int(saved["unreadable"]),
                )
        except (OSError, ValueError, KeyError) as error:
            log.warning("ignoring the unreadable cache %s: %s", cached, error)
    try:
        results = embed_images(analyzer, root, list(paths), use_cache=use_cache, progress=progress)  # type: ignore[arg-type]
    except sqlite3.OperationalError as error:  # the per-image cache is busy (another run holds it)
        log.warning("per-image cache unavailable (%s); describing every photo", error)
        results = embed_images(analyzer, root, list(paths), use_cache=False, progress=progress)  # type: ignore[arg-type]
    kept = [p for p in paths if results[p].embedding is not None]
    if not kept:
        raise BadInputError(f"no readable photo under {root}")
    faces = LabelledFaces(
        paths=kept,
        people=np.array([Path(p).parts[0] for p in kept]),
        embeddings=np.stack([np.asarray(results[p].embedding, np.float32) for p in kept]),
        detected=np.array([results[p].detected for p in kept]),
        unreadable=len(paths) - len(kept),
    )
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".part.npz")
        np.savez(
            tmp,
            paths=np.array(faces.paths),
            people=faces.people,
            embeddings=faces.embeddings,
            detected=faces.detected,
            unreadable=faces.unreadable,
        )
        os.replace(tmp, cached)
    return faces


def _hash_order(names: Sequence[str]) -> list[str]:
    return sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())


def calibrate_faces(
    faces: LabelledFaces,
    model_id: str,
    *,
    method: str = METHOD_COHORT,
    target_fpir: float = DEFAULT_TARGET_FPIR,
    gallery_size: int = DEFAULT_TARGET_GALLERY,
    source: str = "",
    cohort: np.ndarray | None = None,
) -> Calibration:
    """A calibration from labelled descriptors. With ``method`` cohort, the background cohort is one face each
    of up to ``COHORT_MAX`` of the people (hash-chosen), or ``cohort`` when given (a synthetic one: then every
    person is scored and no one's face is kept)."""
    if not 0 < target_fpir < 1:
        raise BadInputError("the target stranger match rate must be between 0 and 1")
    if gallery_size < 1:
        raise BadInputError("the gallery size must be at least 1")
    groups = faces.by_person()
    if len(groups) < MIN_IDENTITIES:
        raise BadInputError(f"calibration needs photos of at least {MIN_IDENTITIES} people, got {len(groups)}")
    ordered = _hash_order(list(groups))
    given_cohort = method == METHOD_COHORT and cohort is not None
    cohort_people = (
        ordered[: min(COHORT_MAX, len(ordered) // 2)] if method == METHOD_COHORT and not given_cohort else []
    )
    scored_people = ordered[len(cohort_people) :][:MAX_SCORED_PEOPLE]
    if method != METHOD_COHORT:
        cohort = None
    elif not given_cohort:
        cohort = faces.embeddings[[groups[p][0] for p in cohort_people]]

    entries = faces.embeddings[[groups[p][0] for p in scored_people]]
    probe_index = [i for p in scored_people for i in groups[p]]
    probes = faces.embeddings[probe_index]
    owner = {p: k for k, p in enumerate(scored_people)}
    probe_owner = np.array([owner[faces.people[i]] for i in probe_index])
    is_entry = np.array([groups[faces.people[i]][0] == i for i in probe_index])

    scores = pairwise_distances(probes, entries)
    if cohort is not None:
        scores = normalise(scores, cohort_means(probes, cohort), cohort_means(entries, cohort))
    same = probe_owner[:, None] == np.arange(len(scored_people))[None, :]
    # Stranger scores: one photo per person against everyone else's, so that each person counts once (a person
    # with hundreds of photos would otherwise make the stranger scores theirs). With every photo, the thresholds
    # let 1.7-2.1% of faces-dev strangers through for a 1% target; with one, see bench/RESULTS.md.
    impostors = np.sort(scores[is_entry][~same[is_entry]].astype(np.float32))
    genuine = scores[same & ~is_entry[:, None]]
    calibration = Calibration(
        model_id=model_id,
        method=method,
        threshold=0.0,
        target_fpir=float(target_fpir),
        gallery_size=int(gallery_size),
        dim=int(faces.embeddings.shape[1]),
        cohort=None if cohort is None else cohort.astype(np.float32),
        impostor_tail=impostors[:IMPOSTOR_TAIL],
        impostor_count=int(impostors.size),
    )
    calibration.threshold = calibration.threshold_for(gallery_size)
    calibration.details = {
        "source": source,
        "calibrated_at": utcnow().isoformat(),
        "photos": len(faces.paths),
        "people": len(groups),
        "cohort_people": len(cohort_people),
        "cohort": "synthetic" if given_cohort else ("photos" if cohort is not None else "none"),
        "scored_people": len(scored_people),
        "genuine_comparisons": int(genuine.size),
        "match_rate_at_threshold": round(float(np.mean(genuine <= calibration.threshold)), 4) if genuine.size else None,
        # The stranger score distribution at shares from 1e-5 to 1/2, spaced by ratio: what a camera's own
        # strangers are compared with (faceid.store.camera), at the share a gallery's size asks for.
        "impostor_quantiles": [
            [float(f"{share:.4g}"), round(float(np.quantile(impostors, share)), 5)]
            for share in np.geomspace(1e-5, 0.5, 49)
        ],
        "thresholds_by_gallery_size": {
            str(n): round(calibration.threshold_for(n), 4) for n in (10, 50, 200, 1000, 10000)
        },
        # The stranger scores above are of one-face centroids; a person enrolled with more faces is scored as
        # one (faceid.store.match.one_face_equivalent).
        "within_variance": within_person_variance(faces),
    }
    if calibration.threshold_for(gallery_size) <= float(impostors[0]):
        log.warning(
            "%d stranger comparisons are too few to set a threshold for %.2g%% at %d people; it is the tightest seen",
            impostors.size,
            100 * target_fpir,
            gallery_size,
        )
    return calibration


def calibrate_from_folder(
    store: Store,
    root: Path,
    *,
    method: str = METHOD_COHORT,
    target_fpir: float = DEFAULT_TARGET_FPIR,
    gallery_size: int = DEFAULT_TARGET_GALLERY,
    use_cache: bool = True,
    progress: bool = True,
) -> Calibration:
    faces = describe_photos(store.analyzer, root, folder_photos(root), use_cache=use_cache, progress=progress)
    return calibrate_faces(
        faces, store.model_id, method=method, target_fpir=target_fpir, gallery_size=gallery_size, source=str(root)
    )


def calibrate_from_pairs(
    store: Store,
    pairs_file: Path,
    root: Path,
    *,
    method: str = METHOD_COHORT,
    target_fpir: float = DEFAULT_TARGET_FPIR,
    gallery_size: int = DEFAULT_TARGET_GALLERY,
    use_cache: bool = True,
    progress: bool = True,
) -> Calibration:
    """Calibrate on the photos a pairs file names; every photo of one person against every other person's."""
    from faceid.eval.pairs import read_pairs

    pairs, _ = read_pairs(pairs_file)
    paths = sorted({p.first for p in pairs} | {p.second for p in pairs})
    faces = describe_photos(store.analyzer, root, paths, use_cache=use_cache, progress=progress)
    return calibrate_faces(
        faces,
        store.model_id,
        method=method,
        target_fpir=target_fpir,
        gallery_size=gallery_size,
        source=f"{pairs_file} ({root})",
    )


__all__ = [
    "DEFAULT_TARGET_FPIR",
    "DEFAULT_TARGET_GALLERY",
    "METHOD_COHORT",
    "METHOD_DISTANCE",
    "LabelledFaces",
    "calibrate_faces",
    "calibrate_from_folder",
    "calibrate_from_pairs",
    "describe_photos",
    "folder_photos",
]

"""Face verification on an LFW-style pairs file (the standard "View 2" protocol)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from faceid.errors import BadInputError, ImageError
from faceid.eval.embedding_cache import EmbeddingCache
from faceid.eval.metrics import accuracy_at, kfold_accuracy, roc_auc, tar_at_far
from faceid.thresholds import DLIB_DISTANCE_THRESHOLD
from faceid.vision.analyzer import Analyzer
from faceid.vision.detect import detector_signature
from faceid.vision.image import load_image
from faceid.vision.types import Detection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    first: str  # image path relative to the root
    second: str
    same: bool
    fold: int


def read_pairs(path: Path) -> tuple[list[Pair], int]:
    """Parse an LFW ``pairs.txt``: a header "folds<TAB>n", then per fold n same and n different lines."""
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: cannot read pairs file ({error})") from None
    if not lines:
        raise BadInputError(f"{path}: empty pairs file")
    header = lines[0]
    try:
        folds, per_fold = (int(header[0]), int(header[1])) if len(header) == 2 else (1, (len(lines) - 1) // 2)
    except ValueError:
        raise BadInputError(f"{path}: the first line must be '<folds> <pairs per fold>'") from None
    body = lines[1:] if len(header) == 2 else lines

    def image(name: str, number: str) -> str:
        return f"{name}/{name}_{int(number):04d}.jpg"

    pairs: list[Pair] = []
    for i, fields in enumerate(body):
        fold = i // (2 * per_fold) + 1
        try:
            if len(fields) == 3:
                pairs.append(Pair(image(fields[0], fields[1]), image(fields[0], fields[2]), True, fold))
            elif len(fields) == 4:
                pairs.append(Pair(image(fields[0], fields[1]), image(fields[2], fields[3]), False, fold))
            else:
                raise ValueError
        except ValueError:
            raise BadInputError(f"{path}: line {i + 2} is not a pairs line: {' '.join(fields)!r}") from None
    if len(pairs) != folds * 2 * per_fold:
        log.warning("%s: header announces %d pairs, found %d", path, folds * 2 * per_fold, len(pairs))
    return pairs, folds


@dataclass
class ImageResult:
    embedding: np.ndarray | None
    box: np.ndarray | None
    detected: bool


@dataclass
class PairsReport:
    pairs: int
    folds: int
    images: int
    kfold_mean: float
    kfold_std: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    fixed_threshold: float
    accuracy_at_fixed_threshold: float
    best_threshold_all: float
    tar_at_far_1e3: float
    tar_at_far_1e2: float
    roc_auc: float
    no_face_found: int
    unreadable: int
    no_face_action: str
    configuration: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _closest_to_centre(detections: list[Detection], shape: tuple[int, ...]) -> Detection:
    cy, cx = shape[0] / 2, shape[1] / 2

    def offset(d: Detection) -> float:
        return float(np.hypot((d.box[0] + d.box[2]) / 2 - cx, (d.box[1] + d.box[3]) / 2 - cy))

    return min(detections, key=offset)


def embed_images(
    analyzer: Analyzer,
    root: Path,
    relative_paths: list[str],
    use_cache: bool = True,
    progress: bool = True,
) -> dict[str, ImageResult]:
    """Descriptor of the most central face of each image.

    LFW crops are centred on the person named, so the face nearest the centre is theirs. An
    image where no face is found gets landmarks fitted inside the median box of the faces that
    were found in this set (the crops are aligned, so that box is where the face is), rather
    than being dropped: every pair is scored.
    """
    config = f"pairs|{detector_signature(analyzer.detector)}|{analyzer.pipeline_id}"
    cache = EmbeddingCache(config) if use_cache else None
    results: dict[str, ImageResult] = {}
    missing: list[str] = []
    unreadable: list[str] = []
    for rel in tqdm(relative_paths, desc="embedding", unit="img", disable=not progress):
        path = root / rel
        if not path.is_file():
            unreadable.append(rel)
            continue
        cached = cache.get(path) if cache else None
        if cached is not None and cached[0]:
            results[rel] = ImageResult(cached[2], cached[1], True)
            continue
        try:
            rgb = load_image(path)
        except ImageError as error:
            log.warning("%s", error)
            unreadable.append(rel)
            continue
        detections = analyzer.detector.detect(rgb)
        if not detections:
            missing.append(rel)
            continue
        chosen = _closest_to_centre(detections, rgb.shape)
        face = analyzer.faces_from_detections(rgb, [chosen])[0]
        results[rel] = ImageResult(face.embedding, face.box, True)
        if cache:
            cache.put(path, True, face.box, face.embedding)
    if missing:
        boxes = np.array([r.box for r in results.values() if r.box is not None])
        fallback = np.median(boxes, axis=0).astype(np.float32) if len(boxes) else None
        for rel in missing:
            rgb = load_image(root / rel)
            box = fallback if fallback is not None else np.array([0, 0, rgb.shape[1], rgb.shape[0]], np.float32)
            face = analyzer.faces_from_detections(rgb, [Detection(box=box, score=0.0)])[0]
            results[rel] = ImageResult(face.embedding, box, False)
    if cache:
        cache.close()
    for rel in unreadable:
        results[rel] = ImageResult(None, None, False)
    return results


def evaluate_pairs(
    analyzer: Analyzer,
    pairs_file: Path,
    root: Path,
    threshold: float = DLIB_DISTANCE_THRESHOLD,
    use_cache: bool = True,
    progress: bool = True,
) -> PairsReport:
    pairs, folds = read_pairs(pairs_file)
    images = sorted({p.first for p in pairs} | {p.second for p in pairs})
    results = embed_images(analyzer, root, images, use_cache=use_cache, progress=progress)
    unreadable = sum(1 for r in results.values() if r.embedding is None)
    if unreadable:
        raise BadInputError(f"{unreadable} images named in {pairs_file} are missing or unreadable under {root}")
    first = np.stack([results[p.first].embedding for p in pairs])  # type: ignore[misc]
    second = np.stack([results[p.second].embedding for p in pairs])  # type: ignore[misc]
    distances = np.linalg.norm(first - second, axis=1)
    same = np.array([p.same for p in pairs])
    fold_ids = np.array([p.fold for p in pairs])
    kfold = kfold_accuracy(distances, same, fold_ids)
    from faceid.eval.metrics import best_threshold

    tar3, _ = tar_at_far(distances, same, 1e-3)
    tar2, _ = tar_at_far(distances, same, 1e-2)
    no_face = sum(1 for r in results.values() if not r.detected)
    return PairsReport(
        pairs=len(pairs),
        folds=folds,
        images=len(images),
        kfold_mean=kfold.mean,
        kfold_std=kfold.std,
        fold_accuracies=kfold.fold_accuracies,
        fold_thresholds=kfold.fold_thresholds,
        fixed_threshold=threshold,
        accuracy_at_fixed_threshold=accuracy_at(distances, same, threshold),
        best_threshold_all=best_threshold(distances, same),
        tar_at_far_1e3=tar3,
        tar_at_far_1e2=tar2,
        roc_auc=roc_auc(distances, same),
        no_face_found=no_face,
        unreadable=0,
        no_face_action="landmarks fitted in the median face box of the set; every pair scored",
        configuration={
            "detector": analyzer.detector_name,
            "upsample": analyzer.upsample,
            "model": analyzer.model_id,
        },
    )

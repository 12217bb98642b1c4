"""``faceid demo``: find faces in some photos and group them by person, saying what was done."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from faceid.cli.common import CommandError
from faceid.errors import ImageError
from faceid.settings import current
from faceid.thresholds import DLIB_DISTANCE_THRESHOLD
from faceid.vision.analyzer import Analyzer, same_person_threshold

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def default_media_dir() -> Path | None:
    shared = current().shared
    candidates = [shared / "datasets" / "media"] if shared else []
    candidates += [Path.cwd().parent / "shared" / "datasets" / "media", Path.cwd() / "shared" / "datasets" / "media"]
    return next((c for c in candidates if c.is_dir()), None)


def _collect(images: list[str]) -> list[Path]:
    if images:
        paths: list[Path] = []
        for item in map(Path, images):
            if item.is_dir():
                paths.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
            else:
                paths.append(item)
        return paths
    media = default_media_dir()
    if media is None:
        raise CommandError("no photos given and no media folder found (../shared/datasets/media or $FACEID_SHARED)")
    return sorted(p for p in media.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _groups(embeddings: np.ndarray, threshold: float) -> list[list[int]]:
    """Connected components of the "closer than threshold" graph."""
    n = len(embeddings)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    distances = np.linalg.norm(embeddings[:, None] - embeddings[None], axis=2) if n else np.zeros((0, 0))
    for i in range(n):
        for j in range(i + 1, n):
            if distances[i, j] < threshold:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def run_demo(images: list[str], analyzer: Analyzer) -> int:
    paths = _collect(images)
    print(f"faceid demo: {len(paths)} photo(s); detector '{analyzer.detector_name}', model {analyzer.model_id}")
    labels: list[str] = []
    embeddings: list[np.ndarray] = []
    started = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        try:
            faces = analyzer.analyze(path)
        except ImageError as error:
            print(f"  {path.name:<28} skipped: {error}")
            continue
        ms = 1000 * (time.perf_counter() - t0)
        sizes = ", ".join(f"{f.size:.0f}px" for f in faces)
        print(f"  {path.name:<28} {len(faces)} face(s) {('(' + sizes + ')') if faces else '':<24} {ms:7.1f} ms")
        for i, face in enumerate(faces):
            labels.append(path.name if len(faces) == 1 else f"{path.name}#{i + 1}")
            embeddings.append(face.embedding)
    total = time.perf_counter() - started
    fused = " and OpenCV Zoo's SFace (fused)" if embeddings and len(embeddings[0]) == 256 else ""
    threshold = same_person_threshold(embeddings[0]) if embeddings else DLIB_DISTANCE_THRESHOLD
    groups = _groups(np.array(embeddings), threshold) if embeddings else []
    print(
        f"\nGrouped {len(embeddings)} face(s) into {len(groups)} person(s) (same person when distance < {threshold}):"
    )
    for number, group in enumerate(groups, 1):
        print(f"  person {number}: {', '.join(labels[i] for i in group)}")
    print(
        "\nWhat was done: each photo was decoded, its faces detected, 5 landmarks fitted, a 150x150 chip aligned"
        f"\nand a descriptor computed with dlib's ResNet{fused} in ONNX Runtime ({total:.1f} s in all,"
        "\nmodels included). Next: `faceid verify A.jpg B.jpg`, `faceid --help`."
    )
    return 0

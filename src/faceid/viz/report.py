"""``faceid viz``: every picture of a gallery written to one folder, as PNG with the data behind it as JSON.

* ``map.png`` / ``map.json``: the gallery's faces in 2-D, coloured by person, recent unknown events overlaid;
* ``distances.png``, ``roc.png``, ``det.png`` / ``curves.json``: same- and different-person pair scores with
  the current threshold, and the ROC and DET curves drawn from them;
* with two models, ``finetune.png`` / ``finetune.json``: the same faces described by each, side by side.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from faceid.errors import BadInputError, FaceidError
from faceid.plain_json import json_default
from faceid.viz.curves import (
    compute_curves,
    curves_to_dict,
    different_pairs,
    gallery_pair_scores,
    pairs_file_scores,
    same_pairs,
)
from faceid.viz.embeddings import GalleryEmbeddings, load_gallery, load_unknown_events
from faceid.viz.maps import EmbeddingMap, build_map
from faceid.viz.plots import write_compare_png, write_det_png, write_histogram_png, write_map_png, write_roc_png

if TYPE_CHECKING:
    from faceid.store import Store
    from faceid.vision.embed import DescriptorEmbedder

log = logging.getLogger(__name__)


def _write_json(data: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(json.dumps(data, indent=1, default=json_default))
    temporary.replace(path)
    return path


def write_gallery_visuals(
    store: Store,
    out: Path,
    *,
    method: str = "pca",
    model_id: str | None = None,
    max_faces: int | None = None,
    unknown_limit: int = 200,
    pairs_file: Path | None = None,
    root: Path | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """The map and the curves of ``store``'s gallery (or, for the curves, of ``pairs_file`` under ``root``)."""
    out = Path(out)
    gallery = load_gallery(store, model_id, max_faces, seed)
    if len(gallery) == 0:
        raise BadInputError(f"the store has no faces of model {gallery.model_id} to map (enroll people first)")
    unknown = load_unknown_events(store, gallery.model_id, store.analyzer, unknown_limit, progress=progress)
    emap = build_map(gallery, unknown, method, seed)
    files = [
        write_map_png(emap, out / "map.png"),
        _write_json(emap.to_dict(), out / "map.json"),
    ]
    summary: dict[str, Any] = {"model_id": gallery.model_id, "map": emap.summary()}
    if pairs_file is not None:
        if root is None:
            raise BadInputError("a pairs file needs the folder holding its photos")
        scores = pairs_file_scores(store.analyzer, pairs_file, root, progress=progress)
    else:
        scores = gallery_pair_scores(store, gallery, seed=seed)
    if len(scores.same) == 0 or len(scores.different) == 0:
        summary["curves_skipped"] = (
            "the gallery has no person with two faces, or only one person: no pairs to draw curves from "
            "(enroll more photos per person, or pass --pairs)"
        )
    else:
        curves = compute_curves(scores)
        data = curves_to_dict(scores, curves)
        files += [
            write_histogram_png(scores, curves, out / "distances.png"),
            write_roc_png(scores, curves, out / "roc.png"),
            write_det_png(scores, curves, out / "det.png"),
            _write_json(data, out / "curves.json"),
        ]
        summary["curves"] = {
            "source": scores.source,
            "same": len(scores.same),
            "different": len(scores.different),
            "unit": scores.unit,
            "threshold": scores.threshold,
            "threshold_label": scores.threshold_label,
            "auc": curves.auc,
            "eer": curves.eer,
            "tar_at_far": curves.tar_at_far,
            "at_threshold": curves.at_threshold,
        }
    summary["files"] = [str(f) for f in files]
    return summary


# -- before / after a fine-tune ------------------------------------------------------------------------------


def gallery_chips(store: Store, face_ids: np.ndarray, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Aligned chips of faces from their stored photo and landmarks; also the ids that had one."""
    from faceid.vision.align import face_chips
    from faceid.vision.analyzer import CHIP_PADDING, CHIP_SIZE
    from faceid.vision.image import load_image

    wanted = [int(f) for f in face_ids]
    rows = {row.face_id: row for row in store.face_images(wanted)}
    ids, chips = [], []
    for face_id in tqdm(wanted, desc="chips", unit="face", disable=not progress, leave=False):
        row = rows.get(face_id)
        if row is None or not row.image_sha256 or not row.image_type or not row.landmarks:
            continue
        try:
            rgb = load_image(store.files.read(row.image_sha256, row.image_type))
        except (OSError, FaceidError) as error:
            log.warning("face %d: its photo cannot be read (%s)", face_id, error)
            continue
        points = np.asarray(row.landmarks, np.float32).reshape(-1, 2)
        chips.append(face_chips(rgb, [points], size=CHIP_SIZE, padding=CHIP_PADDING)[0])
        ids.append(face_id)
    stacked = np.stack(chips) if chips else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    return np.array(ids, np.int64), stacked


def resolve_embedder(
    store: Store, ref: str, device: str = "cpu", threads: int | None = None
) -> tuple[str, DescriptorEmbedder]:
    """A descriptor model named by an .onnx file or by a stored version (id or unique prefix)."""
    from faceid.vision.embed import DescriptorEmbedder

    path = Path(ref)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise BadInputError(f"{path}: no such ONNX file")
        return path.name, DescriptorEmbedder(device=device, threads=threads, onnx_path=str(path))
    if hasattr(store, "get_version") and hasattr(store, "onnx_path"):  # already a VersionedStore
        version = store.get_version(ref)
        onnx_path = store.onnx_path(version)
    else:
        try:
            from faceid.store.versions import VersionedStore
        except ImportError:
            raise BadInputError(f"{ref!r}: this faceid has no model versions; pass two .onnx files") from None
        with VersionedStore(store.data_dir, database=store.database) as versions:
            version = versions.get_version(ref)
            onnx_path = versions.onnx_path(version)
    return version.model_id, DescriptorEmbedder(device=device, threads=threads, onnx_path=onnx_path)


def separation(embeddings: np.ndarray, person_ids: np.ndarray, seed: int = 0) -> dict[str, float]:
    """How far apart the same-person and different-person distances are: means, d' and best pair accuracy."""
    from faceid.eval.metrics import accuracy_at, best_threshold

    rng = np.random.default_rng(seed)
    a, b = same_pairs(person_ids, 100_000, rng)
    c, d = different_pairs(person_ids, max(len(a), 5000), rng)
    same = np.linalg.norm(embeddings[a] - embeddings[b], axis=1)
    different = np.linalg.norm(embeddings[c] - embeddings[d], axis=1)
    if not len(same) or not len(different):
        return {}
    spread = np.sqrt((same.var() + different.var()) / 2)
    scores = np.concatenate([same, different])
    labels = np.concatenate([np.ones(len(same), bool), np.zeros(len(different), bool)])
    threshold = best_threshold(scores, labels)
    return {
        "same_mean": float(same.mean()),
        "different_mean": float(different.mean()),
        "d_prime": float((different.mean() - same.mean()) / spread) if spread > 0 else float("inf"),
        "best_threshold": threshold,
        "pair_accuracy": accuracy_at(scores, labels, threshold),
    }


def align_to(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """``moving`` rotated, reflected and scaled onto ``reference`` (orthogonal Procrustes), so that the two
    maps of the same faces can be compared by eye: a projection's orientation is arbitrary."""
    if len(reference) < 2:
        return moving
    ref = reference - reference.mean(axis=0)
    mov = moving - moving.mean(axis=0)
    u, s, vt = np.linalg.svd(mov.T @ ref)
    rotation = u @ vt
    norm = float((mov**2).sum())
    scale = float(s.sum() / norm) if norm > 0 else 1.0
    return (mov @ rotation * scale + reference.mean(axis=0)).astype(np.float32)


def write_finetune_visuals(
    store: Store,
    out: Path,
    before: str,
    after: str,
    *,
    method: str = "pca",
    max_faces: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """The gallery's faces described by ``before`` and by ``after`` (versions or .onnx files), mapped side by side."""
    analyzer = store.analyzer
    device, threads = getattr(analyzer, "device", "cpu"), getattr(analyzer, "threads", None)
    before_name, before_embedder = resolve_embedder(store, before, device, threads)
    after_name, after_embedder = resolve_embedder(store, after, device, threads)
    gallery = load_gallery(store, None, max_faces, seed)
    face_ids, chips = gallery_chips(store, gallery.face_ids[gallery.has_image], progress)
    if len(face_ids) == 0:
        raise BadInputError("no gallery face has a stored photo to describe with both models")
    keep = np.isin(gallery.face_ids, face_ids)
    person_ids = gallery.person_ids[keep]
    maps: list[EmbeddingMap] = []
    stats: list[dict[str, Any]] = []
    for name, embedder in ((before_name, before_embedder), (after_name, after_embedder)):
        vectors = embedder.embed(chips)
        subset = GalleryEmbeddings(
            name, face_ids, person_ids, vectors, np.ones(len(face_ids), bool), gallery.names, len(face_ids)
        )
        emap = build_map(subset, None, method, seed)
        if maps:
            coordinates = align_to(np.column_stack([maps[0].x, maps[0].y]), np.column_stack([emap.x, emap.y]))
            emap.x, emap.y = coordinates[:, 0], coordinates[:, 1]
        maps.append(emap)
        stats.append({"model": name, **separation(vectors, person_ids, seed)})

    def title(stat: dict[str, Any], label: str) -> str:
        if "d_prime" not in stat:
            return f"{label}: {stat['model']}"
        return (
            f"{label}: {stat['model']}\nsame {stat['same_mean']:.3f} / different {stat['different_mean']:.3f} "
            f"mean distance, d' {stat['d_prime']:.2f}, pair accuracy {100 * stat['pair_accuracy']:.2f}%"
        )

    png = write_compare_png(
        maps[0], maps[1], (title(stats[0], "before"), title(stats[1], "after")), out / "finetune.png"
    )
    data = {"before": {**stats[0], "map": maps[0].to_dict()}, "after": {**stats[1], "map": maps[1].to_dict()}}
    written = _write_json(data, out / "finetune.json")
    return {"faces": len(face_ids), "before": stats[0], "after": stats[1], "files": [str(png), str(written)]}

"""Second opinion: SFace alone and fused with dlib's descriptor, on faces-dev pairs (LFW protocol).

    python bench/bench_second_opinion.py embed --detector fast      # once per detector (cached, resumable)
    python bench/bench_second_opinion.py embed --detector mmod
    python bench/bench_second_opinion.py report                     # the table, weight chosen on folds 1-4
    python bench/bench_second_opinion.py timing                     # ms per face of each branch

``embed`` runs the same code as `faceid eval pairs` (same detector, same central face, same fallback for images
without a detected face) once per image and keeps every variant at once: dlib's descriptor of the chip and of
its mirror image, SFace's of the crop aligned from the image and of its mirror image, and SFace's of a crop
re-aligned from the 150 px chip. Every row of the report is then computed from those vectors.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np

from common import command_line, dataset, machine, median_ms, time_call
from faceid.eval.metrics import accuracy_at, best_threshold, kfold_accuracy, roc_auc, tar_at_far
from faceid.eval.pairs import embed_images, read_pairs
from faceid.paths import cache_dir
from faceid.vision.analyzer import Analyzer
from faceid.vision.embed import DescriptorEmbedder
from faceid.vision.sface import SFaceEmbedder, chip_landmarks, sface_crops

WEIGHTS = np.round(np.arange(0.0, 3.01, 0.05), 2)
OUT = cache_dir() / "bench-second-opinion"


class AllVariants:
    """An embedder whose 'descriptor' is every variant side by side (5 x 128 values)."""

    chip_size = 150

    def __init__(self) -> None:
        self.dlib = DescriptorEmbedder(threads=1)
        self.sface = SFaceEmbedder(threads=1)
        self.model_id = "bench-all-variants:" + self.dlib.model_id + "+" + self.sface.model_id

    def embed(self, chips: np.ndarray) -> np.ndarray:  # only the warm-up calls this
        return np.zeros((len(chips), 640), np.float32)

    def embed_faces(self, image: np.ndarray, landmarks: Sequence[np.ndarray], chips: np.ndarray) -> np.ndarray:
        dlib_plain = self.dlib.embed(chips)
        dlib_flipped = self.dlib.embed(np.ascontiguousarray(chips[:, :, ::-1]))
        crops = sface_crops(image, landmarks)
        sface_plain = self.sface.embed_crops(crops)
        sface_flipped = self.sface.embed_crops(np.ascontiguousarray(crops[:, :, ::-1]))
        from_chip = self.sface.embed_crops(np.stack([sface_crops(c, [chip_landmarks()])[0] for c in chips]))
        return np.concatenate([dlib_plain, dlib_flipped, sface_plain, sface_flipped, from_chip], axis=1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def cmd_embed(args: argparse.Namespace) -> None:
    root = dataset("faces-dev")
    pairs, _ = read_pairs(root / "pairs.txt")
    images = sorted({p.first for p in pairs} | {p.second for p in pairs})
    analyzer = Analyzer(args.detector, threads=1, embedder=AllVariants())
    start = time.perf_counter()
    results = embed_images(analyzer, root, images)
    OUT.mkdir(parents=True, exist_ok=True)
    vectors = np.stack([results[rel].embedding for rel in images])
    detected = np.array([results[rel].detected for rel in images])
    np.savez(OUT / f"{args.detector}.npz", images=np.array(images), vectors=vectors, detected=detected)
    missing = int((~detected).sum())
    print(f"{len(images)} images, {missing} without a detected face, {time.perf_counter() - start:.0f} s")


def variants(data: np.lib.npyio.NpzFile) -> dict[str, np.ndarray]:
    v = data["vectors"]
    dlib, dlib_flip, sface, sface_flip, from_chip = (v[:, i * 128 : (i + 1) * 128] for i in range(5))
    return {
        "dlib": dlib,
        "dlib+mirror": (dlib + dlib_flip) / 2,
        "sface": sface,
        "sface+mirror": _unit(sface + sface_flip),
        "sface-from-chip": from_chip,
    }


def pair_distances(vectors: dict[str, np.ndarray], index: dict[str, int], pairs: list) -> dict[str, np.ndarray]:
    first = np.array([index[p.first] for p in pairs])
    second = np.array([index[p.second] for p in pairs])
    return {name: np.linalg.norm(v[first] - v[second], axis=1) for name, v in vectors.items()}


def fused(d_dlib: np.ndarray, d_sface: np.ndarray, weight: float) -> np.ndarray:
    return np.sqrt(d_dlib**2 + weight**2 * d_sface**2)


def weight_scores(d_dlib: np.ndarray, d_sface: np.ndarray, same: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Per weight: 4-fold accuracy and ROC AUC on folds 1-4 only."""
    train = folds <= 4
    scores = []
    for w in WEIGHTS:
        d = fused(d_dlib[train], d_sface[train], w)
        scores.append((kfold_accuracy(d, same[train], folds[train]).mean, roc_auc(d, same[train])))
    return np.array(scores)


def best_weight(scores: np.ndarray) -> float:
    """The weight with the best accuracy (ties: the higher ROC AUC)."""
    return float(WEIGHTS[np.lexsort((scores[:, 1], scores[:, 0]))[-1]])


def row(name: str, d: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict[str, float | str]:
    kfold = kfold_accuracy(d, same, folds)
    train, test = folds <= 4, folds >= 5
    threshold = best_threshold(d[train], same[train])
    return {
        "pipeline": name,
        "kfold": kfold.mean,
        "kfold_std": kfold.std,
        "heldout": accuracy_at(d[test], same[test], threshold),
        "threshold_1_4": threshold,
        "tar3": tar_at_far(d, same, 1e-3)[0],
        "tar2": tar_at_far(d, same, 1e-2)[0],
        "tar3_heldout": tar_at_far(d[test], same[test], 1e-3)[0],
        "auc": roc_auc(d, same),
    }


def cmd_report(args: argparse.Namespace) -> None:
    root = dataset("faces-dev")
    pairs, _ = read_pairs(root / "pairs.txt")
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    table = []
    loaded = {}
    for detector in args.detectors:
        path = OUT / f"{detector}.npz"
        if not path.is_file():
            print(f"(no vectors for {detector}: run `embed --detector {detector}` first)")
            continue
        data = np.load(path)
        index = {rel: i for i, rel in enumerate(data["images"])}
        loaded[detector] = pair_distances(variants(data), index, pairs)
    configs = [(detector, mirror) for detector in loaded for mirror in ("", "+mirror")]
    scores = {
        (det, m): weight_scores(loaded[det]["dlib" + m], loaded[det]["sface" + m], same, folds) for det, m in configs
    }
    # One weight for the product: the best mean over the four pipelines, on folds 1-4 only.
    weight = args.weight if args.weight is not None else best_weight(np.mean(list(scores.values()), axis=0))
    for detector, mirror in configs:
        dist = loaded[detector]
        d_dlib, d_sface = dist["dlib" + mirror], dist["sface" + mirror]
        table.append(row(f"{detector}{mirror}: dlib", d_dlib, same, folds))
        table.append(row(f"{detector}{mirror}: SFace", d_sface, same, folds))
        if not mirror:
            table.append(row(f"{detector}: SFace from the 150 px chip", dist["sface-from-chip"], same, folds))
        fused_row = row(f"{detector}{mirror}: fused, w = {weight:g}", fused(d_dlib, d_sface, weight), same, folds)
        fused_row["best_w_here"] = best_weight(scores[(detector, mirror)])
        table.append(fused_row)
    print(f"\nCommand: `{command_line()}`  \nMachine: {machine()}, {time.strftime('%Y-%m-%d')}\n")
    print(
        "| pipeline | 6-fold accuracy | folds 5-6 (threshold from 1-4) | TAR @ FAR 1e-3 | TAR @ FAR 1e-2 "
        "| ROC AUC | threshold (folds 1-4) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in table:
        extra = f" (best w on 1-4 here: {r['best_w_here']:g})" if "best_w_here" in r else ""
        print(
            f"| {r['pipeline']}{extra} | {100 * r['kfold']:.2f}% ± {100 * r['kfold_std']:.2f} | "
            f"{100 * r['heldout']:.2f}% | {100 * r['tar3']:.2f}% | {100 * r['tar2']:.2f}% | {r['auc']:.5f} | "
            f"{r['threshold_1_4']:.3f} |"
        )
    (OUT / "report.json").write_text(json.dumps(table, indent=1))


def cmd_timing(args: argparse.Namespace) -> None:
    from faceid.vision.align import face_chips
    from faceid.vision.image import load_image

    root = dataset("faces-dev")
    paths = sorted(root.glob("*/*.jpg"))[:: max(1, 4000 // args.faces)][: args.faces]
    analyzer = Analyzer("fast", threads=args.threads)
    faces = [(rgb, analyzer.analyze(rgb, max_faces=1)) for rgb in (load_image(p) for p in paths)]
    faces = [(rgb, found[0].landmarks) for rgb, found in faces if found]
    dlib = DescriptorEmbedder(threads=args.threads)
    sface = SFaceEmbedder(threads=args.threads)
    for mirror in (False, True):
        dlib.mirror = sface.mirror = mirror

        def dlib_branch() -> None:
            for rgb, points in faces:
                dlib.embed(face_chips(rgb, [points]))

        def sface_branch() -> None:
            for rgb, points in faces:
                sface.embed_crops(sface_crops(rgb, [points]))

        crops = [sface_crops(rgb, [points]) for rgb, points in faces]

        def sface_net(crops: list[np.ndarray] = crops) -> None:
            for crop in crops:
                sface.embed_crops(crop)

        n = len(faces)
        dlib_ms = median_ms(time_call(dlib_branch, args.repeat)) / n
        sface_ms = median_ms(time_call(sface_branch, args.repeat)) / n
        net_ms = median_ms(time_call(sface_net, args.repeat)) / n
        label = "mirror" if mirror else "plain"
        print(
            f"| {label} | {dlib_ms:.1f} | {sface_ms:.1f} | {sface_ms - net_ms:.1f} | {net_ms:.1f} | "
            f"{dlib_ms + sface_ms:.1f} ({(dlib_ms + sface_ms) / dlib_ms:.1f}x) |"
        )
    print(f"\n{n} faces, threads per model {args.threads or 'all cores'}; `{command_line()}`; {machine()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    embed = sub.add_parser("embed")
    embed.add_argument("--detector", default="fast", choices=["fast", "mmod"])
    embed.set_defaults(handler=cmd_embed)
    report = sub.add_parser("report")
    report.add_argument("--detectors", nargs="+", default=["fast", "mmod"])
    report.add_argument("--weight", type=float, default=None, help="fused weight (default: chosen on folds 1-4)")
    report.set_defaults(handler=cmd_report)
    timing = sub.add_parser("timing")
    timing.add_argument("--faces", type=int, default=40)
    timing.add_argument("--repeat", type=int, default=3)
    timing.add_argument("--threads", type=int, default=None, help="threads per model (default: all cores)")
    timing.set_defaults(handler=cmd_timing)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()

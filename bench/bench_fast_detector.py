"""Measure the fast (BlazeFace) detector against its acceptance targets; prints markdown tables.

1. a face found in >= 99.5% of the first 2,000 faces-dev images (sorted by path);
2. a face found in >= 90% of the 275 frames of media/short_hamilton_clip.mp4;
3. <= 20 ms per 640x360 frame;
4. (report) the detected and mapped boxes through dlib's 5-point landmarks and the descriptor, against
   the same pipeline run from dlib's MMOD boxes: landmark shift and descriptor cosine, and optionally
   LFW pair verification with both pipelines.

Usage: python bench/bench_fast_detector.py [--dev-count 2000] [--mapping-count 200] [--pairs 0] [--threads 1]
Needs the data sets (../shared/datasets or $FACEID_SHARED), `faceid models fetch`, PyAV, and dlib-bin
for part 4. Timings on a shared machine are indicative; CPU time per frame is printed next to wall time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from common import clip_frames, command_line, dataset, machine, print_table
from faceid.vision.blazeface import DETECTOR_VARIANTS, BlazeFaceDetector, box_iou
from faceid.vision.types import Detection

DEV_TARGET = 0.995
CLIP_TARGET = 0.90
FRAME_MS_TARGET = 20.0


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def detection_rate(detector: BlazeFaceDetector, images: Iterable[np.ndarray]) -> tuple[float, float, int]:
    """Share of images with a face, mean faces per image, and the number of images."""
    counts = [len(detector.detect(image)) for image in images]
    return float(np.mean([c > 0 for c in counts])), float(np.mean(counts)), len(counts)


def frame_times(detector: BlazeFaceDetector, frames: list[np.ndarray]) -> tuple[float, float, float]:
    """Median and mean wall ms per frame, and CPU ms per frame (all threads of this process)."""
    for frame in frames[:5]:
        detector.detect(frame)  # session start-up and first-run allocations are not per-frame costs
    walls = []
    cpu_start = time.process_time()
    for frame in frames:
        start = time.perf_counter()
        detector.detect(frame)
        walls.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu_start) / len(frames)
    return float(np.median(walls) * 1000), float(np.mean(walls) * 1000), cpu * 1000


def section_targets(variants: list[str], threads: int, dev_count: int) -> None:
    dev_paths = sorted(dataset("faces-dev").glob("*/*.jpg"))[:dev_count]
    frames = clip_frames(dataset("media") / "short_hamilton_clip.mp4")
    rows: list[list[object]] = []
    for variant in variants:
        detector = BlazeFaceDetector(variant, threads=threads)
        dev_rate, _, dev_n = detection_rate(detector, (rgb(p) for p in dev_paths))
        clip_rate, clip_faces, clip_n = detection_rate(detector, frames)
        median_ms, mean_ms, cpu_ms = frame_times(detector, frames)
        thresholds = ", ".join(f"{k} {v:g}" for k, v in detector.score_thresholds.items())
        rows.append(
            [
                variant,
                thresholds,
                f"{dev_rate:.2%} of {dev_n} ({verdict(dev_rate >= DEV_TARGET)})",
                f"{clip_rate:.1%} of {clip_n} ({verdict(clip_rate >= CLIP_TARGET)})",
                f"{clip_faces:.2f}",
                f"{median_ms:.1f} / {mean_ms:.1f} / {cpu_ms:.1f} ({verdict(mean_ms <= FRAME_MS_TARGET)})",
            ]
        )
    print(f"\n### Targets (threads={threads}; reference: dlib HOG finds a face in 56% of the clip at 34 ms/frame)\n")
    print_table(
        [
            "variant",
            "score thresholds",
            "(1) faces-dev: a face in",
            "(2) clip: a face in",
            "clip faces/frame",
            "(3) ms per 640x360 frame: median / mean wall / CPU",
        ],
        rows,
    )


class DlibPipeline:
    """dlib's 5-point landmarks, face chip and the ONNX descriptor, fed by any box."""

    def __init__(self) -> None:
        import dlib

        from faceid.models.descriptor import build_descriptor_onnx, read_descriptor_network
        from faceid.models.registry import cached_onnx, dlib_model_path, sha256_of
        from faceid.models.runtime import OnnxSession

        self.dlib = dlib
        self.mmod = dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod")))
        self.predictor = dlib.shape_predictor(str(dlib_model_path("landmarks5")))
        source = dlib_model_path("descriptor")
        graph = cached_onnx(
            "dlib-descriptor", sha256_of(source), lambda: build_descriptor_onnx(read_descriptor_network(source))
        )
        self.descriptor = OnnxSession(graph)

    def mmod_box(self, image: np.ndarray) -> np.ndarray | None:
        """The most confident MMOD box, upsampling once if none is found at the original size."""
        for upsample in (0, 1):
            found = self.mmod(image, upsample)
            if len(found):
                rect = max(found, key=lambda d: d.confidence).rect
                return np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], np.float32)
        return None

    def landmarks_and_descriptor(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        left, top, right, bottom = (round(float(v)) for v in box)
        shape = self.predictor(image, self.dlib.rectangle(left, top, right - 1, bottom - 1))
        points = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
        chip = np.asarray(self.dlib.get_face_chip(image, shape, size=150, padding=0.25))
        descriptor = self.descriptor.run({"chips": chip[None]})[0][0].astype(np.float64)
        return points, descriptor


def best_match(detections: list[Detection], box: np.ndarray) -> Detection | None:
    if not detections:
        return None
    best = max(detections, key=lambda d: float(box_iou(box, d.box[None])[0]))
    return best if float(box_iou(box, best.box[None])[0]) > 0.1 else None


def section_mapping(pipeline: DlibPipeline, variants: list[str], threads: int, count: int) -> None:
    dev = dataset("faces-dev")
    # The box mapping was fitted on every 10th image (sorted by path); measure on the others, spread out
    # so that many identities are covered.
    held_out = [p for i, p in enumerate(sorted(dev.glob("*/*.jpg"))) if i % 10 != 0]
    step = max(1, len(held_out) // max(count, 1))
    paths = held_out[step // 2 :: step][:count]
    configurations: list[tuple[str, BlazeFaceDetector]] = []
    for variant in variants:
        configurations.append((f"{variant}, mapped box", BlazeFaceDetector(variant, threads=threads)))
        configurations.append(
            (f"{variant}, BlazeFace's own box", BlazeFaceDetector(variant, threads=threads, dlib_boxes=False))
        )
    shifts: dict[str, list[float]] = {name: [] for name, _ in configurations}
    cosines: dict[str, list[float]] = {name: [] for name, _ in configurations}
    no_reference = 0
    for path in paths:
        image = rgb(path)
        reference_box = pipeline.mmod_box(image)
        if reference_box is None:
            no_reference += 1
            continue
        reference_points, reference_descriptor = pipeline.landmarks_and_descriptor(image, reference_box)
        eye_distance = np.linalg.norm(reference_points[0:2].mean(0) - reference_points[2:4].mean(0))
        for name, detector in configurations:
            match = best_match(detector.detect(image), reference_box)
            if match is None:
                continue
            points, descriptor = pipeline.landmarks_and_descriptor(image, match.box)
            shifts[name].append(float(np.linalg.norm(points - reference_points, axis=1).mean() / eye_distance))
            cosines[name].append(
                float(
                    descriptor
                    @ reference_descriptor
                    / np.linalg.norm(descriptor)
                    / np.linalg.norm(reference_descriptor)
                )
            )
    rows: list[list[object]] = []
    for name, _ in configurations:
        shift, cosine = np.array(shifts[name]), np.array(cosines[name])
        if not len(cosine):
            continue
        rows.append(
            [
                name,
                str(len(cosine)),
                f"{shift.mean():.4f} / {np.percentile(shift, 95):.4f}",
                f"{cosine.mean():.5f} / {np.percentile(cosine, 5):.4f} / {cosine.min():.4f}",
            ]
        )
    print(
        f"\n### Boxes through dlib's landmarks and descriptor vs the MMOD-box pipeline "
        f"({len(paths)} held-out faces-dev images; MMOD found no face in {no_reference})\n"
    )
    print_table(
        [
            "detector",
            "faces",
            "landmark shift / eye distance: mean / p95",
            "descriptor cosine to MMOD pipeline: mean / p5 / min",
        ],
        rows,
    )


def section_pairs(pipeline: DlibPipeline, variants: list[str], threads: int, count: int) -> None:
    dev = dataset("faces-dev")
    lines = (dev / "pairs.tsv").read_text().splitlines()
    records = [line.split("\t") for line in lines if line and line[0] in "01"]
    # Same and different pairs alternate in blocks of 300 per fold; take both kinds evenly.
    same = [r for r in records if r[0] == "1"][: count // 2]
    different = [r for r in records if r[0] == "0"][: count - len(same)]
    chosen = same + different
    detectors = {variant: BlazeFaceDetector(variant, threads=threads) for variant in variants}
    descriptors: dict[str, dict[str, np.ndarray | None]] = {"MMOD": {}, **{v: {} for v in variants}}

    def describe(name: str, relative: str, find_box: Callable[[np.ndarray], np.ndarray | None]) -> np.ndarray | None:
        if relative not in descriptors[name]:
            image = rgb(dev / relative)
            box = find_box(image)
            descriptors[name][relative] = None if box is None else pipeline.landmarks_and_descriptor(image, box)[1]
        return descriptors[name][relative]

    def blaze_box(detector: BlazeFaceDetector) -> Callable[[np.ndarray], np.ndarray | None]:
        def find(image: np.ndarray) -> np.ndarray | None:
            faces = detector.detect(image)
            if not faces:
                return None
            centre = np.array(image.shape[1::-1], np.float32) / 2  # LFW: the pictured person is in the middle
            return min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre))).box

        return find

    finders = {"MMOD": pipeline.mmod_box, **{v: blaze_box(d) for v, d in detectors.items()}}
    rows: list[list[object]] = []
    for name, finder in finders.items():
        correct = missing = 0
        for label, _fold, first, second in chosen:
            a, b = describe(name, first, finder), describe(name, second, finder)
            if a is None or b is None:
                missing += 1
                continue
            correct += int((np.linalg.norm(a - b) < 0.6) == (label == "1"))
        scored = len(chosen) - missing
        rows.append([name, str(scored), str(missing), f"{correct / max(scored, 1):.2%}"])
    print(f"\n### LFW pair verification (first {len(same)} same + {len(different)} different pairs, distance < 0.6)\n")
    print_table(["boxes from", "pairs scored", "pairs with a face missing", "accuracy"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(DETECTOR_VARIANTS), help="comma-separated: short,full,both")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per session (0: all cores)")
    parser.add_argument("--dev-count", type=int, default=2000, help="faces-dev images for target (1)")
    parser.add_argument("--mapping-count", type=int, default=200, help="faces-dev images for the MMOD comparison")
    parser.add_argument("--pairs", type=int, default=0, help="LFW pairs to verify with both pipelines (slow)")
    parser.add_argument("--skip-targets", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(f"# fast detector (BlazeFace) ({machine()})\n\n`{command_line()}`")
    variants = [v for v in args.variants.split(",") if v]
    if not args.skip_targets:
        section_targets(variants, args.threads, args.dev_count)
    if args.mapping_count > 0 or args.pairs > 0:
        pipeline = DlibPipeline()
        if args.mapping_count > 0:
            single_networks = [v for v in variants if v != "both"] or variants
            section_mapping(pipeline, single_networks, args.threads, args.mapping_count)
        if args.pairs > 0:
            section_pairs(pipeline, variants, args.threads, args.pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

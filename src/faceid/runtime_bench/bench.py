"""``faceid bench runtimes``: the descriptor and the detectors on every backend, the same inputs for all.

Per backend: seconds per image for the descriptor (one chip per call) and for each detector (one image per
call), descriptor throughput at batch 32, how far its descriptors are from ONNX Runtime CPU fp32's (the
anchor), and its verification accuracy on an LFW-style pairs file (k-fold protocol, the same chips for every
backend). Timings are interleaved: each repeat runs every backend once before the next repeat starts, so a
burst of load from other processes lands on all of them rather than on one row; the ratio to the anchor is
therefore fairer than the absolute seconds on a shared machine.

An int8 backend is *offered* (named as a usable option in the table and the docs) only if its pairs accuracy
is within :data:`INT8_MAX_ACCURACY_LOSS` of fp32's; otherwise it is reported and not offered.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from faceid.errors import BadInputError, FaceidError
from faceid.eval.metrics import kfold_accuracy, tar_at_far
from faceid.eval.pairs import Pair, embed_images, read_pairs
from faceid.runtime_bench.backends import ANCHOR, BACKENDS, Backend, DescriptorRunner, descriptor_runner, detector_for
from faceid.vision.align import face_chips
from faceid.vision.analyzer import CHIP_PADDING, CHIP_SIZE, Analyzer
from faceid.vision.image import load_image
from faceid.vision.types import Detector

log = logging.getLogger(__name__)

# int8 is offered only if it loses at most this much pairs accuracy against fp32 (0.2 points).
INT8_MAX_ACCURACY_LOSS = 0.002
THROUGHPUT_BATCH = 32
DEFAULT_DETECTORS = ("fast", "mmod")


@dataclass
class BackendResult:
    key: str
    label: str
    status: str  # "ok", "skipped" (not available here) or "failed"
    note: str = ""
    descriptor_s: float | None = None  # seconds per chip, one chip per call (median)
    throughput: float | None = None  # chips per second at batch 32 (median batch)
    detector_s: dict[str, float | None] = field(default_factory=dict)  # seconds per image, per detector
    detector_notes: dict[str, str] = field(default_factory=dict)
    speedup: float | None = None  # anchor's descriptor_s / this one's, same run
    max_abs_diff: float | None = None  # against the anchor's descriptors of the same chips
    min_cosine: float | None = None
    mean_cosine: float | None = None
    accuracy: float | None = None  # pairs k-fold accuracy
    accuracy_std: float | None = None
    tar_at_far_1e3: float | None = None
    offered: bool | None = None  # int8 rows: kept as an option (within INT8_MAX_ACCURACY_LOSS of fp32)
    model_file: str | None = None  # int8 rows: the quantized ONNX file measured (cached)


@dataclass
class RuntimeReport:
    machine: str
    date: str
    threads: int | None
    chips: int
    detector_images: int
    image_size: str
    repeats: int
    pairs: int
    pairs_images: int
    calibration_chips: int
    load_before: float | None
    load_after: float | None
    results: list[BackendResult]
    detectors: list[str] = field(default_factory=list)
    folds: int = 0  # folds of the pairs measured (the pairs file's, when every fold keeps pairs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def result(self, key: str) -> BackendResult | None:
        return next((r for r in self.results if r.key == key), None)


# -- inputs ------------------------------------------------------------------------------------------------


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), cpu)
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 1)
    except OSError:
        return None


def _central_chip(analyzer: Analyzer, rgb: np.ndarray) -> np.ndarray | None:
    detections = analyzer.detector.detect(rgb)
    if not detections:
        return None
    cy, cx = rgb.shape[0] / 2, rgb.shape[1] / 2
    chosen = min(
        detections, key=lambda d: float(np.hypot((d.box[0] + d.box[2]) / 2 - cx, (d.box[1] + d.box[3]) / 2 - cy))
    )
    return analyzer.faces_from_detections(rgb, [chosen])[0].chip


def chips_and_images(
    analyzer: Analyzer, paths: Sequence[Path], count: int, progress: bool = False, desc: str = "chips"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Up to ``count`` chips (the face nearest each image's centre) and the images they came from."""
    chips: list[np.ndarray] = []
    images: list[np.ndarray] = []
    bar = tqdm(total=count, desc=desc, unit="chip", disable=not progress, leave=False)
    for path in paths:
        if len(chips) >= count:
            break
        try:
            rgb = load_image(path)
        except FaceidError as error:
            log.warning("%s", error)
            continue
        chip = _central_chip(analyzer, rgb)
        if chip is not None:
            chips.append(chip)
            images.append(rgb)
            bar.update(1)
    bar.close()
    stacked = np.stack(chips) if chips else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    return stacked, images


def spread(paths: Sequence[Path], count: int, offset: int = 0) -> list[Path]:
    """About ``count`` paths spread evenly over ``paths`` (deterministic), starting ``offset`` places in."""
    step = max(1, len(paths) // max(count, 1))
    return list(paths[offset % step :: step])[:count]


def subset_pairs(pairs: list[Pair], limit: int | None) -> list[Pair]:
    """At most ``limit`` pairs, taking the same number of same and different pairs from every fold."""
    if limit is None or limit >= len(pairs):
        return pairs
    folds = sorted({p.fold for p in pairs})
    per_kind = max(1, limit // (2 * len(folds)))
    chosen: list[Pair] = []
    for fold in folds:
        for same in (True, False):
            chosen += [p for p in pairs if p.fold == fold and p.same == same][:per_kind]
    return chosen


def pair_chips(
    analyzer: Analyzer, root: Path, images: list[str], use_cache: bool = True, progress: bool = False
) -> np.ndarray:
    """One chip per image, from the box that ``faceid eval pairs`` uses (the face nearest the centre, or the
    median box where none is found), so that every backend is scored on exactly the same chips."""
    results = embed_images(analyzer, root, images, use_cache=use_cache, progress=progress)
    missing = [rel for rel in images if results[rel].box is None]
    if missing:
        raise BadInputError(f"{len(missing)} pair images are missing or unreadable under {root}, e.g. {missing[0]}")
    chips = np.empty((len(images), CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    landmarker = analyzer.landmarker
    for i, rel in enumerate(tqdm(images, desc="pair chips", unit="img", disable=not progress, leave=False)):
        rgb = load_image(root / rel)
        box = np.asarray(results[rel].box, np.float32)
        points = landmarker.landmarks(rgb, box)
        chips[i] = face_chips(rgb, [points], size=CHIP_SIZE, padding=CHIP_PADDING)[0]
    return chips


# -- measuring ---------------------------------------------------------------------------------------------


def _embed_all(run: DescriptorRunner, chips: np.ndarray, progress: bool, desc: str) -> np.ndarray:
    out = np.empty((len(chips), 128), np.float32)
    for start in tqdm(
        range(0, len(chips), THROUGHPUT_BATCH), desc=desc, unit="batch", disable=not progress, leave=False
    ):
        out[start : start + THROUGHPUT_BATCH] = run(chips[start : start + THROUGHPUT_BATCH])
    return out


def _timed(fn: Callable[[np.ndarray], object], argument: np.ndarray) -> float:
    start = time.perf_counter()
    fn(argument)
    return time.perf_counter() - start


@dataclass
class _Live:
    """A backend being measured: its runner, detectors and raw timings."""

    backend: Backend
    result: BackendResult
    run: DescriptorRunner | None = None
    detectors: dict[str, Detector] = field(default_factory=dict)
    single: list[float] = field(default_factory=list)
    batch: list[float] = field(default_factory=list)
    detect: dict[str, list[float]] = field(default_factory=dict)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return np.asarray((a * b).sum(1) / norms)


def _choose_backends(backends: Sequence[str] | None) -> list[Backend]:
    """The backends named (default: the default ones), always with the anchor, which every difference is taken
    against."""
    chosen = [b for b in BACKENDS if (b.key in backends if backends else b.default)]
    unknown = set(backends or ()) - {b.key for b in BACKENDS}
    if unknown:
        raise BadInputError(
            f"unknown backend(s) {', '.join(sorted(unknown))}; choose from {', '.join(b.key for b in BACKENDS)}"
        )
    if not any(b.key == ANCHOR for b in chosen):
        chosen.insert(0, next(b for b in BACKENDS if b.key == ANCHOR))
    return chosen


@dataclass
class _Inputs:
    """What every backend is given: the same chips, images and pairs."""

    pairs: list[Pair]
    pair_images: list[str]
    timing_chips: np.ndarray
    calibration_chips: np.ndarray
    test_chips: np.ndarray | None  # one per pair image; None without pairs
    detect_images: list[np.ndarray]


def _prepare_inputs(
    analyzer: Analyzer,
    root: Path,
    pairs_file: str | Path | None,
    *,
    chips: int,
    detector_images: int,
    calibration: int,
    pairs_limit: int | None,
    accuracy: bool,
    use_cache: bool,
    progress: bool,
) -> _Inputs:
    """Step 1, prepare: the timing chips and images, the int8 calibration chips and the pairs' chips."""
    all_images = sorted(p for p in root.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not all_images:
        raise BadInputError(f"{root}: no photos in ROOT/<person>/")
    pairs: list[Pair] = []
    in_pairs: set[Path] = set()
    if pairs_file is not None:
        pairs, _folds = read_pairs(Path(pairs_file))
        in_pairs = {root / rel for p in pairs for rel in (p.first, p.second)}
        pairs = subset_pairs(pairs, pairs_limit) if accuracy else []
    pair_images = sorted({p.first for p in pairs} | {p.second for p in pairs})
    # Calibration chips come from photos outside the pairs, so the int8 ranges are not fitted to the test set.
    outside = [p for p in all_images if p not in in_pairs] or all_images
    log.info("preparing chips: %d timing, %d calibration", chips, calibration)
    timing_chips, timing_images = chips_and_images(
        analyzer, spread(all_images, chips * 2), chips, progress, "timing chips"
    )
    if len(timing_chips) == 0:
        raise BadInputError(f"{root}: no face found in the photos sampled for timing")
    calibration_chips, _ = chips_and_images(
        analyzer, spread(outside, calibration * 2, offset=1), calibration, progress, "calibration chips"
    )
    test_chips = pair_chips(analyzer, root, pair_images, use_cache, progress) if pair_images else None
    return _Inputs(pairs, pair_images, timing_chips, calibration_chips, test_chips, timing_images[:detector_images])


def _batch_of(chips: np.ndarray) -> np.ndarray:
    return np.resize(chips, (THROUGHPUT_BATCH, *chips.shape[1:]))


def _load_backend(backend: Backend, detectors: Sequence[str], threads: int | None, inputs: _Inputs) -> _Live:
    """Step 2, load: one backend's descriptor runner (quantizing first for int8) and its detectors, warmed up.
    A backend that cannot load is returned with its status and note set and no runner."""
    result = BackendResult(backend.key, backend.label, "ok")
    entry = _Live(backend, result)
    try:
        if backend.is_int8:
            from faceid.runtime_bench.quantize import quantized_descriptor_path

            assert backend.quant_format is not None
            result.model_file = str(
                quantized_descriptor_path(backend.quant_format, inputs.calibration_chips, keep_float=backend.keep_float)
            )
        entry.run = descriptor_runner(backend, threads, inputs.calibration_chips if backend.is_int8 else None)
        # Warm-up: first calls allocate, pick kernels, build engines (TensorRT: minutes).
        entry.run(inputs.timing_chips[:1])
        entry.run(_batch_of(inputs.timing_chips))
    except FaceidError as error:
        result.status, result.note = ("skipped" if "not available here" in str(error) else "failed"), str(error)
        entry.run = None
        return entry
    except Exception as error:  # a backend that breaks must not take the whole table with it
        log.exception("%s failed", backend.label)
        result.status, result.note = "failed", f"{type(error).__name__}: {error}"
        entry.run = None
        return entry
    for name in detectors if backend.runs_detectors else ():
        try:
            detector = detector_for(backend, name, threads)
            detector.detect(inputs.detect_images[0])
            entry.detectors[name] = detector
        except Exception as error:  # reported in its cell; the descriptor row still stands
            result.detector_notes[name] = f"{type(error).__name__}: {error}"
    return entry


def _time_backends(
    running: Sequence[_Live], inputs: _Inputs, repeats: int, singles_per_repeat: int, progress: bool
) -> None:
    """Step 3, time: interleaved repeats, every backend once per repeat, into each entry's raw timings."""
    timing_chips, detect_images = inputs.timing_chips, inputs.detect_images
    batch = _batch_of(timing_chips)
    steps = repeats * len(running)
    with tqdm(total=steps, desc="timing", unit="run", disable=not progress, leave=False) as bar:
        for repeat in range(repeats):
            for entry in running:
                assert entry.run is not None
                run = entry.run
                for k in range(singles_per_repeat):
                    chip = timing_chips[(repeat * singles_per_repeat + k) % len(timing_chips)][None]
                    entry.single.append(_timed(run, chip))
                entry.batch.append(_timed(run, batch))
                for name, detector in entry.detectors.items():
                    image = detect_images[repeat % len(detect_images)]
                    entry.detect.setdefault(name, []).append(_timed(detector.detect, image))
                bar.update(1)


def _compare_backends(live: Sequence[_Live], inputs: _Inputs, detectors: Sequence[str], progress: bool) -> None:
    """Step 4, compare: each running backend's result row from its timings, its descriptors against the
    anchor's, its pairs accuracy, and whether an int8 row is offered."""
    running = [e for e in live if e.run is not None]
    anchor = next(e for e in live if e.backend.key == ANCHOR)
    compare_chips = inputs.test_chips if inputs.test_chips is not None else inputs.timing_chips
    reference: np.ndarray | None = None
    outputs: dict[str, np.ndarray] = {}
    for entry in running:
        assert entry.run is not None
        outputs[entry.backend.key] = _embed_all(entry.run, compare_chips, progress, entry.backend.key)
    if anchor.run is not None:
        reference = outputs[ANCHOR]

    pairs = inputs.pairs
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    index = {rel: i for i, rel in enumerate(inputs.pair_images)}
    first = np.array([index[p.first] for p in pairs], np.int64)
    second = np.array([index[p.second] for p in pairs], np.int64)
    for entry in running:
        result = entry.result
        result.descriptor_s = statistics.median(entry.single)
        result.throughput = THROUGHPUT_BATCH / statistics.median(entry.batch)
        for name in detectors:
            times = entry.detect.get(name)
            result.detector_s[name] = statistics.median(times) if times else None
        if anchor.single:
            result.speedup = statistics.median(anchor.single) / result.descriptor_s
        vectors = outputs[entry.backend.key]
        if reference is not None:
            cosines = _cosines(vectors, reference)
            result.max_abs_diff = float(np.abs(vectors - reference).max())
            result.min_cosine = float(cosines.min())
            result.mean_cosine = float(cosines.mean())
        if pairs:
            distances = np.linalg.norm(vectors[first] - vectors[second], axis=1)
            kfold = kfold_accuracy(distances, same, folds)
            result.accuracy, result.accuracy_std = kfold.mean, kfold.std
            result.tar_at_far_1e3 = tar_at_far(distances, same, 1e-3)[0]
    fp32 = anchor.result.accuracy
    for entry in running:
        if entry.backend.is_int8 and fp32 is not None and entry.result.accuracy is not None:
            entry.result.offered = fp32 - entry.result.accuracy <= INT8_MAX_ACCURACY_LOSS + 1e-12


def run_runtime_benchmark(
    root: str | Path,
    pairs_file: str | Path | None = None,
    *,
    backends: Sequence[str] | None = None,
    detectors: Sequence[str] = DEFAULT_DETECTORS,
    chips: int = 64,
    detector_images: int = 16,
    repeats: int = 5,
    singles_per_repeat: int = 8,
    calibration: int = 128,
    pairs_limit: int | None = None,
    accuracy: bool = True,
    threads: int | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> RuntimeReport:
    """Measure every backend named in ``backends`` (default: all default ones) on images under ``root``
    (``ROOT/<person>/<photos>``, faces-dev layout); ``pairs_file`` (LFW format) adds the accuracy columns, unless
    ``accuracy`` is False (its photos are then only kept out of the int8 calibration set, so that both runs
    measure the same int8 models)."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError(f"{root}: no such folder")
    chosen = _choose_backends(backends)
    load_before = _load_average()
    analyzer = Analyzer(threads=threads)
    inputs = _prepare_inputs(
        analyzer,
        root,
        pairs_file,
        chips=chips,
        detector_images=detector_images,
        calibration=calibration,
        pairs_limit=pairs_limit,
        accuracy=accuracy,
        use_cache=use_cache,
        progress=progress,
    )
    live = [_load_backend(backend, detectors, threads, inputs) for backend in chosen]
    _time_backends([e for e in live if e.run is not None], inputs, repeats, singles_per_repeat, progress)
    _compare_backends(live, inputs, detectors, progress)

    pairs = inputs.pairs
    shapes = sorted({f"{im.shape[1]}x{im.shape[0]}" for im in inputs.detect_images})
    return RuntimeReport(
        machine=machine_description(),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        threads=threads,
        chips=len(inputs.timing_chips),
        detector_images=len(inputs.detect_images),
        image_size=", ".join(shapes),
        repeats=repeats,
        pairs=len(pairs),
        pairs_images=len(inputs.pair_images),
        calibration_chips=len(inputs.calibration_chips),
        load_before=load_before,
        load_after=_load_average(),
        results=[e.result for e in live],
        detectors=list(detectors),
        folds=len({p.fold for p in pairs}),
    )


# -- the table ---------------------------------------------------------------------------------------------


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def format_report(report: RuntimeReport) -> str:
    """The table (markdown), then the conditions it was measured in."""
    detectors = report.detectors
    header = [
        "backend",
        "descriptor s/img",
        "vs fp32",
        f"img/s @ batch {THROUGHPUT_BATCH}",
        *[f"detector {d} s/img" for d in detectors],
        "max |Δ| vs fp32",
        "min cos vs fp32",
        "pairs accuracy",
        "status",
    ]
    fp32 = report.result(ANCHOR)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in report.results:
        if r.status != "ok":
            cells = [r.label, *["—"] * (len(header) - 2), f"{r.status}: {r.note}"]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        accuracy = "—"
        if r.accuracy is not None:
            accuracy = f"{100 * r.accuracy:.2f}%"
            if fp32 is not None and fp32.accuracy is not None and r.key != ANCHOR:
                accuracy += f" ({100 * (r.accuracy - fp32.accuracy):+.2f})"
        status = "anchor" if r.key == ANCHOR else "ok"
        if r.offered is not None:
            status = "offered (within 0.2 points)" if r.offered else "not offered (loses > 0.2 points)"
        cells = [
            r.label,
            _num(r.descriptor_s, ".4f"),
            _num(r.speedup, ".2f") + ("x" if r.speedup is not None else ""),
            _num(r.throughput, ".1f"),
            *[_num(r.detector_s.get(d), ".4f") for d in detectors],
            _num(r.max_abs_diff, ".2e"),
            _num(r.min_cosine, ".5f"),
            accuracy,
            status,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        f"{report.machine}; {report.date}; threads per model: {report.threads or 'all cores'}; "
        f"1-minute load average {report.load_before} before, {report.load_after} after.",
        f"Descriptor: {report.chips} faces-dev chips, {report.repeats} repeats interleaved across backends; "
        f"detectors: {report.detector_images} images ({report.image_size}). "
        + (
            f"Differences and accuracy: {report.pairs} pairs ({report.pairs_images} images), "
            f"{report.folds}-fold protocol."
            if report.pairs
            else "Differences on the timing chips; accuracy not measured."
        ),
    ]
    if any(r.key.startswith("ort-int8") for r in report.results):
        notes.append(
            f"int8: static quantization calibrated on {report.calibration_chips} chips of photos outside the "
            "pairs; offered only if within 0.2 points of fp32's pairs accuracy."
        )
    notes.append(
        "The detectors are measured on the ONNX Runtime fp32 rows only (they have no int8, fp16 or PyTorch build)."
    )
    for r in report.results:
        for name, note in sorted(r.detector_notes.items()):
            notes.append(f"{r.label}, detector {name}: {note}")
    return "\n".join(lines + notes)


def offered_int8(report: RuntimeReport) -> BackendResult | None:
    """The int8 row to offer: among those within the accuracy limit, the fastest at batch 32 (None if none is)."""
    offered = [r for r in report.results if r.offered and r.model_file and r.throughput is not None]
    return max(offered, key=lambda r: r.throughput or 0.0) if offered else None

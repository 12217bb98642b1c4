"""The per-face steps on the Hamilton clip: dlib's 5 landmarks and the aligned chip, numpy against compiled.

    python bench/bench_per_face.py [--rounds 3]

Every frame's faces (found once by the fast detector) go through both versions in turn, frame by frame and
round after round, so load from other processes lands on both alike. "numpy" is the code before the compiled
kernels (landmarks: every split at once; chips: numpy bilinear sampling and dlib's pseudo-inverse for the chip's
affine map); "compiled" is what runs now (faceid.vision.kernels, numba). Both must give the same landmarks; chips
are compared pixel by pixel (identical, or differing by a truncation in a handful of pixels).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from common import clip_frames, command_line, dataset, machine, print_table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step", type=int, default=1, help="use every STEP-th frame")
    parser.add_argument("--cores", type=int, default=0, help="pin the process to this many CPUs (0: all)")
    parser.add_argument("--analyze", action="store_true", help="also Analyzer.analyze frame by frame, before/after")
    args = parser.parse_args()
    if args.cores:
        chosen = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, chosen)
        os.environ["OMP_NUM_THREADS"] = str(len(chosen))

    import faceid
    from faceid.vision import align
    from faceid.vision.landmarks import ShapePredictorLandmarker

    frames = clip_frames(dataset("media") / "short_hamilton_clip.mp4")[:: args.step]
    analyzer = faceid.Analyzer(threads=1)
    work = []
    for frame in frames:
        found = analyzer.detect(frame)
        if found:
            work.append((frame, np.stack([d.box for d in found])))
    faces = sum(len(boxes) for _, boxes in work)
    compiled = ShapePredictorLandmarker(compiled=True)
    plain = ShapePredictorLandmarker(compiled=False)
    fast_source = align._chip_to_source

    def chips(frame: np.ndarray, points: np.ndarray, numpy_path: bool) -> np.ndarray:
        align.USE_KERNELS = not numpy_path
        align._chip_to_source = align._chip_to_source_pinv if numpy_path else fast_source
        try:
            return align.face_chips(frame, list(points), 150, 0.25)
        finally:
            align.USE_KERNELS, align._chip_to_source = True, fast_source

    # Warm-up (compiles or loads the cached kernels) and the equality checks.
    worst_points, chip_diffs, differing = 0.0, [], 0
    for frame, boxes in work:
        a, b = compiled.landmarks_batch(frame, boxes), plain.landmarks_batch(frame, boxes)
        worst_points = max(worst_points, float(np.abs(a - b).max()))
        x, y = chips(frame, a, False).astype(np.int16), chips(frame, a, True).astype(np.int16)
        chip_diffs.append(float(np.abs(x - y).mean()))
        differing += int((x != y).sum())

    timings = {"landmarks numpy": 0.0, "landmarks compiled": 0.0, "chips numpy": 0.0, "chips compiled": 0.0}
    for _ in range(args.rounds):
        for frame, boxes in work:
            start = time.perf_counter()
            points = plain.landmarks_batch(frame, boxes)
            timings["landmarks numpy"] += time.perf_counter() - start
            start = time.perf_counter()
            points = compiled.landmarks_batch(frame, boxes)
            timings["landmarks compiled"] += time.perf_counter() - start
            start = time.perf_counter()
            chips(frame, points, True)
            timings["chips numpy"] += time.perf_counter() - start
            start = time.perf_counter()
            chips(frame, points, False)
            timings["chips compiled"] += time.perf_counter() - start
    per_face = {k: 1000 * v / (faces * args.rounds) for k, v in timings.items()}
    print(f"# Per-face steps, Hamilton clip ({machine()})\n\n`{command_line()}`\n")
    print(f"{len(work)} frames with faces, {faces} faces, {args.rounds} interleaved rounds.\n")
    print_table(
        ["step", "numpy ms/face", "compiled ms/face", "speed-up"],
        [
            [
                step,
                f"{per_face[step + ' numpy']:.3f}",
                f"{per_face[step + ' compiled']:.3f}",
                f"{per_face[step + ' numpy'] / per_face[step + ' compiled']:.1f}x",
            ]
            for step in ("landmarks", "chips")
        ],
    )
    total_numpy = per_face["landmarks numpy"] + per_face["chips numpy"]
    total_compiled = per_face["landmarks compiled"] + per_face["chips compiled"]
    print(f"\nboth steps: {total_numpy:.3f} -> {total_compiled:.3f} ms/face ({total_numpy / total_compiled:.1f}x)")
    if args.analyze:
        analyze(frames, args.rounds)
    print(
        f"equality: landmarks max |diff| {worst_points} px; chips mean |diff| {np.mean(chip_diffs):.2e} grey levels "
        f"(worst chip {max(chip_diffs):.2e}), {differing} differing values in {faces * 150 * 150 * 3}"
    )


def analyze(frames: list[np.ndarray], rounds: int) -> None:
    """``Analyzer().analyze`` over every frame, with the numpy per-face steps and with the compiled ones."""
    import faceid
    from faceid.vision import align
    from faceid.vision.landmarks import ShapePredictorLandmarker

    analyzers = {
        "numpy per-face steps (before)": faceid.Analyzer(landmarker=ShapePredictorLandmarker(compiled=False)),
        "compiled per-face steps": faceid.Analyzer(),
    }
    for analyzer in analyzers.values():
        analyzer.warm_up()
    rates: dict[str, list[float]] = {name: [] for name in analyzers}
    for _ in range(rounds):
        for name, analyzer in analyzers.items():
            align.USE_KERNELS = name.startswith("compiled")
            start = time.perf_counter()
            for frame in frames:
                analyzer.analyze(frame)
            rates[name].append(len(frames) / (time.perf_counter() - start))
    align.USE_KERNELS = True
    print(f"\n`Analyzer().analyze` frame by frame, {len(frames)} frames, median of {rounds} interleaved rounds:\n")
    print_table(["per-face steps", "frames/s"], [[n, f"{np.median(r):.1f}"] for n, r in rates.items()])


if __name__ == "__main__":
    main()

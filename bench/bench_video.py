"""Detection and end-to-end speed on the Hamilton clip, side by side in one process.

    python bench/bench_video.py [--mmod-frames 8]

(b) detection ms per frame on 640x360 (native) and 1280x720 (2x bilinear) frames: dlib HOG, dlib MMOD,
    and each faceid detector; with the share of frames where each finds a face.
(c) end-to-end frames per second over the whole clip (275 frames): face_recognition
    (face_locations + face_encodings, as its README does it) vs faceid's Analyzer (detect, 5 landmarks,
    chip, descriptor), frame by frame and with analyze_many (frames spread over the cores). Frames are
    decoded once beforehand so both sides are timed on the same arrays.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from common import clip_frames, command_line, dataset, machine, print_table


def upscale(frame: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize((frame.shape[1] * 2, frame.shape[0] * 2), Image.BILINEAR))


def measure(detect: Callable[[np.ndarray], int], frames: list[np.ndarray]) -> tuple[float, float]:
    """Median ms per frame and share of frames with at least one face."""
    detect(frames[0])  # loads the model, not counted
    times, found = [], 0
    for frame in frames:
        t0 = time.perf_counter()
        count = detect(frame)
        times.append(time.perf_counter() - t0)
        found += count > 0
    return 1000 * float(np.median(times)), found / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mmod-frames", type=int, default=8, help="frames for dlib's slow CNN detector")
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--rounds", type=int, default=1, help="end-to-end rounds, interleaved; median fps reported")
    args = parser.parse_args()

    import dlib
    import face_recognition
    import face_recognition_models as frm

    import faceid
    from faceid.vision.blazeface import BlazeFaceDetector
    from faceid.vision.mmod import MmodDetector

    frames = clip_frames(dataset("media") / "short_hamilton_clip.mp4")
    print(f"# Hamilton clip: {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} ({machine()})\n")
    print(f"`{command_line()}`\n")

    if not args.skip_detection:
        hog = dlib.get_frontal_face_detector()
        dlib_cnn = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
        ours = {
            "mmod": MmodDetector(),
            "full": BlazeFaceDetector("full"),
            "short": BlazeFaceDetector("short"),
            "both": BlazeFaceDetector("both"),
        }
        detectors: list[tuple[str, Callable[[np.ndarray], int], bool]] = [
            ("dlib HOG (upsample 0)", lambda f: len(hog(f, 0)), True),
            ("dlib HOG (upsample 1)", lambda f: len(hog(f, 1)), True),
            ("dlib MMOD (CNN)", lambda f: len(dlib_cnn(f, 0)), False),
            ("faceid mmod", lambda f: len(ours["mmod"].detect(f)), True),
            ("faceid fast (BlazeFace full-range, default)", lambda f: len(ours["full"].detect(f)), True),
            ("faceid fast, short-range", lambda f: len(ours["short"].detect(f)), True),
            ("faceid fast, both ranges", lambda f: len(ours["both"].detect(f)), True),
        ]
        rows = []
        big = [upscale(f) for f in frames[:: max(1, len(frames) // 40)]]
        for name, detect, all_frames in detectors:
            subset = frames if all_frames else frames[:: len(frames) // args.mmod_frames][: args.mmod_frames]
            ms_small, found = measure(detect, subset)
            big_subset = big if all_frames else big[: max(2, args.mmod_frames // 4)]
            ms_big, _ = measure(detect, big_subset)
            rows.append([name, ms_small, ms_big, f"{100 * found:.1f}% of {len(subset)}"])
        print("## Detection, ms per frame (median)\n")
        print_table(["detector", "640x360", "1280x720", "frames with a face (640x360)"], rows)
        print()

    analyzer = faceid.Analyzer()
    analyzer.warm_up()
    # For a stream: frames spread over the cores (one model thread each) rather than threads within a model.
    stream_analyzer = faceid.Analyzer(threads=1)
    stream_analyzer.warm_up()

    from faceid.vision import align
    from faceid.vision.landmarks import ShapePredictorLandmarker

    # The per-face steps as numpy code (before the compiled kernels), for a side-by-side row.
    numpy_analyzer = faceid.Analyzer(landmarker=ShapePredictorLandmarker(compiled=False))
    numpy_analyzer.warm_up()

    def run_faceid() -> int:
        return sum(len(analyzer.analyze(f)) for f in frames)

    def run_faceid_numpy() -> int:
        align.USE_KERNELS = False
        try:
            return sum(len(numpy_analyzer.analyze(f)) for f in frames)
        finally:
            align.USE_KERNELS = True

    def run_faceid_many() -> int:
        return sum(len(faces) for faces in stream_analyzer.analyze_many(frames))

    def run_face_recognition() -> int:
        total = 0
        for f in frames:
            locations = face_recognition.face_locations(f)
            total += len(face_recognition.face_encodings(f, locations))
        return total

    pipelines = [
        ("face_recognition 1.3.0 (dlib HOG + 68 points + dlib descriptor)", run_face_recognition),
        ("faceid, frame by frame, numpy per-face steps (before)", run_faceid_numpy),
        ("faceid, frame by frame: `Analyzer().analyze(frame)`", run_faceid),
        ("faceid, frames over the cores: `Analyzer(threads=1).analyze_many(frames)`", run_faceid_many),
    ]
    rates: dict[str, list[float]] = {name: [] for name, _ in pipelines}
    counts: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, run in pipelines:
            t0 = time.perf_counter()
            counts[name] = run()
            rates[name].append(len(frames) / (time.perf_counter() - t0))
    results = [(name, float(np.median(rates[name])), counts[name]) for name, _ in pipelines]
    anchor = results[0][1]
    clip_seconds = len(frames) / 29.97
    print("## End to end, whole clip\n")
    print_table(
        ["pipeline", "frames per second", "real-time factor", "faces embedded", "speed vs face_recognition"],
        [[n, fps, f"{fps / 29.97:.2f}x", faces, f"{fps / anchor:.1f}x"] for n, fps, faces in results],
    )
    print(f"\n(clip length {clip_seconds:.1f} s at 29.97 fps; median of {args.rounds} interleaved rounds)")


if __name__ == "__main__":
    main()

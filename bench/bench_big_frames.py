"""Big frames: the Hamilton clip scaled up to 1920x1080, decoded, detected and monitored, against 640x360.

    python bench/bench_big_frames.py [--scale 3] [--frames 105] [--monitor-repeat 1]

The 1080p video is made here: every frame of media/short_hamilton_clip.mp4 (640x360, 29.97 fps) scaled 3x with
PIL's bilinear filter and encoded with libx264 (CRF 18, yuv420p) through PyAV at the clip's rate; ``--frames``
keeps the first N. The same N frames are kept at 640x360 (re-encoded the same way) so the two runs see the same
content. Measured, in CPU seconds of this process (a fairer measure than wall time while other jobs share the
cores; wall time is given too):

1. decoding: PyAV with ffmpeg's threads, to full-size RGB, and to half or a third of the size through
   ``to_ndarray(width=, height=)`` (libswscale scales while it converts from YUV);
2. the fast detector (BlazeFace full-range, 192x192 input) on the full-size and reduced frames: ms a frame
   and faces found (the detector sees the frame letterboxed to 192 px whatever its size, so a scaled-up frame
   holds no face it could not find at 640x360);
3. ``faceid monitor`` (standalone, as bench/bench_monitor.py runs it) on both files: real-time factor and the
   events (track, person, decision), which must be the same.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common import command_line, dataset, machine, print_table

CLIP = "short_hamilton_clip.mp4"


def make_video(source: Path, target: Path, scale: int, frames: int) -> tuple[int, int, float]:
    import av

    with av.open(str(source)) as reader:
        stream = reader.streams.video[0]
        rate = stream.average_rate
        pictures = []
        for i, decoded in enumerate(reader.decode(stream)):
            if i >= frames:
                break
            rgb = decoded.to_ndarray(format="rgb24")
            if scale != 1:
                rgb = np.asarray(
                    Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.BILINEAR)
                )
            pictures.append(rgb)
    height, width = pictures[0].shape[:2]
    with av.open(str(target), "w") as writer:
        out = writer.add_stream("libx264", rate=rate)
        out.width, out.height, out.pix_fmt = width, height, "yuv420p"
        out.options = {"crf": "18", "preset": "veryfast"}
        for rgb in pictures:
            for packet in out.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                writer.mux(packet)
        for packet in out.encode():
            writer.mux(packet)
    return width, height, float(rate)


def decode(path: Path, size: tuple[int, int] | None) -> tuple[float, float, list[np.ndarray]]:
    """(CPU s, wall s, frames) decoding ``path`` to RGB, at ``size`` (width, height) when given."""
    import av

    cpu, wall = time.process_time(), time.perf_counter()
    frames = []
    with av.open(str(path)) as reader:
        stream = reader.streams.video[0]
        stream.thread_type = "AUTO"
        for decoded in reader.decode(stream):
            if size is None:
                frames.append(decoded.to_ndarray(format="rgb24"))
            else:
                frames.append(decoded.to_ndarray(width=size[0], height=size[1], format="rgb24"))
    return time.process_time() - cpu, time.perf_counter() - wall, frames


def detect_all(detector: Any, frames: list[np.ndarray]) -> tuple[float, int, list[float]]:
    detector.detect(frames[0])
    cpu = time.process_time()
    found, sizes = 0, []
    for frame in frames:
        detections = detector.detect(frame)
        found += len(detections)
        sizes += [float(d.width) * 640 / frame.shape[1] for d in detections]
    return time.process_time() - cpu, found, sizes


def events_of(events: list[Any]) -> list[tuple[Any, ...]]:
    return sorted((e.name or "unknown", round(e.media_start, 1), round(e.media_end, 1)) for e in events)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--frames", type=int, default=105)
    parser.add_argument("--monitor-repeat", type=int, default=1)
    parser.add_argument("--no-monitor", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from faceid.vision.blazeface import BlazeFaceDetector

    print(f"# Big frames ({machine()})\n\n`{command_line()}`\n")
    with tempfile.TemporaryDirectory(prefix="bench-big-") as tmp:
        small, big = Path(tmp) / "clip-360p.mp4", Path(tmp) / "clip-big.mp4"
        w0, h0, rate = make_video(dataset("media") / CLIP, small, 1, args.frames)
        width, height, _ = make_video(dataset("media") / CLIP, big, args.scale, args.frames)
        print(f"{args.frames} frames at {rate:.2f} fps ({args.frames / rate:.1f} s): {w0}x{h0} and {width}x{height}\n")

        rows = []
        sizes = {
            f"{width}x{height} (full)": (big, None),
            f"{width // 2}x{height // 2} (decoded at half size)": (big, (width // 2, height // 2)),
            f"{width // 3}x{height // 3} (decoded at a third)": (big, (width // 3, height // 3)),
            f"{w0}x{h0} (the original clip)": (small, None),
        }
        detector = BlazeFaceDetector("full", threads=1)
        for label, (path, size) in sizes.items():
            runs = [decode(path, size) for _ in range(2)]
            cpu = min(r[0] for r in runs)
            wall = min(r[1] for r in runs)
            frames = runs[0][2]
            det_cpu, found, face_sizes = detect_all(detector, frames)
            rows.append(
                [
                    label,
                    f"{1000 * cpu / len(frames):.1f}",
                    f"{1000 * wall / len(frames):.1f}",
                    f"{1000 * det_cpu / len(frames):.1f}",
                    found,
                    f"{np.median(face_sizes):.0f}" if face_sizes else "-",
                ]
            )
        print_table(
            [
                "frames",
                "decode CPU ms/frame",
                "decode wall ms/frame",
                "detect CPU ms/frame",
                "faces",
                "median face px at 640",
            ],
            rows,
        )

        if not args.no_monitor:
            from bench_monitor import prepare_store, run_monitor

            data_dir = Path(tmp) / "store"
            prepare_store(data_dir, calibrate=True)
            results = {}
            for name, path in (("640x360", small), (f"{width}x{height}", big)):
                stats, found = [], []
                for i in range(args.monitor_repeat):
                    events: list[Any] = []
                    stats.append(run_monitor(data_dir, path, f"{name}-{i}", events))
                    found = events
                results[name] = (stats, found)
            print("\n## faceid monitor, standalone\n")
            table = []
            for name, (stats, found) in results.items():
                media = stats[-1].media_seconds
                wall = statistics.median(s.seconds for s in stats)
                cpu = statistics.median(s.cpu_seconds for s in stats)
                table.append(
                    [name, f"{wall:.2f}", f"{cpu:.2f}", f"{media / wall:.1f}x", f"{media / cpu:.1f}x", len(found)]
                )
            print_table(["video", "wall s", "CPU s", "real time (wall)", "real time per CPU second", "events"], table)
            a, b = (events_of(found) for _, found in results.values())
            print(f"\nevents 640x360: {a}\nevents big:     {b}\nsame events: {a == b}")


if __name__ == "__main__":
    main()

"""Big frames: the Hamilton clip scaled up to 1920x1080, decoded, detected and monitored, against 640x360.

    python bench/bench_big_frames.py [--scale 3] [--frames 275] [--repeat 5] [--baseline SRC]

The 1080p video is made here: every frame of media/short_hamilton_clip.mp4 (640x360, 29.97 fps) scaled 3x with
PIL's bilinear filter and encoded with libx264 (CRF 18, veryfast, yuv420p) through PyAV at the clip's rate;
``--frames`` keeps the first N. The same N frames are kept at 640x360 (re-encoded the same way) so the two runs
see the same content. Measured:

1. reading the 1080p file (CPU ms a frame, all threads, the frames decoded beforehand for the conversions):
   decoding alone, converting every frame to RGB as PyAV's ``to_ndarray`` does (a scaler set up per frame),
   and what the monitor asks of a frame now (``faceid.monitor.sources.Frame``: a few sampled pixels on every
   frame, a picture the detector's size on every other one, from one scaler kept per source);
2. the fast detector (BlazeFace full-range, 192x192 input) given the whole RGB frame (its own letterbox) or the
   decoder's shrunk picture (what the monitor does at 768 px and up): ms a frame and faces found;
3. ``faceid monitor`` (standalone, on a fresh store with the shipped calibration, as a newcomer runs it) on
   both files, ``--repeat`` runs each, median: wall and CPU seconds, real-time factor, events. With
   ``--baseline SRC`` (the ``src`` folder of another checkout) that checkout's monitor runs too, in a
   subprocess, alternating with this one, on the same store.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common import command_line, dataset, machine, print_table

CLIP = "short_hamilton_clip.mp4"
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)  # frames timed by index only

# Runs one monitor of the checkout whose src folder is argv[1]; prints its stats and events as JSON.
MONITOR_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
from faceid.monitor import Agent, AgentConfig
events = []
agent = Agent(AgentConfig(source=sys.argv[2], camera=sys.argv[3], data_dir=sys.argv[4]), on_event=events.append)
stats = agent.run().stats
print(json.dumps({
    "seconds": stats.seconds, "cpu_seconds": stats.cpu_seconds, "media_seconds": stats.media_seconds,
    "events": sorted([e.name or "unknown", round(e.media_start, 1), round(e.media_end, 1)] for e in events),
}))
"""


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


def read_costs(path: Path) -> list[list[object]]:
    """CPU ms a frame: decoding alone, then each way of getting pictures out of the decoded frames."""
    import av

    from faceid.monitor.sources import PictureConverter

    def decode(keep: bool) -> list[Any]:
        with av.open(str(path)) as reader:
            stream = reader.streams.video[0]
            stream.thread_type = "AUTO"
            return [frame for frame in reader.decode(stream) if keep]

    cpu = time.process_time()
    decode(keep=False)  # as the monitor's reader does: each frame dropped before the next
    decoding = time.process_time() - cpu
    frames = decode(keep=True)  # held, so that each conversion below is timed alone
    width, height = frames[0].width, frames[0].height
    longest = max(width, height)
    small = (round(width * 192 / longest), round(height * 192 / longest))

    def pyav_rgb() -> None:
        for frame in frames:
            frame.to_ndarray(format="rgb24")

    def monitor_access() -> None:
        converter = PictureConverter()
        for i, frame in enumerate(frames):
            converter.grid(frame, 18, 32)
            if i % 2 == 0:
                converter.shrunk(frame, *small)

    def converter_rgb() -> None:
        converter = PictureConverter()
        for frame in frames:
            converter.rgb(frame)

    rows: list[list[object]] = [["decoding alone (PyAV, ffmpeg's threads)", f"{1000 * decoding / len(frames):.2f}"]]
    for label, work in (
        ("+ RGB of every frame, PyAV's to_ndarray (a scaler set up each time)", pyav_rgb),
        ("+ RGB of every frame, one scaler kept (Frame.rgb)", converter_rgb),
        (
            f"+ the monitor's look at a frame with no face: 18x32 pixels, and {small[0]}x{small[1]} on every 2nd",
            monitor_access,
        ),
    ):
        cpu = time.process_time()
        work()
        rows.append([label, f"{1000 * (time.process_time() - cpu) / len(frames):.2f}"])
    return rows


def detect_costs(path: Path) -> list[list[object]]:
    """The fast detector on each frame: given the whole RGB frame, or the decoder's picture at its input size."""
    import av

    from faceid.monitor.pipeline import detect_in_frame
    from faceid.monitor.sources import Frame, PictureConverter
    from faceid.vision.blazeface import BlazeFaceDetector

    detector = BlazeFaceDetector("full", threads=1)
    converter = PictureConverter()
    with av.open(str(path)) as reader:
        decoded = list(reader.decode(video=0))[::2]
    rows: list[list[object]] = []
    for label, shrink in (
        ("whole RGB frame, the detector's own letterbox", False),
        ("the decoder's shrunk picture", True),
    ):
        frames = [Frame(i, 0.0, EPOCH, decoded=d, converter=converter) for i, d in enumerate(decoded)]
        detector.detect(np.zeros((64, 64, 3), np.uint8))
        cpu, found, sizes = time.process_time(), 0, []
        for frame in frames:
            detections = detect_in_frame(detector, frame) if shrink else detector.detect(frame.rgb)
            found += len(detections)
            sizes += [d.width * 640 / frame.width for d in detections]
        elapsed = time.process_time() - cpu
        rows.append([label, f"{1000 * elapsed / len(frames):.2f}", found, f"{np.median(sizes):.0f}" if sizes else "-"])
    return rows


def run_monitor(src: Path, clip: Path, camera: str, data_dir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", MONITOR_RUN, str(src), str(clip), camera, str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=3)
    parser.add_argument("--frames", type=int, default=275, help="the clip has 275")
    parser.add_argument("--repeat", type=int, default=5, help="monitor runs per video (and per checkout)")
    parser.add_argument("--baseline", type=Path, help="the src folder of another checkout to run side by side")
    parser.add_argument("--no-monitor", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    this_src = Path(__file__).resolve().parent.parent / "src"

    print(f"# Big frames ({machine()})\n\n`{command_line()}`\n")
    with tempfile.TemporaryDirectory(prefix="bench-big-") as tmp:
        small, big = Path(tmp) / "clip-360p.mp4", Path(tmp) / "clip-big.mp4"
        w0, h0, rate = make_video(dataset("media") / CLIP, small, 1, args.frames)
        width, height, _ = make_video(dataset("media") / CLIP, big, args.scale, args.frames)
        print(f"{args.frames} frames at {rate:.2f} fps ({args.frames / rate:.1f} s): {w0}x{h0} and {width}x{height}\n")

        print(f"## Reading the {width}x{height} file\n")
        print_table(["work", "CPU ms a frame"], read_costs(big))
        print(f"\n## The fast detector on every 2nd frame of the {width}x{height} file\n")
        print_table(
            ["detector input", "CPU ms a frame", "faces found", "median face px at 640 wide"], detect_costs(big)
        )

        if args.no_monitor:
            return
        from bench_monitor import prepare_store

        data_dir = Path(tmp) / "store"
        prepare_store(data_dir, calibrate=False)  # the shipped calibration, as on a new install
        checkouts = {"this checkout": this_src}
        if args.baseline:
            checkouts["baseline"] = args.baseline.resolve()
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for i in range(args.repeat):
            for video_name, path in ((f"{w0}x{h0}", small), (f"{width}x{height}", big)):
                for checkout, src in checkouts.items():
                    camera = f"{checkout[:4]}-{video_name}-{i}"
                    runs.setdefault((checkout, video_name), []).append(run_monitor(src, path, camera, data_dir))
        print("\n## faceid monitor, standalone\n")
        table = []
        for (checkout, video_name), results in runs.items():
            media = results[-1]["media_seconds"]
            wall = statistics.median(r["seconds"] for r in results)
            cpu = statistics.median(r["cpu_seconds"] for r in results)
            walls = ", ".join(f"{r['seconds']:.2f}" for r in results)
            table.append(
                [
                    checkout,
                    video_name,
                    f"{wall:.2f} ({walls})",
                    f"{cpu:.2f}",
                    f"{media / wall:.1f}x",
                    f"{media / cpu:.1f}x",
                    len(results[-1]["events"]),
                ]
            )
        print_table(
            ["checkout", "video", "wall s, median (runs)", "CPU s", "real time", "media s per CPU s", "events"], table
        )
        for (checkout, video_name), results in runs.items():
            print(f"\nevents, {checkout}, {video_name}: {results[-1]['events']}")


if __name__ == "__main__":
    main()

"""Small faces in big frames: the fast detector on the whole frame against the frame cut into tiles, by face size.

    python bench/bench_tiling.py [--frames 10] [--width 1920] [--height 1080] [--sizes 16,24,...] [--seed 0]

The fast detector (BlazeFace full-range) sees any frame letterboxed to 192 px, so at 1920x1080 a face becomes a
tenth of its width. How small a face it still finds, and what tiles buy back, is measured here on made frames:
each is mid-grey with noise, holding 6 faces-dev photos pasted at random places (not overlapping), each scaled so
that the detector's own box on the photo at full size is S px wide; ``--frames`` frames per size S. A face counts
as found when a detection's centre lies in its box and the two widths are within a factor of 2. Ways:

* the whole frame (what the monitor does);
* ``faceid.vision.tiles.detect_in_tiles`` (``faceid monitor --detect-tiles N``): N x N tiles overlapping by a
  fifth of a tile, each detected as its own image, plus the whole frame, merged with the detector's weighted NMS.

CPU ms a frame for each way (one detector thread), detections a frame that are none of the pasted faces
(a face counted twice, or a false alarm), and the share of faces found by size.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import command_line, dataset, machine, print_table

SIZES = (16, 24, 32, 48, 64, 96, 128)
FACES_PER_FRAME = 6


def found(truth: list[np.ndarray], boxes: np.ndarray) -> int:
    hits = 0
    for box in truth:
        width = box[2] - box[0]
        for other in boxes:
            cx, cy = (other[0] + other[2]) / 2, (other[1] + other[3]) / 2
            ratio = (other[2] - other[0]) / width
            if box[0] <= cx <= box[2] and box[1] <= cy <= box[3] and 0.5 <= ratio <= 2.0:
                hits += 1
                break
    return hits


def make_frames(
    photos: list[tuple[Image.Image, np.ndarray]], size: int, count: int, width: int, height: int, rng: random.Random
) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    frames = []
    noise = np.random.default_rng(rng.randrange(1 << 30))
    for _ in range(count):
        canvas = np.clip(noise.normal(128, 12, (height, width, 3)), 0, 255).astype(np.uint8)
        picture = Image.fromarray(canvas)
        placed: list[tuple[int, int, int, int]] = []
        truth = []
        for photo, box in rng.sample(photos, FACES_PER_FRAME):
            scale = size / float(box[2] - box[0])
            w, h = max(1, round(photo.width * scale)), max(1, round(photo.height * scale))
            for _ in range(200):
                x, y = rng.randrange(0, width - w), rng.randrange(0, height - h)
                if all(x + w <= a or a + c <= x or y + h <= b or b + d <= y for a, b, c, d in placed):
                    break
            placed.append((x, y, w, h))
            picture.paste(photo.resize((w, h), Image.Resampling.BILINEAR), (x, y))
            truth.append(box * scale + np.array([x, y, x, y], np.float32))
        frames.append((np.asarray(picture), truth))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=10, help="frames per face size")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="face widths in px, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    from faceid.vision.blazeface import BlazeFaceDetector
    from faceid.vision.tiles import detect_in_tiles

    rng = random.Random(args.seed)
    detector = BlazeFaceDetector("full", threads=1)
    root = dataset("faces-dev")
    paths = sorted(Path(root).rglob("*.jpg"))
    photos = []
    for path in rng.sample(paths, 200):
        image = Image.open(path).convert("RGB")
        detections = detector.detect(np.asarray(image))
        if detections:
            photos.append((image, detections[0].box.astype(np.float32)))
    ways = {"whole frame (the default)": 1, "2x2 tiles + whole": 2, "3x3 tiles + whole": 3, "4x4 tiles + whole": 4}
    print(f"# Small faces in {args.width}x{args.height} frames ({machine()})\n\n`{command_line()}`\n")
    print(f"{len(photos)} faces-dev photos with a face, {FACES_PER_FRAME} a frame, {args.frames} frames per size\n")
    hits = {way: {size: 0 for size in sizes} for way in ways}
    cpu = dict.fromkeys(ways, 0.0)
    extra = dict.fromkeys(ways, 0)  # detections that are none of the pasted faces (duplicates, false alarms)
    frames_seen = 0
    for size in sizes:
        for frame, truth in make_frames(photos, size, args.frames, args.width, args.height, rng):
            frames_seen += 1
            for way, tiles in ways.items():
                started = time.process_time()
                detections = detect_in_tiles(detector, frame, tiles)
                cpu[way] += time.process_time() - started
                boxes = np.array([d.box for d in detections], np.float32).reshape(-1, 4)
                matched = found(truth, boxes)
                hits[way][size] += matched
                extra[way] += max(0, len(boxes) - matched)
    total = args.frames * FACES_PER_FRAME
    rows_out = [
        [way, f"{1000 * cpu[way] / frames_seen:.1f}", f"{extra[way] / frames_seen:.2f}"]
        + [f"{100 * hits[way][size] / total:.0f}%" for size in sizes]
        for way in ways
    ]
    headers = ["detector input", "CPU ms a frame", "other detections a frame"] + [f"{size} px" for size in sizes]
    print_table(headers, rows_out)


if __name__ == "__main__":
    main()

"""Helpers shared by the benchmarks: locating the data, timing, markdown output."""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("FACEID_SHARED", REPO.parent / "shared"))


def dataset(name: str) -> Path:
    path = shared_dir() / "datasets" / name
    if not path.is_dir():
        sys.exit(f"data set {name!r} not found at {path}; set FACEID_SHARED")
    return path


def time_call(fn: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:
    """Seconds per call, ``repeat`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |")


def clip_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video as RGB arrays (PyAV; OpenCV 5's default backend reads nothing from the clip, so
    OpenCV is only the fallback where PyAV is not installed)."""
    try:
        import av
    except ImportError:
        import cv2

        capture = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, bgr = capture.read()
            if not ok:
                return frames
            frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def write_results_section(name: str, text: str) -> None:
    """Put ``text`` between the ``<!-- name:start/end -->`` markers of bench/RESULTS.md (appended if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    path = REPO / "bench" / "RESULTS.md"
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in current and end in current:
        current = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, current, flags=re.S)
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    path.write_text(current)

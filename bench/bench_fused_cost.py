"""What the default's second opinion costs: dlib's descriptor alone against dlib's fused with SFace's, one run.

    python bench/bench_fused_cost.py [--cores 2] [--repeat 5] [--write]

* Photos: ``photo_analyzer().analyze`` (the photo pipeline: MMOD boxes, mirror averaging) per photo of media/,
  the median of --repeat warm calls, with ``second_opinion=None`` (the previous default) and ``"sface"``.
* Video: ``faceid monitor`` standalone on the Hamilton clip (as bench/bench_monitor.py runs it), against a store
  with Barack Obama, Lin-Manuel Miranda and Alex Lacamoire enrolled from one photo each and its built-in
  calibration (no calibrate step), the store's model being dlib's alone or the fused one; runs alternate so
  both see the same load. Wall and CPU seconds exclude model loading; the names given are listed.

--write puts the result in bench/RESULTS.md (section "The second opinion's cost").
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_monitor import CLIP, GALLERY, pin, run_monitor
from common import command_line, dataset, machine, write_results_section

PHOTOS = ("obama.jpg", "two_people.jpg", "obama_small.jpg", "obama-1080p.jpg")


def photo_costs(repeat: int) -> dict[str, dict[str, float]]:
    from faceid.vision.analyzer import photo_analyzer
    from faceid.vision.image import load_image

    media = dataset("media")
    out: dict[str, dict[str, float]] = {}
    pipelines = {"dlib": photo_analyzer(second_opinion=None), "dlib + SFace": photo_analyzer(second_opinion="sface")}
    for name in PHOTOS:
        rgb = load_image(media / name)
        for analyzer in pipelines.values():
            analyzer.analyze(rgb)  # warm: models loaded, caches filled
        row: dict[str, float] = {}
        for label, analyzer in pipelines.items():
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                faces = analyzer.analyze(rgb)
                times.append(time.perf_counter() - started)
            row[label] = statistics.median(times)
            row["faces"] = len(faces)
        out[f"{name} ({rgb.shape[1]}x{rgb.shape[0]})"] = row
    return out


def prepare_store(data_dir: Path, model: str | None) -> str:
    from faceid.store.versions import VersionedStore

    media = dataset("media")
    with VersionedStore(data_dir) as store:
        if model is not None:
            store.activate(model)
        for name, photo in GALLERY:
            store.enroll(name, media / photo)
        return store.active_model_id()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2, help="pin the process to this many CPUs")
    parser.add_argument("--repeat", type=int, default=5, help="warm calls per photo; monitor runs per model")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from faceid.vision.embed import DESCRIPTOR_MODEL_ID

    cores = pin(args.cores)
    load_before = os.getloadavg()
    photos = photo_costs(args.repeat)
    clip = dataset("media") / CLIP
    runs: dict[str, list[Any]] = {}
    names: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fused-") as tmp:
        stores = {
            "dlib": (Path(tmp) / "dlib", DESCRIPTOR_MODEL_ID),
            "dlib + SFace": (Path(tmp) / "fused", None),  # a new store's default
        }
        models = {label: prepare_store(folder, model) for label, (folder, model) in stores.items()}
        for folder, _ in stores.values():  # warm-up run (models load), not counted
            run_monitor(folder, clip, "warm", [])
        for i in range(max(1, min(args.repeat, 3))):
            for label, (folder, _) in stores.items():
                events: list[Any] = []
                runs.setdefault(label, []).append(run_monitor(folder, clip, f"bench-{i}", events))
                names[label] = sorted(str(e.name) for e in events if getattr(e, "name", None))
    load_after = os.getloadavg()
    lines = [
        f"Command: `{command_line()}` ({time.strftime('%Y-%m-%d')}, {machine()}, pinned to {len(cores)} cores; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after).",
        "",
        "| photo (photo pipeline, one warm call) | faces | dlib alone | dlib + SFace | ratio |",
        "|---|---|---|---|---|",
    ]
    for photo, row in photos.items():
        lines.append(
            f"| {photo} | {row['faces']:.0f} | {1000 * row['dlib']:.0f} ms | {1000 * row['dlib + SFace']:.0f} ms "
            f"| {row['dlib + SFace'] / row['dlib']:.2f}x |"
        )
    lines += [
        "",
        "| monitor, Hamilton clip (9.2 s), store model | wall s (median) | CPU s | real time | faces embedded "
        "| named |",
        "|---|---|---|---|---|---|",
    ]
    for label, stats in runs.items():
        wall = statistics.median(s.seconds for s in stats)
        cpu = statistics.median(s.cpu_seconds for s in stats)
        last = stats[-1]
        lines.append(
            f"| {label} (`{models[label]}`) | {wall:.2f} | {cpu:.2f} | {last.media_seconds / wall:.1f}x "
            f"| {last.embeddings} | {', '.join(names[label]) or 'nobody'} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_results_section("fused-cost", "## The second opinion's cost\n\n" + text)


if __name__ == "__main__":
    main()

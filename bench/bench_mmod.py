"""MMOD face detector speed: dlib's cnn_face_detection_model_v1 vs faceid's MmodDetector, same photos, one process.

    python bench/bench_mmod.py [--upsample 0] [--repeat 3] [--dlib-repeat 1] [--threads N] [--all] [PHOTO ...]

By default the photos at the top of the media data set are used; ``--all`` adds its sub-folders.
The target is identical boxes and at least 15x dlib's speed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from common import command_line, dataset, machine, median_ms, print_table, time_call

SUFFIXES = {".jpg", ".jpeg", ".png"}


def photos(all_folders: bool) -> list[Path]:
    root = dataset("media")
    found = root.rglob("*") if all_folders else root.glob("*")
    return sorted(p for p in found if p.suffix.lower() in SUFFIXES)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upsample", type=int, default=0, help="dlib's upsample_num_times")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of faceid per photo (median)")
    parser.add_argument("--dlib-repeat", type=int, default=1, help="timed runs of dlib per photo (median)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    parser.add_argument("--all", action="store_true", help="also the photos in the media sub-folders")
    parser.add_argument("photo", nargs="*", help="only these photos (file names in the media data set)")
    args = parser.parse_args()
    import dlib

    from faceid.models.registry import dlib_model_path
    from faceid.vision.mmod import MmodDetector, build_tiled_pyramid

    reference = dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod")))
    ours = MmodDetector(upsample=args.upsample, threads=args.threads)
    ours.detect(np.zeros((64, 64, 3), np.uint8))  # build or load the graph and the session before timing
    root = dataset("media")

    rows: list[list[object]] = []
    total_dlib = total_ours = 0.0
    identical = 0
    max_score_diff = 0.0
    images = [p for p in photos(args.all or bool(args.photo)) if not args.photo or p.name in args.photo]
    for path in images:
        with Image.open(path) as opened:
            image = np.asarray(opened.convert("RGB"))
        expected = reference(image, args.upsample)
        found = ours.detect(image)
        expected_boxes = [(d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1) for d in expected]
        found_boxes = [tuple(int(v) for v in d.box) for d in found]
        same = expected_boxes == found_boxes
        identical += same
        if same:
            max_score_diff = max(
                [max_score_diff, *(abs(a.confidence - b.score) for a, b in zip(expected, found, strict=True))]
            )

        dlib_ms = median_ms(time_call(lambda i=image: reference(i, args.upsample), args.dlib_repeat, warmup=0))
        ours_ms = median_ms(time_call(lambda i=image: ours.detect(i), args.repeat))
        pyramid_ms = median_ms(time_call(lambda i=image: build_tiled_pyramid(i, ours.model.config), args.repeat))
        total_dlib += dlib_ms
        total_ours += ours_ms
        rows.append(
            [
                str(path.relative_to(root)),
                f"{image.shape[1]}x{image.shape[0]}",
                f"{len(expected)} / {len(found)}",
                "yes" if same else "**no**",
                dlib_ms,
                ours_ms,
                pyramid_ms,
                f"{dlib_ms / ours_ms:.1f}x",
            ]
        )
    rows.append(
        ["**all**", "", "", f"{identical}/{len(images)}", total_dlib, total_ours, "", f"{total_dlib / total_ours:.1f}x"]
    )

    print(f"# MMOD face detector, upsample={args.upsample}: ms per photo ({machine()})\n\n`{command_line()}`\n")
    headers = ["photo", "size", "faces dlib / faceid", "same boxes", "dlib", "faceid", "of which pyramid", "speed-up"]
    print_table(headers, rows)
    print(
        f"\nidentical boxes on {identical} of {len(images)} photos; "
        f"largest score difference on those {max_score_diff:.2e}; "
        f"overall speed-up {total_dlib / total_ours:.1f}x (target: identical boxes, >= 15x)"
    )


if __name__ == "__main__":
    main()

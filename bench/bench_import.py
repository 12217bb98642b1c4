"""Folder import of faces-dev: photos and people kept, and whether the faces taken are the subjects'.

Every face of every photo is described once (the store's analyzer, as ``faceid people import`` does; the
descriptors are cached under the cache folder), then each way of treating a photo with several faces is
applied to the same descriptors with the import's own rule (``faceid.store.bulk.choose_faces``):

* ``strict``: such photos are skipped (``--strict``; the only behaviour before);
* ``largest``: the largest face (``--largest``);
* ``subject``: the face that agrees with the person's other photos (the default).

LFW crops are centred on the person named, so the most central face of a photo is theirs: ``subject face``
is how often the face taken from a photo with several is the most central one. Pairs accuracy is on the
faces-dev pairs (folds 1-6) whose two photos are both kept: k-fold accuracy (threshold chosen on the other
folds) and accuracy at the fixed threshold 0.6; ``pairs with a several-face photo`` are the pairs strict
mode cannot score at all.

    python bench/bench_import.py [--limit N]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from common import command_line, dataset, machine  # type: ignore[import-not-found]

MODES = ("strict", "largest", "subject")
PICK = {"strict": "one", "largest": "largest", "subject": "subject"}


def describe_all(root: Path, paths: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[int, int]]]:
    """Every face of every photo: descriptors and boxes (largest first), and the image's size."""
    import faceid
    from faceid.paths import cache_dir
    from faceid.vision.image import load_image

    analyzer = faceid.Analyzer()
    key = hashlib.sha256(f"{analyzer.model_id}|{analyzer.detector_name}|{'|'.join(paths)}".encode()).hexdigest()[:16]
    cached = cache_dir() / "bench-import" / f"{key}.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=True) as saved:
            return dict(saved["faces"].item())
    faces: dict[str, tuple[np.ndarray, np.ndarray, tuple[int, int]]] = {}
    started = time.perf_counter()
    for number, rel in enumerate(paths):
        rgb = load_image(root / rel)
        found = analyzer.analyze(rgb)
        faces[rel] = (
            np.array([np.asarray(f.embedding).reshape(-1) for f in found], np.float32).reshape(len(found), -1)
            if found
            else np.zeros((0, 128), np.float32),
            np.array([np.asarray(f.box).reshape(-1) for f in found], np.float32).reshape(len(found), 4),
            (int(rgb.shape[0]), int(rgb.shape[1])),
        )
        if number % 500 == 499:
            print(f"  described {number + 1}/{len(paths)} photos, {time.perf_counter() - started:.0f} s", flush=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cached, faces=np.array(faces, dtype=object))
    return faces


def most_central(boxes: np.ndarray, size: tuple[int, int]) -> int:
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
    return int(np.argmin(np.linalg.norm(centres - np.array([size[1] / 2, size[0] / 2]), axis=1)))


def main() -> None:
    from faceid.eval.metrics import accuracy_at, kfold_accuracy
    from faceid.eval.pairs import read_pairs
    from faceid.store.bulk import choose_faces, person_folders, photos_in

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N people (a quick look)")
    args = parser.parse_args()

    root = dataset("faces-dev")
    folders = person_folders(root)[: args.limit]
    by_person = {f.name: [str(p.relative_to(root)) for p in photos_in(f)] for f in folders}
    paths = [p for photos in by_person.values() for p in photos]
    faces = describe_all(root, paths)
    with_face = [p for p in paths if len(faces[p][0])]
    several = {p for p in with_face if len(faces[p][0]) > 1}

    chosen: dict[str, dict[str, np.ndarray]] = {}
    central: dict[str, dict[str, bool]] = {}
    hows: dict[str, dict[str, int]] = {}
    for mode in MODES:
        chosen[mode], central[mode], hows[mode] = {}, {}, {}
        for photos in by_person.values():
            photos = [p for p in photos if len(faces[p][0])]
            if not photos:
                continue
            for photo, choice in zip(
                photos,
                choose_faces(
                    [faces[p][0] for p in photos],
                    PICK[mode],
                    boxes=[faces[p][1] for p in photos],
                    image_sizes=[faces[p][2] for p in photos],
                ),
                strict=True,
            ):
                if choice.index is None:
                    continue
                chosen[mode][photo] = faces[photo][0][choice.index]
                if photo in several:
                    central[mode][photo] = choice.index == most_central(faces[photo][1], faces[photo][2])
                    hows[mode][choice.how] = hows[mode].get(choice.how, 0) + 1

    pairs, _ = read_pairs(root / "pairs.txt")
    pairs = [p for p in pairs if p.first in faces and p.second in faces]
    touching = [p for p in pairs if p.first in several or p.second in several]

    def scores(mode: str, subset: list) -> tuple[int, float, float]:
        kept = [p for p in subset if p.first in chosen[mode] and p.second in chosen[mode]]
        if not kept:
            return 0, float("nan"), float("nan")
        distances = np.array([np.linalg.norm(chosen[mode][p.first] - chosen[mode][p.second]) for p in kept])
        same = np.array([p.same for p in kept])
        folds = np.array([p.fold for p in kept])
        kfold = kfold_accuracy(distances, same, folds).mean if len(np.unique(folds)) > 1 else float("nan")
        return len(kept), kfold, accuracy_at(distances, same, 0.6)

    people = len(by_persons := [n for n, ps in by_person.items() if any(len(faces[p][0]) for p in ps)])
    print(f"`{command_line()}` — {time.strftime('%Y-%m-%d')}, {machine()}")
    print(
        f"faces-dev: {len(paths):,} photos of {len(by_person):,} people; {len(with_face):,} with a face "
        f"({len(several)} with several), of {people:,} people"
    )
    print()
    print(
        "| mode | photos kept (of those with a face) | people kept | subject face (several-face photos) "
        "| pairs scored | k-fold acc. | acc. @0.6 | pairs with a several-face photo: scored, k-fold, @0.6 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode in MODES:
        kept = chosen[mode]
        people_kept = sum(1 for n in by_persons if any(p in kept for p in by_person[n]))
        right = central[mode]
        subject = f"{sum(right.values())}/{len(right)}" if right else "-"
        n, kfold, fixed = scores(mode, pairs)
        tn, tkfold, tfixed = scores(mode, touching)
        print(
            f"| {mode} | {len(kept):,} ({100 * len(kept) / len(with_face):.2f}%) | {people_kept:,} | {subject} "
            f"| {n:,} | {100 * kfold:.2f}% | {100 * fixed:.2f}% | {tn}, "
            + (f"{100 * tkfold:.2f}%, {100 * tfixed:.2f}%" if tn else "-")
            + " |"
        )
    print()
    for mode in MODES:
        if hows[mode]:
            print(f"{mode}: " + ", ".join(f"{n} {how}" for how, n in sorted(hows[mode].items())))


if __name__ == "__main__":
    main()

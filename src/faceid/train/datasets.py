"""Labelled face photos to fine-tune on: a ``<person>/<images>`` folder tree, or CelebA's layout.

CelebA's layout is an images folder plus ``identity_CelebA.txt`` (one ``image_name identity_number``
per line) and, optionally, a csv of face boxes (``image_name,x1,y1,x2,y2``, a header line allowed):
when such a csv is given, an image it does not list is one where no face was located and is left
out. People with fewer than two photos cannot teach "same person" and are dropped, with a count.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceid.errors import BadInputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
CELEBA_IDENTITIES = "identity_CelebA.txt"
CELEBA_IMAGE_FOLDERS = ("img_align_celeba", "img_celeba", "images", "img")
LAYOUTS = ("auto", "folders", "celeba")


@dataclass(frozen=True)
class Photo:
    """One labelled photo. ``box`` (x1, y1, x2, y2) or ``landmarks`` (5 x 2) say where the face is, when known."""

    person: str
    path: Path
    box: tuple[float, float, float, float] | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None
    key: str = ""  # a stable id for the photo (its path relative to the data set, or a face id)


@dataclass
class FaceDataset:
    source: str
    layout: str
    photos: list[Photo]
    dropped_people: int = 0  # people with fewer than two usable photos
    dropped_photos: int = 0  # their photos
    skipped: Counter[str] = field(default_factory=Counter)  # photos left out before extraction, by reason
    all_people: set[str] = field(default_factory=set)  # everyone named in the source, dropped people included

    def people(self) -> dict[str, list[Photo]]:
        grouped: dict[str, list[Photo]] = {}
        for photo in self.photos:
            grouped.setdefault(photo.person, []).append(photo)
        return grouped

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "layout": self.layout,
            "people": len(self.people()),
            "photos": len(self.photos),
            "people_dropped_fewer_than_two_photos": self.dropped_people,
            "photos_of_dropped_people": self.dropped_photos,
            "photos_skipped": dict(self.skipped),
        }


def drop_small_people(photos: list[Photo], minimum: int = 2) -> tuple[list[Photo], int, int]:
    """Keep the photos of people with at least ``minimum`` photos; also return how many people and photos went."""
    counts = Counter(photo.person for photo in photos)
    small = {person for person, n in counts.items() if n < minimum}
    kept = [photo for photo in photos if photo.person not in small]
    return kept, len(small), len(photos) - len(kept)


def _finish(source: str, layout: str, photos: list[Photo], skipped: Counter[str]) -> FaceDataset:
    if not photos:
        raise BadInputError(f"{source}: no photos found ({_describe_skipped(skipped)})")
    kept, dropped_people, dropped_photos = drop_small_people(photos)
    everyone = {photo.person for photo in photos}
    dataset = FaceDataset(source, layout, kept, dropped_people, dropped_photos, skipped, everyone)
    if dropped_people:
        log.info("%s: %d people with fewer than two photos dropped", source, dropped_people)
    check_trainable(dataset)
    return dataset


def _describe_skipped(skipped: Counter[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in skipped.items()) or "nothing usable"


def check_trainable(dataset: FaceDataset) -> None:
    """Fine-tuning needs at least two people with two photos each; say why not otherwise."""
    people = dataset.people()
    if len(people) < 2:
        raise BadInputError(
            f"{dataset.source}: fine-tuning needs at least 2 people with 2 or more photos each; found "
            f"{len(people)} (after dropping {dataset.dropped_people} people with fewer than two photos)"
        )


def read_person_folders(root: Path) -> FaceDataset:
    """``root/<person>/<photo>``: the folder name is the person."""
    if not root.is_dir():
        raise BadInputError(f"{root}: no such folder")
    photos: list[Photo] = []
    skipped: Counter[str] = Counter()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped["not an image file"] += 1
                continue
            photos.append(Photo(folder.name, path, key=f"{folder.name}/{path.name}"))
    loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose and not photos:
        raise BadInputError(
            f"{root}: photos must be in one sub-folder per person (<person>/<photos>), or give CelebA's "
            f"{CELEBA_IDENTITIES}; found {len(loose)} loose images and no person folders"
        )
    return _finish(str(root), "folders", photos, skipped)


def _numeric(values: list[str]) -> bool:
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True


def read_box_csv(path: Path) -> dict[str, tuple[float, float, float, float]]:
    """``image_name,x1,y1,x2,y2`` per line (a header line is allowed) -> {image name: box}."""
    if not path.is_file():
        raise BadInputError(f"{path}: no such box file")
    boxes: dict[str, tuple[float, float, float, float]] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                row = [cell.strip() for cell in row]
                if not row or not any(row):
                    continue
                if len(row) != 5 or not _numeric(row[1:]):
                    if number == 1:
                        continue  # header
                    raise BadInputError(f"{path}: line {number} is not 'image_name,x1,y1,x2,y2': {','.join(row)!r}")
                x1, y1, x2, y2 = (float(v) for v in row[1:])
                if x2 <= x1 or y2 <= y1:
                    raise BadInputError(f"{path}: line {number}: the box {x1},{y1},{x2},{y2} is empty")
                boxes[Path(row[0]).name] = (x1, y1, x2, y2)
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not a text csv file") from None
    return boxes


def read_identities(path: Path) -> list[tuple[str, str]]:
    """CelebA's ``identity_CelebA.txt``: (image name, identity) per line."""
    if not path.is_file():
        raise BadInputError(f"{path}: no such identity file")
    entries: list[tuple[str, str]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not a text file") from None
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise BadInputError(f"{path}: line {number} is not 'image_name identity_number': {line.strip()!r}")
        entries.append((fields[0], fields[1]))
    if not entries:
        raise BadInputError(f"{path}: empty identity file")
    return entries


def _celeba_images_folder(root: Path) -> Path:
    for name in CELEBA_IMAGE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    return root


def read_celeba(
    root: Path,
    identities: Path | None = None,
    boxes: Path | None = None,
    images: Path | None = None,
) -> FaceDataset:
    """CelebA's layout; ``identities`` defaults to ``root/identity_CelebA.txt``, ``images`` to its images folder."""
    identities = identities or root / CELEBA_IDENTITIES
    images = images or _celeba_images_folder(root)
    if not images.is_dir():
        raise BadInputError(f"{images}: no such images folder")
    entries = read_identities(identities)
    box_of = read_box_csv(boxes) if boxes is not None else None
    photos: list[Photo] = []
    skipped: Counter[str] = Counter()
    for name, identity in entries:
        path = images / name
        if not path.is_file():
            skipped["missing image file"] += 1
            continue
        box = None
        if box_of is not None:
            box = box_of.get(Path(name).name)
            if box is None:
                skipped["no face box in the csv"] += 1
                continue
        photos.append(Photo(identity, path, box=box, key=name))
    if skipped["missing image file"]:
        log.warning("%s: %d images named in %s are missing", root, skipped["missing image file"], identities.name)
    return _finish(str(root), "celeba", photos, skipped)


def read_dataset(
    root: str | Path,
    layout: str = "auto",
    identities: str | Path | None = None,
    boxes: str | Path | None = None,
    images: str | Path | None = None,
) -> FaceDataset:
    """Read a labelled data set; ``layout="auto"`` picks CelebA's when an identity file is given or present."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise BadInputError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if not root.is_dir():
        raise BadInputError(f"{root}: no such folder")
    if layout == "auto":
        layout = "celeba" if identities is not None or (root / CELEBA_IDENTITIES).is_file() else "folders"
    if layout == "celeba":
        return read_celeba(
            root,
            Path(identities) if identities else None,
            Path(boxes) if boxes else None,
            Path(images) if images else None,
        )
    if boxes is not None or identities is not None:
        raise BadInputError("--boxes and --identities apply to CelebA's layout only")
    return read_person_folders(root)


def split_people(
    people: list[str], holdout_fraction: float, seed: int = 0, minimum_holdout: int = 2
) -> tuple[set[str], set[str]]:
    """Split people (not photos) into trained and held out, reproducibly for a seed."""
    if not 0.0 < holdout_fraction < 1.0:
        raise BadInputError(f"the held-out fraction must be between 0 and 1, not {holdout_fraction}")
    ordered = sorted(people)
    order = np.random.default_rng(seed).permutation(len(ordered))
    count = max(minimum_holdout, round(holdout_fraction * len(ordered)))
    if len(ordered) - count < 2:
        raise BadInputError(
            f"{len(ordered)} people are too few to hold {count} out for the report and still train on 2 or more"
        )
    held = {ordered[i] for i in order[:count]}
    return set(ordered) - held, held

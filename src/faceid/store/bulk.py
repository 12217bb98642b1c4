"""Bulk enrollment from a folder tree ``ROOT/<person name>/<photos>``, one transaction per person.

A person is enrolled with every usable photo or not at all, so a run that is interrupted (even
killed) leaves whole people only; running it again skips the people already there and goes on.

In a folder named after a person the subject of every photo is known, so a photo with someone else in
the background is not refused: with ``pick="subject"`` (the default) the face taken is the one that agrees
with the person's other photos (nearest to the mean of their single-face photos; with none, the face that
recurs across their photos; with a single photo, the most central of the faces nearly as large as the
largest). ``pick="largest"`` always takes the largest, ``pick="one"`` (strict) refuses every photo with
several faces. The report says which face was taken where there was a choice, and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from tqdm import tqdm

from faceid.errors import BadInputError, ConflictError, ImageError, NoFaceError
from faceid.store.photos import PreparedFace, prepare_candidates
from faceid.store.records import ImportReport
from faceid.store.schema import name_key
from faceid.thresholds import IMPORT_SUBJECT_MIN_AREA

if TYPE_CHECKING:
    from faceid.store.store import Store

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

ImportPick = Literal["subject", "largest", "one"]
IMPORT_PICKS: tuple[ImportPick, ...] = ("subject", "largest", "one")
SEVERAL_FACES = "several faces"
# Why a face was taken from a photo with several (the report's words).
BY_CENTROID = "nearest to the person's single-face photos"
BY_RECURRENCE = "the face that recurs in the person's photos"
BY_PLACE = "the most central of the large ones (nothing to compare with)"
BY_REQUEST = "the largest (--largest)"


@dataclass(frozen=True)
class Choice:
    """Which face of a photo is kept: ``index`` in its faces (largest first), or None (refused), and why."""

    index: int | None
    how: str


def most_central_large(boxes: np.ndarray, image_size: tuple[int, int] | None) -> int:
    """Of faces (x0, y0, x1, y1; largest first), the most central of those at least IMPORT_SUBJECT_MIN_AREA
    of the largest's area; the largest when the photo's size is unknown."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if image_size is None or len(boxes) < 2:
        return 0
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    large = np.flatnonzero(areas >= IMPORT_SUBJECT_MIN_AREA * areas.max())
    height, width = image_size
    offsets = np.hypot(
        (boxes[large, 0] + boxes[large, 2]) / 2 - width / 2, (boxes[large, 1] + boxes[large, 3]) / 2 - height / 2
    )
    return int(large[int(np.argmin(offsets))])


def choose_faces(
    photos: Sequence[np.ndarray],
    pick: ImportPick = "subject",
    boxes: Sequence[np.ndarray] | None = None,
    image_sizes: Sequence[tuple[int, int] | None] | None = None,
) -> list[Choice]:
    """The face to keep from each of one person's photos, given each photo's descriptors (largest first)
    and, for the last resort, their boxes and the photos' (height, width).

    A photo with one face keeps it. Of a photo with several: ``subject`` takes the face nearest to the mean
    of the single-face photos' descriptors; without single-face photos, the face whose summed distance to
    the nearest face of each other photo is least (the one person every photo shows); with one photo only,
    the most central of the faces nearly as large as the largest (the largest without boxes). ``largest``
    takes the largest; ``one`` refuses the photo.
    """
    if pick not in IMPORT_PICKS:
        raise ValueError(f"pick must be one of {IMPORT_PICKS}, not {pick!r}")
    faces = [np.asarray(p, np.float32).reshape(len(p), -1) for p in photos]
    choices: list[Choice | None] = [Choice(0, "only face") if len(f) == 1 else None for f in faces]
    several = [i for i, choice in enumerate(choices) if choice is None]
    if not several:
        return [c for c in choices if c is not None]
    if pick == "one":
        for i in several:
            choices[i] = Choice(None, SEVERAL_FACES)
    elif pick == "largest":
        for i in several:
            choices[i] = Choice(0, BY_REQUEST)
    else:
        singles = [f[0] for f in faces if len(f) == 1]
        if singles:
            centroid = np.mean(singles, axis=0)
            for i in several:
                choices[i] = Choice(int(np.argmin(np.linalg.norm(faces[i] - centroid, axis=1))), BY_CENTROID)
        elif len(faces) > 1:
            for i in several:
                others = [f for j, f in enumerate(faces) if j != i]
                cost = sum(
                    np.min(np.linalg.norm(faces[i][:, None, :] - other[None, :, :], axis=2), axis=1) for other in others
                )
                choices[i] = Choice(int(np.argmin(cost)), BY_RECURRENCE)
        else:
            only = several[0]
            place = most_central_large(boxes[only], image_sizes[only] if image_sizes else None) if boxes else 0
            choices[only] = Choice(place, BY_PLACE)
    return [c for c in choices if c is not None]


def person_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        raise BadInputError(f"{root}: not a folder")
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def folder_name_to_person(name: str) -> str:
    """``Ada_Lovelace`` -> ``Ada Lovelace`` (underscores are the usual stand-in for spaces in folder names)."""
    return " ".join(name.replace("_", " ").split())


def import_folder(
    store: Store,
    root: Path,
    *,
    pick: ImportPick = "subject",
    max_photos: int | None = None,
    progress: bool = True,
) -> ImportReport:
    """Enroll every ``<person>/`` folder under ``root``; returns who was enrolled, what was skipped and why,
    and which face was taken from each photo with several (see the module's doc for ``pick``)."""
    if pick not in IMPORT_PICKS:
        raise ValueError(f"pick must be one of {IMPORT_PICKS}, not {pick!r}")
    root = Path(root)
    folders = person_folders(root)
    report = ImportReport()
    existing = {name_key(p.name) for p in store.list_people()}
    bar = tqdm(folders, desc="importing people", unit="person", disable=not progress, leave=False)
    for folder in bar:
        name = folder_name_to_person(folder.name)
        if not name:
            report.skip_person(folder.name, "no usable name")
            continue
        if name_key(name) in existing:
            report.skip_person(name, "already in the store")
            continue
        photos = photos_in(folder)
        if max_photos is not None:
            photos = photos[:max_photos]
        candidates: list[tuple[str, list[PreparedFace]]] = []
        for photo in photos:
            relative = str(photo.relative_to(root))
            try:
                candidates.append((relative, prepare_candidates(store.analyzer, photo)))
            except NoFaceError:
                report.skip_image(relative, "no face")
            except ImageError as error:
                report.skip_image(relative, f"unreadable: {error}")
        prepared: list[PreparedFace] = []
        choices = choose_faces(
            [np.stack([f.embedding for f in faces]) for _, faces in candidates],
            pick,
            boxes=[np.array([f.box or [0.0, 0.0, 0.0, 0.0] for f in faces]) for _, faces in candidates],
            image_sizes=[faces[0].image_size for _, faces in candidates],
        )
        for (relative, faces), choice in zip(candidates, choices, strict=True):
            if choice.index is None:
                report.skip_image(relative, f"{choice.how}: {len(faces)} found (--strict)")
                continue
            prepared.append(faces[choice.index])
            if len(faces) > 1:
                report.choose(relative, choice.index, len(faces), choice.how)
        if not prepared:
            report.skip_person(name, "no usable photo" if photos else "no photos")
            continue
        try:
            record = store.enroll_prepared(name, prepared)
        except ConflictError as error:  # enrolled meanwhile by someone else
            report.skip_person(name, str(error))
            continue
        existing.add(name_key(name))
        report.people_enrolled += 1
        report.faces_enrolled += record.face_count
        bar.set_postfix(people=report.people_enrolled, faces=report.faces_enrolled, refresh=False)
    log.info(
        "imported %d people with %d faces (%d taken from photos with several); skipped %d photos and %d people",
        report.people_enrolled,
        report.faces_enrolled,
        len(report.chosen),
        len(report.skipped_images),
        len(report.skipped_people),
    )
    return report

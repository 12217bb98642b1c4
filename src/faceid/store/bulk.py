"""Bulk enrollment from a folder tree ``ROOT/<person name>/<photos>``, one transaction per person.

A person is enrolled with every usable photo or not at all, so a run that is interrupted (even
killed) leaves whole people only; running it again skips the people already there and goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from faceid.errors import BadInputError, ConflictError, ImageError, MultipleFacesError, NoFaceError
from faceid.store.photos import Pick, PreparedFace
from faceid.store.records import ImportReport
from faceid.store.schema import name_key

if TYPE_CHECKING:
    from faceid.store.store import Store

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


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
    pick: Pick = "one",
    max_photos: int | None = None,
    progress: bool = True,
) -> ImportReport:
    """Enroll every ``<person>/`` folder under ``root``; returns who was enrolled and what was skipped, why."""
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
        prepared: list[PreparedFace] = []
        for photo in photos:
            relative = str(photo.relative_to(root))
            try:
                prepared.append(store.prepare(photo, pick))
            except NoFaceError:
                report.skip_image(relative, "no face")
            except MultipleFacesError as error:
                report.skip_image(relative, f"several faces: {error}".split(";")[0])
            except ImageError as error:
                report.skip_image(relative, f"unreadable: {error}")
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
        "imported %d people with %d faces; skipped %d photos and %d people",
        report.people_enrolled,
        report.faces_enrolled,
        len(report.skipped_images),
        len(report.skipped_people),
    )
    return report

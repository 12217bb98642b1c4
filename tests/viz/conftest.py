"""A small gallery enrolled from faces-dev (8 people, 3 photos each) with unknown events, shared by the viz tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PEOPLE = 8
PHOTOS = 3
UNKNOWN_EVENTS = 4


@dataclass
class SmallGallery:
    data_dir: Path
    people: list[str]
    faces: int
    unknown: int


@pytest.fixture(scope="session")
def small_gallery(tmp_path_factory: pytest.TempPathFactory, faces_dev_dir: Path, analyzer: Any) -> SmallGallery:
    from faceid.store import Store

    data_dir = tmp_path_factory.mktemp("viz-gallery") / "data"
    folders = sorted(p for p in faces_dev_dir.iterdir() if p.is_dir())
    enrolled = [p for p in folders if len(list(p.glob("*.jpg"))) >= PHOTOS + 1]
    # Spread over the alphabet rather than the first few names, for a less uniform map.
    enrolled = enrolled[:: max(1, len(enrolled) // PEOPLE)][:PEOPLE]
    strangers = [p for p in folders if len(list(p.glob("*.jpg"))) == 1][:UNKNOWN_EVENTS]
    faces = 0
    with Store(data_dir, analyzer=analyzer) as store:
        for folder in enrolled:
            photos = sorted(folder.glob("*.jpg"))[:PHOTOS]
            person = store.enroll(folder.name.replace("_", " "), photos, pick="largest")
            faces += person.face_count
        for folder in strangers:
            snapshot = next(folder.glob("*.jpg")).read_bytes()
            store.record_event(person_id=None, source="cam-test", snapshot=snapshot)
    return SmallGallery(data_dir, [p.name.replace("_", " ") for p in enrolled], faces, len(strangers))

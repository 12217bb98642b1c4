"""Enrolling from real photos: one face required, several refused unless the largest is picked, bad files refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceid.errors import ImageError, MultipleFacesError, NoFaceError
from faceid.store import Store


def blank_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_one_shot_enroll_and_identify(photo_store: Store, media_dir: Path) -> None:
    obama = photo_store.enroll("Barack Obama", media_dir / "obama.jpg")
    biden = photo_store.enroll("Joe Biden", [media_dir / "biden.jpg"])
    assert obama.face_count == 1 and biden.face_count == 1
    face = photo_store.faces(obama.id)[0]
    data, image_type = photo_store.face_image(face.id)
    assert image_type == "jpg" and data == (media_dir / "obama.jpg").read_bytes()
    assert face.box is not None and len(face.landmarks or []) == 5 and face.quality is not None

    result = photo_store.identify(media_dir / "obama2.jpg")
    assert len(result) == 1 and result[0].known and result[0].person is not None
    assert result[0].person.name == "Barack Obama" and result[0].box is not None
    both = photo_store.identify(media_dir / "two_people.jpg")
    assert {r.person.name for r in both if r.person} == {"Barack Obama", "Joe Biden"}
    assert photo_store.identify(blank_jpeg()) == []


def test_refused_photos_change_nothing(photo_store: Store, media_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NoFaceError, match="no face"):
        photo_store.enroll("Nobody", blank_jpeg())
    with pytest.raises(MultipleFacesError, match="2 faces"):
        photo_store.enroll("Two", media_dir / "two_people.jpg")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((media_dir / "obama.jpg").read_bytes()[:2000])
    with pytest.raises(ImageError):
        photo_store.enroll("Cut", truncated)
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    with pytest.raises(ImageError):
        photo_store.enroll("Text", not_image)
    with pytest.raises(ImageError):
        photo_store.enroll("Missing", tmp_path / "missing.jpg")
    # one bad photo among good ones refuses the whole enrollment
    with pytest.raises(NoFaceError):
        photo_store.enroll("Mixed", [media_dir / "obama.jpg", blank_jpeg()])
    assert photo_store.list_people() == []
    assert list(photo_store.files.all_files()) == []
    assert photo_store.check()["ok"]


def test_largest_face_on_request(photo_store: Store, media_dir: Path) -> None:
    person = photo_store.enroll("Largest", media_dir / "two_people.jpg", pick="largest")
    assert person.face_count == 1
    added = photo_store.add_faces(person.id, [np.asarray(Image.open(media_dir / "obama.jpg").convert("RGB"))])
    face = photo_store.get_face(added[0].id)
    assert face.image_type == "png"  # arrays are kept losslessly


def test_delete_removes_the_image_files(photo_store: Store, media_dir: Path) -> None:
    obama = photo_store.enroll("Barack Obama", [media_dir / "obama.jpg", media_dir / "obama2.jpg"])
    photo_store.enroll("Obama again", media_dir / "obama2.jpg")  # shares one image file
    assert len(list(photo_store.files.all_files())) == 2
    photo_store.delete_person(obama.id)
    remaining = [path.name.split(".")[0] for _, path in photo_store.files.all_files()]
    assert len(remaining) == 1  # the shared file stays for its other user
    assert photo_store.check()["ok"]
    photo_store.delete_person("Obama again")
    assert list(photo_store.files.all_files()) == []

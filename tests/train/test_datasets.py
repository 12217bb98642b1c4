"""Reading training data: person folders and CelebA's layout, and the clear refusals of unusable input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from faceid.errors import BadInputError
from faceid.train.datasets import read_box_csv, read_dataset, split_people


def _folders(root: Path, people: list[tuple[str, list[Path]]]) -> Path:
    for name, photos in people:
        (root / name).mkdir(parents=True)
        for photo in photos:
            shutil.copyfile(photo, root / name / photo.name)
    return root


def test_person_folders(tmp_path: Path, small_people) -> None:
    root = _folders(tmp_path / "data", [(n, p[:3]) for n, p in small_people[:3]] + [("Solo", small_people[3][1][:1])])
    (root / "Solo" / "notes.txt").write_text("not a photo")
    dataset = read_dataset(root)
    assert dataset.layout == "folders"
    assert sorted(dataset.people()) == sorted(n for n, _ in small_people[:3])
    assert len(dataset.photos) == 9
    assert dataset.dropped_people == 1 and dataset.dropped_photos == 1
    assert dataset.skipped["not an image file"] == 1
    assert "Solo" in dataset.all_people


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no photos found"):
        read_dataset(tmp_path / "empty")
    with pytest.raises(BadInputError, match="no such folder"):
        read_dataset(tmp_path / "missing")


def test_people_with_one_photo_each_are_refused(tmp_path: Path, small_people) -> None:
    root = _folders(tmp_path / "data", [(n, p[:1]) for n, p in small_people[:3]])
    with pytest.raises(BadInputError, match=r"at least 2 people with 2 or more photos.*3 people with fewer"):
        read_dataset(root)


def test_loose_photos_are_refused(tmp_path: Path, small_people) -> None:
    root = tmp_path / "loose"
    root.mkdir()
    for photo in small_people[0][1]:
        shutil.copyfile(photo, root / photo.name)
    with pytest.raises(BadInputError, match="one sub-folder per person"):
        read_dataset(root)


def test_celeba_layout(celeba_folder: Path, small_people) -> None:
    dataset = read_dataset(celeba_folder, boxes=celeba_folder / "boxes.csv")
    assert dataset.layout == "celeba"
    people = dataset.people()
    assert len(people) == len(small_people)
    assert len(people["1"]) == 3  # its first photo has no box in the csv
    assert all(photo.box is not None for photo in dataset.photos)
    assert dataset.skipped == {"no face box in the csv": 1, "missing image file": 1}
    assert dataset.dropped_people == 1 and "900" in dataset.all_people
    # The unreadable image is listed with a box: it is left out later, when chips are extracted.
    assert any(photo.path.read_bytes() == b"not a jpeg at all" for photo in dataset.photos)
    without_boxes = read_dataset(celeba_folder)
    assert len(without_boxes.people()["1"]) == 4 and all(p.box is None for p in without_boxes.photos)


def test_bad_csv_and_identity_lines(tmp_path: Path, celeba_folder: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("000001.jpg,1,2,3,4\n000002.jpg,1,2,three,4\n")
    with pytest.raises(BadInputError, match="line 2 is not 'image_name,x1,y1,x2,y2'"):
        read_box_csv(bad)
    bad.write_text("000001.jpg,10,10,5,20\n")
    with pytest.raises(BadInputError, match="empty"):
        read_box_csv(bad)
    identities = tmp_path / "identity.txt"
    identities.write_text("000001.jpg 1\n000002.jpg\n")
    with pytest.raises(BadInputError, match="line 2 is not 'image_name identity_number'"):
        read_dataset(celeba_folder, identities=identities)
    with pytest.raises(BadInputError, match="CelebA's layout only"):
        read_dataset(tmp_path, layout="folders", boxes=bad)


def test_split_people_is_reproducible() -> None:
    people = [f"p{i}" for i in range(50)]
    trained, held = split_people(people, 0.2, seed=3)
    assert len(held) == 10 and not trained & held and trained | held == set(people)
    assert split_people(people, 0.2, seed=3) == (trained, held)
    with pytest.raises(BadInputError):
        split_people(people[:3], 0.5)


def test_unreadable_photos_and_photos_without_faces_are_counted(tmp_path: Path, small_people, media_dir) -> None:
    import numpy as np
    from PIL import Image

    import faceid
    from faceid.train.chips import NO_FACE, UNREADABLE, extract_chips
    from faceid.train.datasets import Photo

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    good = small_people[0][1][0]
    photos = [Photo("a", good), Photo("a", broken), Photo("b", blank)]
    chipset = extract_chips(photos, faceid.Analyzer(), progress=False, use_cache=False)
    assert [p.path for p in chipset.photos] == [good]
    assert chipset.chips.shape == (1, 150, 150, 3)
    assert chipset.failures == {UNREADABLE: 1, NO_FACE: 1}

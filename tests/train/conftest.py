"""Fixtures of the fine-tuning tests: torch is optional, so every test here that needs it skips without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def torch_module():
    return pytest.importorskip("torch", reason="fine-tuning needs torch (pip install 'faceid[train]')")


@pytest.fixture(scope="session")
def dev_chips(faces_dev_dir: Path) -> np.ndarray:
    """A few aligned chips of faces-dev, for checks on the network."""
    import faceid

    analyzer = faceid.Analyzer()
    chips = []
    for path in sorted(faces_dev_dir.glob("*/*.jpg"))[::400][:12]:
        faces = analyzer.analyze(str(path), max_faces=1)
        if faces:
            chips.append(faces[0].chip)
    assert len(chips) >= 8
    return np.stack(chips)


# People of faces-dev with several photos, for the small data sets the tests build (names, photo count).
SMALL_SET = [
    ("Aaron_Peirsol", 4),
    ("Abdullah_Gul", 4),
    ("Adrien_Brody", 4),
    ("Abdoulaye_Wade", 4),
    ("Alejandro_Toledo", 4),
    ("Adam_Sandler", 4),
    ("Alec_Baldwin", 4),
    ("Amelie_Mauresmo", 4),
]


@pytest.fixture(scope="session")
def small_people(faces_dev_dir: Path) -> list[tuple[str, list[Path]]]:
    """(person, photos) for a few faces-dev people with four photos each (any who have fewer are skipped)."""
    chosen = []
    for name, count in SMALL_SET:
        photos = sorted((faces_dev_dir / name).glob("*.jpg"))[:count]
        if len(photos) == count:
            chosen.append((name, photos))
    assert len(chosen) >= 6, "faces-dev no longer has the people these tests use"
    return chosen


@pytest.fixture(scope="session")
def celeba_folder(tmp_path_factory: pytest.TempPathFactory, small_people, faces_dev_dir: Path) -> Path:
    """A CelebA-layout folder made from faces-dev: numbered images in img_celeba/, identity_CelebA.txt,
    and a box csv from the detector. On purpose: one person with a single photo, one photo the csv does
    not list (no face located), one unreadable image, and one identity line naming a missing file."""
    import shutil

    import faceid

    root = tmp_path_factory.mktemp("celeba")
    images = root / "img_celeba"
    images.mkdir()
    analyzer = faceid.Analyzer()
    identities, boxes = [], ["image_id,x_1,y_1,x_2,y_2"]
    number = 0
    for identity, (_, photos) in enumerate(small_people, start=1):
        for k, photo in enumerate(photos):
            number += 1
            name = f"{number:06d}.jpg"
            shutil.copyfile(photo, images / name)
            identities.append(f"{name} {identity}")
            if identity == 1 and k == 0:
                continue  # the csv leaves this one out
            box = analyzer.detect(str(photo))[0].box
            boxes.append(f"{name},{box[0]:.1f},{box[1]:.1f},{box[2]:.1f},{box[3]:.1f}")
    single = sorted((faces_dev_dir / "Aaron_Guiel").glob("*.jpg"))[0]
    number += 1
    shutil.copyfile(single, images / f"{number:06d}.jpg")
    identities.append(f"{number:06d}.jpg 900")
    boxes.append(f"{number:06d}.jpg,60,60,190,190")
    number += 1
    (images / f"{number:06d}.jpg").write_bytes(b"not a jpeg at all")
    identities.append(f"{number:06d}.jpg 2")
    boxes.append(f"{number:06d}.jpg,60,60,190,190")
    identities.append("999999.jpg 3")
    (root / "identity_CelebA.txt").write_text("\n".join(identities) + "\n")
    (root / "boxes.csv").write_text("\n".join(boxes) + "\n")
    return root


# -- stores on both backends (as tests/store does: the session's PostgreSQL from support.postgres) ---------


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def versions_store(data_dir: Path, db_url: str | None, analyzer):
    from faceid.store.versions import VersionedStore

    with VersionedStore(data_dir, db_url, analyzer=analyzer, index="exact") as store:
        # The version mechanics are tested from dlib's own descriptor (a fine-tune's parent), not the fused
        # default: its distances scale with the fc layer, which the tests check (tests/train/test_fused.py
        # covers the fused default). Nothing is enrolled yet, so this switch re-embeds nothing.
        store.activate(store.builtin_model_id())
        yield store

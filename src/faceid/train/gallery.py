"""The people of a store as a labelled data set to fine-tune on (each stored face is one photo)."""

from __future__ import annotations

from collections import Counter

import numpy as np
from sqlalchemy import select

from faceid.errors import BadInputError
from faceid.store.schema import Face, Person
from faceid.store.store import Store
from faceid.train.datasets import FaceDataset, Photo, check_trainable, drop_small_people


def gallery_dataset(store: Store) -> FaceDataset:
    """The people of the store as a labelled data set: each face is a photo, placed by its stored landmarks."""
    photos: list[Photo] = []
    skipped = 0
    with store._read() as session:
        rows = session.execute(
            select(Face.id, Person.name, Face.image_sha256, Face.image_type, Face.landmarks)
            .join(Person, Person.id == Face.person_id)
            .order_by(Face.id)
        ).all()
    everyone: set[str] = set()
    for face_id, name, sha, image_type, landmarks in rows:
        everyone.add(name)
        if not sha or not image_type or not landmarks:
            skipped += 1
            continue
        path = store.files.path(sha, image_type)
        points = tuple((float(x), float(y)) for x, y in np.asarray(landmarks, np.float32).reshape(-1, 2))
        photos.append(Photo(name, path, landmarks=points, key=f"face:{face_id}"))
    if not photos:
        raise BadInputError("the gallery has no faces with stored photos to fine-tune on")
    kept, dropped_people, dropped_photos = drop_small_people(photos)
    dataset = FaceDataset(
        f"gallery {store.data_dir}",
        "gallery",
        kept,
        dropped_people,
        dropped_photos,
        Counter({"no stored photo": skipped}) if skipped else Counter(),
        everyone,
    )
    check_trainable(dataset)
    return dataset

"""The people of a store as a labelled data set to fine-tune on (each stored face is one photo)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from faceid.errors import BadInputError
from faceid.store.store import Store
from faceid.train.datasets import FaceDataset, Photo, check_trainable, drop_small_people


def gallery_dataset(store: Store) -> FaceDataset:
    """The people of the store as a labelled data set: each face is a photo, placed by its stored landmarks."""
    photos: list[Photo] = []
    skipped = 0
    everyone: set[str] = set()
    for face in store.face_images():
        face_id, name, sha, image_type, landmarks = (
            face.face_id,
            face.person_name,
            face.image_sha256,
            face.image_type,
            face.landmarks,
        )
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

"""The identity store: people, faces and events on SQLite or PostgreSQL + pgvector, and open-set search.

Layering: this package uses :mod:`faceid.vision` (photos in, faces out) and is used by the server,
the monitor and the command line; it never imports them.
"""

from __future__ import annotations

from faceid.store.database import Database, open_database
from faceid.store.match import Calibration
from faceid.store.photos import PreparedFace
from faceid.store.records import (
    Candidate,
    EventRecord,
    FaceImage,
    FaceRecord,
    FirstFace,
    GalleryFaces,
    Identification,
    ImportReport,
    PersonRecord,
)
from faceid.store.store import open_store
from faceid.store.versions import VersionedStore

# The public store always follows the active descriptor version (a fine-tune, once activated, or a rollback):
# enrollment, identification and the gallery use one version's embedder, faces and calibration together.
Store = VersionedStore

__all__ = [
    "Calibration",
    "Candidate",
    "Database",
    "EventRecord",
    "FaceImage",
    "FaceRecord",
    "FirstFace",
    "GalleryFaces",
    "Identification",
    "ImportReport",
    "PersonRecord",
    "PreparedFace",
    "Store",
    "VersionedStore",
    "open_database",
    "open_store",
]

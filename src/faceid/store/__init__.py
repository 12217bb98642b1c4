"""The identity store: people, faces and events on SQLite or PostgreSQL + pgvector, and open-set search.

Layering: this package uses :mod:`faceid.vision` (photos in, faces out) and is used by the server,
the monitor and the command line; it never imports them.
"""

from __future__ import annotations

from faceid.store.match import Calibration
from faceid.store.photos import PreparedFace
from faceid.store.records import (
    Candidate,
    EventRecord,
    FaceRecord,
    Identification,
    ImportReport,
    PersonRecord,
)
from faceid.store.store import Store, open_store

__all__ = [
    "Calibration",
    "Candidate",
    "EventRecord",
    "FaceRecord",
    "Identification",
    "ImportReport",
    "PersonRecord",
    "PreparedFace",
    "Store",
    "open_store",
]

"""The 2-D map of a gallery: one point per face coloured by person, unknown events overlaid.

:class:`EmbeddingMap` is what both the PNG writer and the server's interactive page draw, so ``to_dict()``
is the JSON written next to ``map.png`` and served at ``/api/v1/viz/map``.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from faceid.viz.embeddings import GalleryEmbeddings, UnknownEmbeddings
from faceid.viz.projection import project

UNKNOWN_COLOR = "#111111"
# Golden-ratio steps around the hue circle give neighbouring person ids far-apart colours; three lightness
# levels triple the number of people before two colours look alike.
_GOLDEN = 0.618033988749895


def person_color(index: int) -> str:
    hue = (index * _GOLDEN) % 1.0
    lightness = (0.45, 0.62, 0.33)[(index // 7) % 3]
    r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.72)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


@dataclass
class EmbeddingMap:
    method: str
    model_id: str
    x: np.ndarray  # (N,) gallery faces
    y: np.ndarray
    face_ids: np.ndarray
    person_ids: np.ndarray
    has_image: np.ndarray
    people: list[dict[str, Any]]  # id, name, color, faces
    unknown_x: np.ndarray  # (M,) unknown events
    unknown_y: np.ndarray
    event_ids: np.ndarray
    event_times: list[str]
    event_sources: list[str | None]
    event_has_snapshot: np.ndarray
    total_faces: int = 0
    skipped_events: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def colors(self) -> dict[int, str]:
        return {int(p["id"]): str(p["color"]) for p in self.people}

    def to_dict(self, face_url: str | None = None, event_url: str | None = None) -> dict[str, Any]:
        """Plain JSON. ``face_url``/``event_url`` are templates with ``{id}`` for each point's picture."""
        names = {int(p["id"]): p["name"] for p in self.people}
        faces = [
            {
                "x": round(float(x), 4),
                "y": round(float(y), 4),
                "face_id": int(f),
                "person_id": int(p),
                "name": names.get(int(p), f"person {int(p)}"),
                "image": face_url.format(id=int(f)) if face_url and has else None,
            }
            for x, y, f, p, has in zip(self.x, self.y, self.face_ids, self.person_ids, self.has_image, strict=True)
        ]
        unknown = [
            {
                "x": round(float(x), 4),
                "y": round(float(y), 4),
                "event_id": int(e),
                "time": t,
                "source": s,
                "image": event_url.format(id=int(e)) if event_url and has else None,
            }
            for x, y, e, t, s, has in zip(
                self.unknown_x,
                self.unknown_y,
                self.event_ids,
                self.event_times,
                self.event_sources,
                self.event_has_snapshot,
                strict=True,
            )
        ]
        return {
            "method": self.method,
            "model_id": self.model_id,
            "created_at": self.created_at,
            "faces": faces,
            "people": self.people,
            "unknown": unknown,
            "unknown_color": UNKNOWN_COLOR,
            "total_faces": self.total_faces,
            "skipped_events": self.skipped_events,
            "details": self.details,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "faces": len(self.face_ids),
            "people": len(self.people),
            "unknown": len(self.event_ids),
            "total_faces": self.total_faces,
            **self.details,
        }


def build_map(
    gallery: GalleryEmbeddings, unknown: UnknownEmbeddings | None = None, method: str = "pca", seed: int = 0
) -> EmbeddingMap:
    """Project the gallery (and the unknown events) to 2-D; PCA is fitted on the gallery alone."""
    events = unknown if unknown is not None and len(unknown) else None
    vectors = gallery.embeddings if events is None else np.vstack([gallery.embeddings, events.embeddings])
    fit = np.zeros(len(vectors), bool)
    fit[: len(gallery)] = True
    if len(vectors):
        projection = project(vectors, method, fit_rows=fit, seed=seed)
        coordinates, used, details = projection.coordinates, projection.method, projection.details
    else:
        coordinates, used, details = np.zeros((0, 2), np.float32), method, {}
    order = sorted({int(p) for p in gallery.person_ids}, key=lambda p: (gallery.names.get(p, "").casefold(), p))
    counts = {int(p): int(n) for p, n in zip(*np.unique(gallery.person_ids, return_counts=True), strict=True)}
    people = [
        {"id": p, "name": gallery.names.get(p, f"person {p}"), "color": person_color(i), "faces": counts.get(p, 0)}
        for i, p in enumerate(order)
    ]
    n = len(gallery)
    return EmbeddingMap(
        method=used,
        model_id=gallery.model_id,
        x=coordinates[:n, 0],
        y=coordinates[:n, 1],
        face_ids=gallery.face_ids,
        person_ids=gallery.person_ids,
        has_image=gallery.has_image,
        people=people,
        unknown_x=coordinates[n:, 0],
        unknown_y=coordinates[n:, 1],
        event_ids=events.event_ids if events is not None else np.zeros(0, np.int64),
        event_times=events.times if events is not None else [],
        event_sources=events.sources if events is not None else [],
        event_has_snapshot=events.has_snapshot if events is not None else np.zeros(0, bool),
        total_faces=gallery.total_faces,
        skipped_events=unknown.skipped if unknown is not None else 0,
        details=details,
    )

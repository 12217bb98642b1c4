"""The interactive map of the gallery: the page ``/map`` and the data behind it, ``GET /api/v1/viz/map``.

The page (``web/templates/viz_map.html`` + ``web/static/viz-map.js``, no outside file) draws the same
:class:`faceid.viz.maps.EmbeddingMap` that ``faceid viz`` writes to ``map.png``, on a canvas the user can zoom
and pan; hovering a point shows the face (or the unknown event's snapshot) and the person.

A map is computed on request and kept until the gallery or the unknown events change: t-SNE or UMAP of a few
thousand faces takes seconds to tens of seconds on a small CPU, while the map itself is a few hundred kB.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from faceid.errors import ModelUnavailableError
from faceid.server.api.common import ERRORS, Svc
from faceid.server.auth import VIEW, Principal, require
from faceid.server.errors import ApiError
from faceid.server.views import API
from faceid.server.web import _render
from faceid.viz.embeddings import EventEmbeddings, load_gallery, load_unknown_events
from faceid.viz.maps import build_map

log = logging.getLogger(__name__)

Viewer = Annotated[Principal, Depends(require(VIEW))]
MAX_FACES_LIMIT = 20_000
CACHED_MAPS = 8


def _unknown_state(svc: Any) -> tuple[int, int]:
    """(count, newest id) of unknown events: either moves when one is recorded or deleted."""
    return svc.store.count_events(unknown_only=True), svc.store.last_event_id(unknown_only=True)


def viz_router() -> APIRouter:
    router = APIRouter()
    maps: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
    events = EventEmbeddings()
    # One map computation at a time: two tabs asking for t-SNE should not halve each other's speed.
    computing = threading.Lock()

    @router.get("/map", include_in_schema=False, response_class=HTMLResponse)
    def map_page(request: Request) -> Response:
        return _render(request, "viz_map.html", "Map")

    @router.get(
        f"{API}/viz/map",
        tags=["viz"],
        responses=ERRORS,
        summary="The gallery's faces in 2-D (coloured by person) with recent unknown events, for the map page",
    )
    def viz_map(
        svc: Svc,
        _: Viewer,
        method: Annotated[Literal["pca", "tsne", "umap"], Query(description="2-D projection")] = "pca",
        max_faces: Annotated[
            int, Query(ge=1, le=MAX_FACES_LIMIT, description="at most about this many faces (whole people)")
        ] = 2000,
        unknown: Annotated[int, Query(ge=0, le=1000, description="recent unknown events overlaid")] = 100,
        seed: Annotated[int, Query(ge=0, le=2**31 - 1, description="sampling and t-SNE/UMAP seed")] = 0,
    ) -> dict[str, Any]:
        store = svc.store
        version = store.gallery_version()
        model = store.model_id
        key = (model, version, _unknown_state(svc), method, max_faces, unknown, seed)
        with computing:
            cached = maps.get(key)
            if cached is not None:
                maps.move_to_end(key)
                return cached
            gallery = load_gallery(store, None, max_faces, seed)
            with svc.analysing():  # snapshots of unknown events may need detecting and describing
                overlay = load_unknown_events(store, gallery.model_id, store.analyzer, unknown, events)
            try:
                emap = build_map(gallery, overlay, method, seed)
            except ModelUnavailableError as error:
                raise ApiError(422, str(error), "not_installed") from None
            data = emap.to_dict(face_url=f"{API}/faces/{{id}}/thumbnail", event_url=f"{API}/events/{{id}}/snapshot")
            data["gallery_version"] = version
            maps[key] = data
            while len(maps) > CACHED_MAPS:
                maps.popitem(last=False)
            return data

    return router

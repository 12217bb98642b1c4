"""Health, metrics, dashboard counts, and the gallery pull for edge devices."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import JSONResponse

import faceid
from faceid.server.api.common import ERRORS, Svc
from faceid.server.auth import GALLERY, VIEW, Principal, require
from faceid.server.metrics import CONTENT_TYPE
from faceid.server.schemas import GalleryOut, HealthOut, StatsOut
from faceid.vision.sface import descriptor_dimensions

router = APIRouter(tags=["system"])

Viewer = Annotated[Principal, Depends(require(VIEW))]


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut}},
    summary="Is the server up and its database reachable? (no login needed)",
)
def health(svc: Svc) -> JSONResponse:
    database = svc.store.database.ping()
    body = {
        "status": "ok" if database else "degraded",
        "version": faceid.__version__,
        "backend": svc.store.backend,
        "database": database,
    }
    return JSONResponse(body, status_code=200 if database else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **ERRORS},
    summary="Prometheus metrics (scrape with an API key with the read scope)",
)
def metrics(svc: Svc, _: Viewer) -> Response:
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/stats", response_model=StatsOut, responses=ERRORS, summary="Counts for the dashboard")
def stats(svc: Svc, _: Viewer) -> dict[str, Any]:
    info = svc.store.stats()
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "people": info["people"],
        "faces": sum(info["faces_by_model"].values()),
        "events": info["events"],
        "unknown_events_today": svc.store.count_events(unknown_only=True, since=midnight),
        "backend": info["backend"],
        "model_id": svc.store.model_id,
        "detector": svc.store.analyzer.detector_name,
    }


@router.get(
    "/models/{model_id}/onnx",
    responses={404: {"description": "no such stored version (the built-in model ships with faceid)"}, **ERRORS},
    summary="A fine-tuned model version's ONNX file (for edge devices following the active version)",
)
def model_file(svc: Svc, _: Annotated[Principal, Depends(require(GALLERY))], model_id: str) -> Any:
    from fastapi.responses import FileResponse

    from faceid.errors import NotFoundError

    version = svc.store.get_version(model_id)
    if version.onnx_file is None:
        raise NotFoundError(f"{model_id} is the built-in model: every faceid has it")
    return FileResponse(svc.store.onnx_path(version), media_type="application/octet-stream")


@router.get("/calibration", responses=ERRORS, summary="The decision rule in force: the model's and each camera's")
def calibration_in_force(svc: Svc, _: Viewer) -> dict[str, Any]:
    """Which calibration decides (shipped with faceid, made by ``faceid calibrate``, or none), its target and
    thresholds, and per camera whether its own strangers adjust it yet."""
    matcher = svc.store.matcher()
    matcher.gallery.sync()
    calibration = matcher.calibration if matcher.calibrated else None
    people = matcher.gallery.people_count()
    target = calibration.target_fpir if calibration is not None else None
    source = (
        "none" if calibration is None else ("shipped" if calibration.details.get("source") == "shipped" else "store")
    )
    base = matcher.threshold()
    cameras = []
    for camera in svc.store.cameras():
        state = svc.store.camera_calibration(camera, matcher)
        cameras.append({**state.to_dict(), "threshold": round(base * (state.scale if state.active else 1.0), 5)})
    sizes = (10, 50, 200, 1000)
    return {
        "model_id": matcher.gallery.model_id,
        "calibration": source,
        "method": matcher.method,
        "target_fpir": target,
        "people": people,
        "threshold": round(base, 5),
        "thresholds_by_gallery_size": {str(n): round(calibration.threshold_for(n), 5) for n in sizes}
        if calibration is not None
        else {},
        "made_from": None
        if calibration is None
        else calibration.details.get("made_from") or calibration.details.get("source"),
        "cameras": cameras,
    }


@router.get(
    "/gallery/embeddings",
    response_model=GalleryOut,
    responses={304: {"description": "unchanged since the ETag sent in If-None-Match"}, **ERRORS},
    summary="Every enrolled face's descriptor of one model, with the calibrated threshold (for edge devices)",
)
def gallery_embeddings(
    svc: Svc,
    _: Annotated[Principal, Depends(require(GALLERY))],
    model: Annotated[
        str | None, Query(max_length=100, description="descriptor model id (default: the server's)")
    ] = None,
    include_cohort: Annotated[bool, Query(description="also send the calibration cohort (for cohort scoring)")] = False,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    model_id = model or svc.store.model_id

    def etag_of(version: int) -> str:
        return f'"{version}-{int(include_cohort)}-{hashlib.sha256(model_id.encode()).hexdigest()[:12]}"'

    if if_none_match == etag_of(svc.store.gallery_version()):
        return Response(status_code=304, headers={"ETag": if_none_match})
    faces = svc.store.gallery_faces(model_id)
    version, etag = faces.version, etag_of(faces.version)
    names = svc.store.person_names(int(p) for p in faces.person_ids)
    people: dict[int, dict[str, Any]] = {}
    for i in np.lexsort((faces.face_ids, faces.person_ids)):  # by person, then face
        person_id = int(faces.person_ids[i])
        entry = people.setdefault(
            person_id, {"id": person_id, "name": names.get(person_id, "?"), "face_ids": [], "embeddings": []}
        )
        entry["face_ids"].append(int(faces.face_ids[i]))
        entry["embeddings"].append([round(float(v), 7) for v in faces.embeddings[i]])
    matcher = svc.store.matcher(model_id)
    matcher.gallery.sync()
    calibration = svc.store.calibration(model_id)
    body: dict[str, Any] = {
        "model_id": model_id,
        "version": version,
        "threshold": float(matcher.threshold()),
        "method": matcher.method,
        "calibrated": calibration is not None,
        "dim": int(faces.embeddings.shape[1]) if len(faces) else descriptor_dimensions(model_id),
        "people": list(people.values()),
    }
    if include_cohort and calibration is not None and calibration.cohort is not None:
        body["cohort"] = np.asarray(calibration.cohort, np.float32).round(7).tolist()
        body["calibration"] = calibration.summary()
    return JSONResponse(body, headers={"ETag": etag})

"""The inbox through the REST API: visitors from unknown events, naming, corrections, search, retention, forget."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceid.store.audit import AuditLog

from .conftest import Clients, make_config, open_clients

PEOPLE = ("Abdullah_Gul", "Adrien_Brody")


@pytest.fixture(scope="module")
def inbox_clients(tmp_path_factory: pytest.TempPathFactory, analyzer: Any) -> Iterator[Clients]:
    with open_clients(make_config(tmp_path_factory.mktemp("inbox")), analyzer) as opened:
        yield opened


def camera_event(clients: Clients, path: Path, source: str) -> int:
    """What a monitor posts for an unknown face: the snapshot, the face's box, and its descriptor (by the server's
    model) as the template."""
    analyzer = clients.services.store.analyzer
    data = path.read_bytes()
    (face,) = analyzer.analyze(data)[:1]
    fields = {
        "source": source,
        "model_id": clients.services.store.model_id,
        "box": json.dumps([float(v) for v in np.asarray(face.box).reshape(-1)]),
        "metadata": json.dumps({"template": [float(v) for v in face.embedding], "quality": {"score": 0.9}}),
    }
    response = clients.anonymous.post(
        "/api/v1/events",
        data=fields,
        files={"snapshot": (path.name, data, "image/jpeg")},
        headers={**clients.bearer("ingest"), "Idempotency-Key": f"{source}-{path.name}"},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_the_inbox_loop_through_the_api(inbox_clients: Clients, faces_dev_dir: Path, analyzer: Any) -> None:
    clients = inbox_clients
    operator, admin, viewer = (clients.as_user(r) for r in ("operator", "admin", "viewer"))
    photos = {p: sorted((faces_dev_dir / p).glob("*.jpg"))[:4] for p in PEOPLE}
    events = {
        p: [camera_event(clients, f, ["gate", "garage"][k % 2]) for k, f in enumerate(fs)] for p, fs in photos.items()
    }

    visitors = viewer.get("/api/v1/visitors").json()
    assert len(visitors) >= 2
    details = [viewer.get(f"/api/v1/visitors/{v['id']}").json() for v in visitors]
    first = next(d["id"] for d in details if events[PEOPLE[0]][0] in {e["id"] for e in d["event_list"]})
    detail = viewer.get(f"/api/v1/visitors/{first}").json()
    assert detail["events"] >= 3 and {e["id"] for e in detail["event_list"]} <= set(events[PEOPLE[0]])
    assert "template" not in json.dumps(detail["event_list"])

    # Bad input is refused with a message.
    assert (
        operator.post(f"/api/v1/visitors/{first}/name", json={}, headers=clients.headers("operator")).status_code == 422
    )
    assert (
        operator.post(
            "/api/v1/visitors/999999/name", json={"name": "X"}, headers=clients.headers("operator")
        ).status_code
        == 404
    )
    assert (
        viewer.post(f"/api/v1/visitors/{first}/name", json={"name": "X"}, headers=clients.headers("viewer")).status_code
        == 403
    )

    named = operator.post(
        f"/api/v1/visitors/{first}/name", json={"name": "Abdullah Gul"}, headers=clients.headers("operator")
    )
    assert named.status_code == 200, named.text
    person_id = named.json()["person_id"]
    assert named.json()["events_labelled"] == detail["events"]
    # The enrolled face was found again in its snapshot: photo and landmarks kept, so a new model can describe it.
    faces = viewer.get(f"/api/v1/people/{person_id}").json()["faces"]
    assert len(faces) == 1 and faces[0]["landmarks"] and faces[0]["image_url"]
    labelled = viewer.get("/api/v1/events", params={"person_id": person_id}).json()
    assert {e["id"] for e in labelled["items"]} == {e["id"] for e in detail["event_list"]}

    # A wrong event: "not this person" makes it unknown again and keeps it as a negative.
    wrong = detail["event_list"][0]["id"]
    fixed = operator.post(f"/api/v1/events/{wrong}/not-person", headers=clients.headers("operator"))
    assert fixed.status_code == 200, fixed.text
    assert viewer.get(f"/api/v1/events/{wrong}").json()["person_id"] is None
    assert len(viewer.get(f"/api/v1/people/{person_id}/negatives").json()) == 1
    again = operator.post(
        f"/api/v1/events/{wrong}/this-is", json={"person_id": person_id}, headers=clients.headers("operator")
    )
    assert again.status_code == 200 and viewer.get(f"/api/v1/events/{wrong}").json()["person_id"] == person_id
    assert again.json()["negatives_withdrawn"] == 1  # "it is him after all" takes the "not him" back
    assert viewer.get(f"/api/v1/people/{person_id}/negatives").json() == []

    # History by person, by visitor, by photo: newest first, with the distance.
    found = viewer.get("/api/v1/search/history", params={"person_id": person_id}).json()
    assert {e["id"] for e in found["events"]} >= set(labelled_ids := {e["id"] for e in labelled["items"]})
    times = [e["time"] for e in found["events"]]
    assert times == sorted(times, reverse=True)
    other = next(v["id"] for v in viewer.get("/api/v1/visitors", params={"status": "open"}).json())
    assert viewer.get("/api/v1/search/history", params={"visitor_id": other}).json()["total"] >= 1
    # By a photo of the other, still unknown, visitor: their events are found by face.
    probe = sorted((faces_dev_dir / PEOPLE[1]).glob("*.jpg"))[5]  # a photo the store has not seen
    by_photo = viewer.post(
        "/api/v1/search/history",
        files={"photo": (probe.name, probe.read_bytes(), "image/jpeg")},
        headers=clients.headers("viewer"),
    )
    assert by_photo.status_code == 200, by_photo.text
    hits = by_photo.json()["events"]
    assert set(events[PEOPLE[1]]) <= {e["id"] for e in hits} and all(e["match"]["distance"] is not None for e in hits)
    assert viewer.get("/api/v1/search/history").status_code == 422

    # Retention: admin only, bad kinds refused.
    assert (
        operator.put("/api/v1/retention/crops", json={"days": 3}, headers=clients.headers("operator")).status_code
        == 403
    )
    assert admin.put("/api/v1/retention/faces", json={"days": 3}, headers=clients.headers("admin")).status_code == 422
    rules = admin.put("/api/v1/retention/crops", json={"days": 30}, headers=clients.headers("admin")).json()["rules"]
    assert rules["crops"] == 30 and rules["known_events"] is None
    assert admin.post("/api/v1/retention/apply", headers=clients.headers("admin")).json()["removed"]["crops"] == 0

    # Forget: everything of the person goes; the receipt counts, never names.
    receipt = admin.post(f"/api/v1/people/{person_id}/forget", headers=clients.headers("admin"))
    assert receipt.status_code == 200, receipt.text
    body = receipt.json()
    assert (
        body["rows"]["people"] == 1
        and body["rows"]["events"] == len(labelled_ids)
        and body["rows"]["face_negatives"] == 0
    )
    assert viewer.get(f"/api/v1/people/{person_id}").status_code == 404
    assert not {e["id"] for e in viewer.get("/api/v1/events", params={"limit": 500}).json()["items"]} & labelled_ids
    (entry,) = AuditLog(clients.services.store.database).entries(action="person.forget")
    assert "Gul" not in json.dumps(entry.details) and entry.details["receipt"] == body["receipt"]

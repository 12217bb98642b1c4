"""The REST API end to end on SQLite: accounts, people and faces, recognition, events, admin, system."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from .conftest import ADMIN_PASSWORD, PASSWORD, Clients, login, photo


@pytest.fixture(scope="module")
def enrolled(clients: Clients, media_dir: Path) -> dict[str, int]:
    """Obama and Biden enrolled through the API (by the operator)."""
    operator, headers = clients.as_user("operator"), clients.headers("operator")
    ids = {}
    for name, file in (("Barack Obama", "obama.jpg"), ("Joe Biden", "biden.jpg")):
        response = operator.post(
            "/api/v1/enroll", data={"name": name}, files=photo(media_dir / file, "photos"), headers=headers
        )
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    return ids


# -- accounts -----------------------------------------------------------------------------------------


def test_login_sets_hardened_cookies_and_me_reports_the_user(clients: Clients) -> None:
    client = TestClient(clients.app)
    response = client.post("/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD})
    assert response.status_code == 200
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("faceid_session="))
    assert "HttpOnly" in session and "SameSite=lax" in session and "Secure" not in session  # plain http here
    me = client.get("/api/v1/auth/me").json()
    assert me["kind"] == "user" and me["user"]["username"] == "viewer" and me["csrf_token"]
    assert client.get("/api/v1/auth/me", headers=clients.bearer("read")).json()["scopes"] == ["read"]


def test_secure_cookie_behind_https(clients: Clients) -> None:
    client = TestClient(clients.app, base_url="https://faceid.example")
    response = client.post("/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD})
    assert all("Secure" in c for c in response.headers.get_list("set-cookie"))


def test_wrong_password_is_401_and_logout_ends_the_session(clients: Clients) -> None:
    client = TestClient(clients.app)
    bad = client.post("/api/v1/auth/login", json={"username": "viewer", "password": "not-it"})
    assert bad.status_code == 401 and bad.json()["code"] == "login_failed"
    csrf = login(client, "viewer", PASSWORD)
    assert client.post("/api/v1/auth/logout").status_code == 403  # no CSRF token
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/v1/people").status_code == 401


def test_failed_logins_are_throttled(clients: Clients) -> None:
    accounts = clients.services.accounts
    accounts.create_user("victim", PASSWORD, "viewer")
    client = TestClient(clients.app)
    statuses = [
        client.post("/api/v1/auth/login", json={"username": "victim", "password": f"guess-{i}"}).status_code
        for i in range(6)
    ]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    # Even the right password is refused while locked, and says when to come back.
    locked = client.post("/api/v1/auth/login", json={"username": "victim", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    actions = [e.action for e in clients.services.audit.entries(actor="victim")]
    assert actions.count("auth.login_failed") == 5


def test_change_password(clients: Clients) -> None:
    clients.services.accounts.create_user("changer", PASSWORD, "viewer")
    client = TestClient(clients.app)
    csrf = login(client, "changer", PASSWORD)
    other = TestClient(clients.app)
    login(other, "changer", PASSWORD)
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "nope", "new_password": "new-password-1"},
        headers={"X-CSRF-Token": csrf},
    )
    assert wrong.status_code == 403
    short = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers={"X-CSRF-Token": csrf},
    )
    assert short.status_code == 422 and "8 characters" in short.json()["detail"]
    ok = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "new-password-1"},
        headers={"X-CSRF-Token": csrf},
    )
    assert ok.status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 200  # this session stays
    assert other.get("/api/v1/auth/me").status_code == 401  # the others end
    login(TestClient(clients.app), "changer", "new-password-1")


def test_users_admin(clients: Clients) -> None:
    admin, headers = clients.as_user("admin"), clients.headers("admin")
    created = admin.post(
        "/api/v1/users", json={"username": "Carol", "password": PASSWORD, "role": "operator"}, headers=headers
    )
    assert created.status_code == 201 and created.json()["username"] == "carol"
    user_id = created.json()["id"]
    assert (
        admin.post("/api/v1/users", json={"username": "carol", "password": PASSWORD}, headers=headers).status_code
        == 409
    )
    assert (
        admin.post(
            "/api/v1/users", json={"username": "dave", "password": PASSWORD, "role": "boss"}, headers=headers
        ).status_code
        == 422
    )
    assert "carol" in [u["username"] for u in admin.get("/api/v1/users").json()]
    assert admin.get(f"/api/v1/users/{user_id}").json()["role"] == "operator"
    carol = TestClient(clients.app)
    login(carol, "carol", PASSWORD)
    patched = admin.patch(f"/api/v1/users/{user_id}", json={"role": "viewer", "disabled": True}, headers=headers)
    assert patched.status_code == 200 and patched.json()["disabled"] is True
    assert carol.get("/api/v1/auth/me").status_code == 401  # disabling ends the sessions
    me = admin.get("/api/v1/auth/me").json()["user"]["id"]
    assert admin.patch(f"/api/v1/users/{me}", json={"role": "viewer"}, headers=headers).status_code == 409
    assert admin.delete(f"/api/v1/users/{me}", headers=headers).status_code == 409
    assert admin.delete(f"/api/v1/users/{user_id}", headers=headers).status_code == 200
    assert admin.get(f"/api/v1/users/{user_id}").status_code == 404
    actions = {e.action for e in clients.services.audit.entries(actor="admin")}
    assert {"user.create", "user.update", "user.delete"} <= actions


def test_api_keys_are_shown_once_stored_hashed_and_revocable(clients: Clients) -> None:
    admin, headers = clients.as_user("admin"), clients.headers("admin")
    created = admin.post("/api/v1/api-keys", json={"name": "door camera", "scopes": ["ingest"]}, headers=headers)
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("fid_")
    listed = admin.get("/api/v1/api-keys").json()
    assert all("key" not in item or item["key"] is None for item in listed)
    with clients.services.store.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT key_hash FROM api_keys").scalars().all()
    assert key not in stored and all(len(h) == 64 for h in stored)
    bearer = {"Authorization": f"Bearer {key}"}
    assert clients.anonymous.post("/api/v1/events", data={"source": "door"}, headers=bearer).status_code == 201
    assert clients.anonymous.get("/api/v1/people", headers=bearer).status_code == 403  # ingest-only
    revoked = admin.delete(f"/api/v1/api-keys/{created.json()['id']}", headers=headers)
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert clients.anonymous.post("/api/v1/events", data={"source": "door"}, headers=bearer).status_code == 401
    bad_scope = admin.post("/api/v1/api-keys", json={"name": "x", "scopes": ["everything"]}, headers=headers)
    assert bad_scope.status_code == 422


def test_a_key_made_without_scopes_is_a_device_key(clients: Clients) -> None:
    """What a camera or a connected monitor needs (read the gallery, post events), and nothing more."""
    admin, headers = clients.as_user("admin"), clients.headers("admin")

    def made(body: dict[str, Any]) -> Any:
        return admin.post("/api/v1/api-keys", json={"name": "cam", **body}, headers=headers)

    device = made({})
    assert device.status_code == 201 and device.json()["scopes"] == ["read", "ingest"]
    assert made({"preset": "device"}).json()["scopes"] == ["read", "ingest"]
    assert made({"preset": "device", "scopes": ["identify"]}).json()["scopes"] == ["read", "identify", "ingest"]
    assert made({"scopes": ["ingest"]}).json()["scopes"] == ["ingest"]
    assert made({"preset": "everything"}).status_code == 422
    bearer = {"Authorization": f"Bearer {device.json()['key']}"}
    assert clients.anonymous.get("/api/v1/gallery/embeddings", headers=bearer).status_code == 200
    assert clients.anonymous.post("/api/v1/events", data={"source": "door"}, headers=bearer).status_code == 201
    assert clients.anonymous.post("/api/v1/people", json={"name": "x"}, headers=bearer).status_code == 403


# -- people and faces ---------------------------------------------------------------------------------


def test_people_crud_merge_and_delete(clients: Clients, enrolled: dict[str, int], media_dir: Path) -> None:
    operator, headers = clients.as_user("operator"), clients.headers("operator")
    obama = enrolled["Barack Obama"]
    page = operator.get("/api/v1/people", params={"q": "obam"}).json()
    assert [p["name"] for p in page["items"]] == ["Barack Obama"]
    assert "/thumbnail?v=" in page["items"][0]["thumbnail_url"]
    detail = operator.get(f"/api/v1/people/{obama}").json()
    assert detail["face_count"] == 1 and detail["faces"][0]["image_url"]
    thumb = operator.get(detail["faces"][0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    image = operator.get(detail["faces"][0]["image_url"])
    assert image.content == (media_dir / "obama.jpg").read_bytes()

    # A second person from a photo of the same man, then merged into the first.
    twin = operator.post(
        "/api/v1/enroll",
        data={"name": "Obama (podium)"},
        files=photo(media_dir / "obama2.jpg", "photos"),
        headers=headers,
    )
    assert twin.status_code == 201
    merged = operator.post(f"/api/v1/people/{obama}/merge", json={"absorb": twin.json()["id"]}, headers=headers)
    assert merged.status_code == 200 and merged.json()["face_count"] == 2
    assert operator.get(f"/api/v1/people/{twin.json()['id']}").status_code == 404
    faces = operator.get(f"/api/v1/people/{obama}/faces").json()
    removed = operator.delete(f"/api/v1/faces/{faces[-1]['id']}", headers=headers)
    assert removed.status_code == 200
    assert operator.get(f"/api/v1/faces/{faces[-1]['id']}").status_code == 404

    renamed = operator.patch(
        f"/api/v1/people/{obama}", json={"name": "Barack H. Obama", "notes": "44th"}, headers=headers
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Barack H. Obama"
    clash = operator.patch(f"/api/v1/people/{obama}", json={"name": "joe biden"}, headers=headers)
    assert clash.status_code == 409
    operator.patch(f"/api/v1/people/{obama}", json={"name": "Barack Obama"}, headers=headers)

    added = operator.post(
        f"/api/v1/people/{obama}/faces", files=photo(media_dir / "obama_small.jpg", "photos"), headers=headers
    )
    assert added.status_code == 201 and len(added.json()) == 1
    operator.delete(f"/api/v1/faces/{added.json()[0]['id']}", headers=headers)

    empty = operator.post("/api/v1/people", json={"name": "Nobody Yet", "external_id": "E-1"}, headers=headers)
    assert empty.status_code == 201 and empty.json()["face_count"] == 0
    deleted = operator.delete(f"/api/v1/people/{empty.json()['id']}", headers=headers)
    assert deleted.status_code == 200 and deleted.json()["name"] == "Nobody Yet"
    actions = [e.action for e in clients.services.audit.entries(actor="operator")]
    assert {"person.enroll", "person.merge", "face.remove", "person.update", "face.add", "person.delete"} <= set(
        actions
    )


def test_pagination_of_people(clients: Clients, enrolled: dict[str, int]) -> None:
    viewer = clients.as_user("viewer")
    first = viewer.get("/api/v1/people", params={"limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_offset"] == 1 and first["total"] >= 2
    second = viewer.get("/api/v1/people", params={"limit": 1, "offset": 1}).json()
    assert second["items"][0]["id"] != first["items"][0]["id"]


# -- recognition --------------------------------------------------------------------------------------


def test_identify_two_people(clients: Clients, enrolled: dict[str, int], media_dir: Path) -> None:
    response = clients.as_user("viewer").post(
        "/api/v1/identify", files=photo(media_dir / "two_people.jpg"), headers=clients.headers("viewer")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (1126, 661)
    names = sorted(f["person"]["name"] for f in body["faces"] if f["known"])
    assert names == ["Barack Obama", "Joe Biden"]
    assert all(len(f["box"]) == 4 and f["candidates"] for f in body["faces"])


def test_identify_a_stranger_is_unknown(clients: Clients, enrolled: dict[str, int], media_dir: Path) -> None:
    response = clients.anonymous.post(
        "/api/v1/identify", files=photo(media_dir / "alex-lacamoire.png"), headers=clients.bearer("identify")
    )
    assert response.status_code == 200
    assert [f["known"] for f in response.json()["faces"]] == [False]


def test_verify_photo_against_photo_and_person(clients: Clients, enrolled: dict[str, int], media_dir: Path) -> None:
    key = clients.bearer("identify")
    same = clients.anonymous.post(
        "/api/v1/verify",
        files={**photo(media_dir / "obama.jpg"), **photo(media_dir / "obama2.jpg", "photo2")},
        headers=key,
    ).json()
    assert same["same"] is True and same["distance"] < same["threshold"]
    assert same["threshold"] == (1.0 if "+sface-" in same["model_id"] else 0.6)  # the descriptor's own
    different = clients.anonymous.post(
        "/api/v1/verify",
        files={**photo(media_dir / "obama.jpg"), **photo(media_dir / "biden.jpg", "photo2")},
        headers=key,
    ).json()
    assert different["same"] is False
    person = clients.anonymous.post(
        "/api/v1/verify",
        files=photo(media_dir / "obama2.jpg"),
        data={"person_id": str(enrolled["Joe Biden"])},
        headers=key,
    ).json()
    assert person["same"] is False and person["person"]["name"] == "Joe Biden"
    neither = clients.anonymous.post("/api/v1/verify", files=photo(media_dir / "obama2.jpg"), headers=key)
    assert neither.status_code == 422


# -- events -------------------------------------------------------------------------------------------


def test_event_ingest_is_idempotent_and_filterable(clients: Clients, enrolled: dict[str, int], media_dir: Path) -> None:
    ingest = clients.bearer("ingest")
    snapshot = {"snapshot": ("frame.jpg", (media_dir / "obama_small.jpg").read_bytes(), "image/jpeg")}
    first = clients.anonymous.post(
        "/api/v1/events",
        data={
            "source": "gate",
            "person_id": str(enrolled["Barack Obama"]),
            "confidence": "0.97",
            "box": "[10, 20, 110, 140]",
            "metadata": json.dumps({"track": 7}),
        },
        files=snapshot,
        headers={**ingest, "Idempotency-Key": "gate-0001"},
    )
    assert first.status_code == 201, first.text
    again = clients.anonymous.post(
        "/api/v1/events", data={"source": "gate"}, files=snapshot, headers={**ingest, "Idempotency-Key": "gate-0001"}
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    form_key = clients.anonymous.post(
        "/api/v1/events", data={"source": "hall", "idempotency_key": "hall-1"}, headers=ingest
    )
    assert form_key.status_code == 201
    viewer = clients.as_user("viewer")
    gate = viewer.get("/api/v1/events", params={"source": "gate"}).json()["items"]
    assert [e["id"] for e in gate] == [first.json()["id"]]
    assert gate[0]["person_name"] == "Barack Obama" and gate[0]["metadata"] == {"track": 7}
    by_person = viewer.get("/api/v1/events", params={"person_id": enrolled["Barack Obama"]}).json()["items"]
    assert first.json()["id"] in [e["id"] for e in by_person]
    unknown = viewer.get("/api/v1/events", params={"unknown": True}).json()["items"]
    assert all(not e["known"] for e in unknown) and form_key.json()["id"] in [e["id"] for e in unknown]
    future = viewer.get("/api/v1/events", params={"since": "2100-01-01T00:00:00Z"}).json()["items"]
    assert future == []
    page = viewer.get("/api/v1/events", params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_offset"] == 1
    snap = viewer.get(first.json()["snapshot_url"])
    assert snap.status_code == 200 and snap.content == snapshot["snapshot"][1]
    assert viewer.get(f"/api/v1/events/{first.json()['id']}").json()["source"] == "gate"
    assert viewer.get(f"/api/v1/events/{form_key.json()['id']}/snapshot").status_code == 404


def test_ingest_rejects_bad_fields(clients: Clients) -> None:
    ingest = clients.bearer("ingest")
    for data in (
        {"box": "[1,2,3]"},
        {"box": "nope"},
        {"metadata": "[1]"},
        {"person_id": "999999"},
        {"confidence": "2"},
    ):
        response = clients.anonymous.post("/api/v1/events", data=data, headers=ingest)
        assert response.status_code == 422, (data, response.text)


def test_enroll_an_unknown_face_from_an_event(clients: Clients, media_dir: Path) -> None:
    event = clients.anonymous.post(
        "/api/v1/events",
        data={"source": "stage"},
        files={"snapshot": ("f.png", (media_dir / "lin-manuel-miranda.png").read_bytes(), "image/png")},
        headers=clients.bearer("ingest"),
    ).json()
    operator, headers = clients.as_user("operator"), clients.headers("operator")
    person = operator.post(f"/api/v1/events/{event['id']}/enroll", json={"name": "Lin-Manuel Miranda"}, headers=headers)
    assert person.status_code == 201 and person.json()["face_count"] == 1
    found = operator.post("/api/v1/identify", files=photo(media_dir / "lin-manuel-miranda.png"), headers=headers)
    assert found.json()["faces"][0]["person"]["name"] == "Lin-Manuel Miranda"
    assert operator.get(f"/api/v1/events/{event['id']}").json()["person_name"] == "Lin-Manuel Miranda"
    blank = clients.anonymous.post("/api/v1/events", data={"source": "x"}, headers=clients.bearer("ingest")).json()
    assert (
        operator.post(f"/api/v1/events/{blank['id']}/enroll", json={"name": "Nobody"}, headers=headers).status_code
        == 422
    )
    assert operator.delete(f"/api/v1/events/{blank['id']}", headers=headers).status_code == 200
    operator.delete(f"/api/v1/people/{person.json()['id']}", headers=headers)


# -- system -------------------------------------------------------------------------------------------


def test_health_metrics_stats_and_openapi(clients: Clients, enrolled: dict[str, int]) -> None:
    health = clients.anonymous.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["database"] is True
    metrics = clients.anonymous.get("/api/v1/metrics", headers=clients.bearer("read"))
    assert metrics.status_code == 200
    assert 'faceid_http_requests_total{method="GET",route="/api/v1/health",status="200"}' in metrics.text
    assert "faceid_people " in metrics.text
    stats = clients.as_user("viewer").get("/api/v1/stats").json()
    assert stats["people"] >= 2 and stats["backend"] == "sqlite"
    spec = clients.anonymous.get("/api/v1/openapi.json").json()
    assert "/api/v1/identify" in spec["paths"]
    assert {"HTTPBearer", "APIKeyCookie", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
    docs = clients.anonymous.get("/api/docs")
    assert docs.status_code == 200 and "/api/v1/enroll" in docs.text and "cdn" not in docs.text.lower()


def test_gallery_embeddings_for_edge_devices(clients: Clients, enrolled: dict[str, int]) -> None:
    read = clients.bearer("read")
    response = clients.anonymous.get("/api/v1/gallery/embeddings", headers=read)
    assert response.status_code == 200
    body = response.json()
    people = {p["name"]: p for p in body["people"]}
    assert {"Barack Obama", "Joe Biden"} <= set(people)
    assert all(len(e) == body["dim"] == 256 for p in body["people"] for e in p["embeddings"])  # dlib + SFace
    assert 0 < body["threshold"] < 2 and body["model_id"]
    unchanged = clients.anonymous.get(
        "/api/v1/gallery/embeddings", headers={**read, "If-None-Match": response.headers["ETag"]}
    )
    assert unchanged.status_code == 304
    assert clients.anonymous.get("/api/v1/gallery/embeddings", headers=clients.bearer("ingest")).status_code == 403
    assert clients.as_user("viewer").get("/api/v1/gallery/embeddings").status_code == 403


def test_web_pages_need_a_login_and_the_right_role(clients: Clients) -> None:
    anonymous = TestClient(clients.app, follow_redirects=False)
    response = anonymous.get("/people")
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    assert anonymous.get("/login").status_code == 200
    viewer = clients.as_user("viewer")
    for page in ("/", "/people", "/identify", "/events", "/account"):
        html = viewer.get(page)
        assert html.status_code == 200 and 'src="/static/app.js"' in html.text
        assert "http://" not in html.text and "https://" not in html.text  # nothing from elsewhere
    assert viewer.get("/admin/users").status_code == 403
    assert clients.as_user("admin").get("/admin/keys").status_code == 200
    assert "content-security-policy" in viewer.get("/").headers
    assert viewer.get("/static/app.js").status_code == 200


def test_admin_password_comes_from_config(clients: Clients) -> None:
    login(TestClient(clients.app), "admin", ADMIN_PASSWORD)


def test_one_database_for_the_store_the_accounts_and_the_audit_log(clients: Clients) -> None:
    from faceid.store import open_database

    services = clients.services
    database = services.store.database
    assert services.accounts.database is database and services.audit.database is database
    assert open_database(services.store.url) is database  # the process's one for that URL

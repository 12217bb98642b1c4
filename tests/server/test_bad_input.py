"""Bad input over HTTP: a clear 4xx with a message, and nothing written (rows, image files, audit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Clients, jpeg_bytes, make_config, open_clients, photo, row_counts

LIMIT = 800_000


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, analyzer: Any) -> Iterator[Clients]:
    config = make_config(tmp_path_factory.mktemp("bad-input"), max_upload_bytes=LIMIT)
    with open_clients(config, analyzer) as opened:
        yield opened


def _audit_count(clients: Clients) -> int:
    return len(clients.services.audit.entries(limit=10_000))


def _refused(clients: Clients, response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    for word in words:
        assert word in detail.lower(), detail


@pytest.fixture
def unchanged(small: Clients) -> Iterator[None]:
    before, audit = row_counts(small.services), _audit_count(small)
    yield
    assert row_counts(small.services) == before
    assert _audit_count(small) == audit


def _enroll(clients: Clients, files: Any, role: str = "operator", csrf: bool = True, **kwargs: Any) -> Any:
    headers = clients.headers(role) if csrf else {}
    return clients.as_user(role).post(
        "/api/v1/enroll", data={"name": "Someone"}, files=files, headers=headers, **kwargs
    )


def test_over_the_size_limit_is_413(small: Clients, unchanged: None) -> None:
    big = jpeg_bytes(10, 10) + b"\0" * (LIMIT + 1)
    _refused(small, _enroll(small, {"photos": ("big.jpg", big, "image/jpeg")}), 413, "limit")


def test_over_the_size_limit_without_a_length_is_413(small: Clients, unchanged: None) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 10_000 + 5):
            yield b"x" * 10_000

    response = small.as_user("operator").post(
        "/api/v1/identify",
        content=chunks(),
        headers={**small.headers("operator"), "Content-Type": "multipart/form-data; boundary=zzz"},
    )
    _refused(small, response, 413, "limit")


def test_not_an_image_is_415_naming_the_file(small: Clients, unchanged: None) -> None:
    response = _enroll(small, {"photos": ("notes.txt", b"this is text, not a photo", "text/plain")})
    _refused(small, response, 415, "notes.txt", "not an image")
    truncated = jpeg_bytes(300, 300)[:200]
    response = _enroll(small, {"photos": ("cut.jpg", truncated, "image/jpeg")})
    assert response.status_code in (415, 422) and "cut.jpg" in response.json()["detail"]
    empty = _enroll(small, {"photos": ("empty.jpg", b"", "image/jpeg")})
    _refused(small, empty, 422, "empty")


def test_no_face_is_422(small: Clients, unchanged: None, blank_jpeg: bytes) -> None:
    _refused(small, _enroll(small, {"photos": ("wall.jpg", blank_jpeg, "image/jpeg")}), 422, "no face")
    identify = small.as_user("viewer").post(
        "/api/v1/identify", files={"photo": ("wall.jpg", blank_jpeg, "image/jpeg")}, headers=small.headers("viewer")
    )
    _refused(small, identify, 422, "no face")


def test_several_faces_refuse_the_whole_enrollment(small: Clients, unchanged: None, media_dir: Path) -> None:
    files = [
        ("photos", ("obama.jpg", (media_dir / "obama_small.jpg").read_bytes(), "image/jpeg")),
        ("photos", ("two.jpg", (media_dir / "two_people.jpg").read_bytes(), "image/jpeg")),
    ]
    _refused(small, _enroll(small, files), 422, "2 faces", "two.jpg")


def test_not_logged_in_wrong_role_and_missing_csrf(small: Clients, unchanged: None, media_dir: Path) -> None:
    files = photo(media_dir / "obama_small.jpg", "photos")
    _refused(small, small.anonymous.post("/api/v1/enroll", data={"name": "X"}, files=files), 401, "not logged in")
    _refused(small, _enroll(small, files, role="viewer"), 403, "operator")
    _refused(small, _enroll(small, files, csrf=False), 403, "csrf")
    wrong = small.as_user("operator").post(
        "/api/v1/enroll", data={"name": "X"}, files=files, headers={"X-CSRF-Token": "forged"}
    )
    _refused(small, wrong, 403, "csrf")
    bad_key = small.anonymous.post(
        "/api/v1/enroll", data={"name": "X"}, files=files, headers={"Authorization": "Bearer fid_nope_nope"}
    )
    _refused(small, bad_key, 401, "api key")
    _refused(
        small,
        small.anonymous.post("/api/v1/enroll", data={"name": "X"}, files=files, headers=small.bearer("ingest")),
        403,
        "scope",
    )


def test_bad_fields(small: Clients, unchanged: None, media_dir: Path) -> None:
    operator, headers = small.as_user("operator"), small.headers("operator")
    missing = operator.post("/api/v1/enroll", data={"name": "X"}, headers=headers)
    _refused(small, missing, 422, "photos")
    blank_name = operator.post(
        "/api/v1/enroll", data={"name": "   "}, files=photo(media_dir / "obama_small.jpg", "photos"), headers=headers
    )
    _refused(small, blank_name, 422, "name")
    _refused(small, operator.get("/api/v1/people", params={"limit": 0}), 422, "limit")
    _refused(small, operator.get("/api/v1/people/abc"), 422)
    _refused(small, operator.get(f"/api/v1/people/{2**70}"), 422)
    _refused(
        small,
        operator.post("/api/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}),
        422,
    )
    _refused(small, operator.get("/api/v1/events", params={"since": "yesterday"}), 422, "since")

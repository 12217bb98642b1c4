"""Image URLs change when the image does, and a browser revalidates what it cached under any other URL:
deleting a person and enrolling another never shows the deleted face."""

from __future__ import annotations

from pathlib import Path

from .conftest import Clients, photo


def _enroll(clients: Clients, name: str, file: Path) -> dict:
    response = clients.as_user("operator").post(
        "/api/v1/enroll", data={"name": name}, files=photo(file, "photos"), headers=clients.headers("operator")
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _grid_thumbnail(clients: Clients, person_id: int) -> str:
    items = clients.as_user("viewer").get("/api/v1/people", params={"limit": 200}).json()["items"]
    return next(str(p["thumbnail_url"]) for p in items if p["id"] == person_id)


def test_a_deleted_face_never_shows_again(clients: Clients, media_dir: Path) -> None:
    operator, headers = clients.as_user("operator"), clients.headers("operator")
    gone = _enroll(clients, "Deleted Soon", media_dir / "obama.jpg")
    gone_urls = {gone["faces"][0]["image_url"], gone["faces"][0]["thumbnail_url"], _grid_thumbnail(clients, gone["id"])}
    assert operator.delete(f"/api/v1/people/{gone['id']}", headers=headers).status_code == 200
    new = _enroll(clients, "Enrolled After", media_dir / "biden.jpg")
    try:
        assert new["id"] != gone["id"] and new["faces"][0]["id"] != gone["faces"][0]["id"]
        new_urls = {new["faces"][0]["image_url"], new["faces"][0]["thumbnail_url"], _grid_thumbnail(clients, new["id"])}
        assert not new_urls & gone_urls
        image = operator.get(new["faces"][0]["image_url"])
        assert image.content == (media_dir / "biden.jpg").read_bytes()
    finally:
        operator.delete(f"/api/v1/people/{new['id']}", headers=headers)


def test_images_carry_an_etag_and_revalidate(clients: Clients, media_dir: Path) -> None:
    viewer = clients.as_user("viewer")
    person = _enroll(clients, "Cached Face", media_dir / "obama_small.jpg")
    try:
        face = person["faces"][0]
        for url in (face["image_url"], face["thumbnail_url"]):
            assert "?v=" in url
            first = viewer.get(url)
            assert first.status_code == 200 and first.headers["ETag"]
            assert "immutable" in first.headers["Cache-Control"]  # this URL names this image only
            again = viewer.get(url, headers={"If-None-Match": first.headers["ETag"]})
            assert again.status_code == 304 and not again.content
            # Under the bare URL (an id alone), the browser must ask again before using what it kept.
            bare = viewer.get(url.split("?")[0])
            assert bare.status_code == 200 and "no-cache" in bare.headers["Cache-Control"]
            assert bare.headers["ETag"] == first.headers["ETag"]
    finally:
        clients.as_user("operator").delete(f"/api/v1/people/{person['id']}", headers=clients.headers("operator"))

"""Small things of the API and the web app's pages: a warning for a face already in the gallery, error texts
for web users, pages that are not there, a page a viewer may not see, and what event lists carry."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from fastapi.testclient import TestClient

from .conftest import Clients, photo

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_enrolling_a_face_already_in_the_gallery_warns(clients: Clients, media_dir: Path) -> None:
    operator, headers = clients.as_user("operator"), clients.headers("operator")
    first = operator.post(
        "/api/v1/enroll", data={"name": "First Obama"}, files=photo(media_dir / "obama.jpg", "photos"), headers=headers
    ).json()
    assert first["faces"][0]["warning"] is None  # nobody to be confused with yet
    second = operator.post(
        "/api/v1/enroll", data={"name": "Second Obama"}, files=photo(media_dir / "obama.jpg", "photos"), headers=headers
    )
    assert second.status_code == 201, second.text
    warning = second.json()["faces"][0]["warning"]
    assert warning and "First Obama" in warning and "distance 0.000" in warning, warning
    # Adding a photo of someone to themselves is no news; to another person it is.
    own = operator.post(
        f"/api/v1/people/{first['id']}/faces", files=photo(media_dir / "obama2.jpg", "photos"), headers=headers
    )
    assert own.status_code == 201 and own.json()[0]["warning"] is None
    biden = operator.post(
        "/api/v1/enroll", data={"name": "Joe B"}, files=photo(media_dir / "biden.jpg", "photos"), headers=headers
    ).json()
    assert biden["faces"][0]["warning"] is None
    for person in (first, second.json(), biden):
        operator.delete(f"/api/v1/people/{person['id']}", headers=headers)


def test_error_texts_name_the_file_once_and_speak_to_web_users(
    clients: Clients, media_dir: Path, blank_jpeg: bytes
) -> None:
    operator, headers = clients.as_user("operator"), clients.headers("operator")
    none = operator.post(
        "/api/v1/enroll",
        data={"name": "Nobody Here"},
        files={"photos": ("noface.jpg", blank_jpeg, "image/jpeg")},
        headers=headers,
    )
    assert none.status_code == 422 and none.json()["detail"] == "noface.jpg: no face found"
    several = operator.post(
        "/api/v1/enroll", data={"name": "Two Men"}, files=photo(media_dir / "two_people.jpg", "photos"), headers=headers
    )
    detail = several.json()["detail"]
    assert several.status_code == 422 and detail.count("two_people.jpg") == 1, detail
    assert "--largest" not in detail and "largest" in detail, detail


def test_a_person_that_is_not_there_is_a_404_page(clients: Clients) -> None:
    page = clients.as_user("operator").get("/people/9999", headers=HTML)
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "no person with id 9999" in page.text
    assert 'id="rename-form"' not in page.text and 'id="add-face-form"' not in page.text
    assert 'data-page="not_found"' in page.text


def test_unknown_urls_of_the_web_app_are_pages(clients: Clients) -> None:
    viewer = clients.as_user("viewer")
    page = viewer.get("/no/such/page", headers=HTML)
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "There is no page at /no/such/page" in page.text and 'href="/people"' in page.text
    anonymous = TestClient(clients.app).get("/nothing-here", headers=HTML)
    assert anonymous.status_code == 404 and "text/html" in anonymous.headers["content-type"]
    # The API, and anything that does not ask for a page, still gets JSON.
    api = viewer.get("/api/v1/no-such-thing", headers=HTML)
    assert api.status_code == 404 and api.json()["code"] == "not_found"
    assert viewer.get("/no/such/page").json()["code"] == "not_found"


def test_a_page_a_viewer_may_not_see_runs_no_page_script(clients: Clients) -> None:
    page = clients.as_user("viewer").get("/admin/users")
    assert page.status_code == 403 and "Not allowed" in page.text
    assert 'data-page="forbidden"' in page.text  # not "users": that page's script would look for its table


def test_event_lists_carry_no_crops_and_show_viewers_no_device_paths(clients: Clients) -> None:
    crop = base64.b64encode(bytes(range(256)) * 14).decode()  # as big as a monitor's face crop (3.6 kB)
    metadata = {"crop_jpeg": crop, "crop_box": [1, 2, 3, 4], "source": "/home/someone/videos/door.mp4", "votes": {}}
    for number in range(20):
        answer = clients.anonymous.post(
            "/api/v1/events",
            data={"source": "crops-test", "metadata": json.dumps(metadata), "idempotency_key": f"crops-{number}"},
            headers=clients.bearer("ingest"),
        )
        assert answer.status_code == 201 and "crop_jpeg" not in answer.json()["metadata"]
    viewer = clients.as_user("viewer").get("/api/v1/events", params={"source": "crops-test", "limit": 20})
    assert len(viewer.json()["items"]) == 20
    assert "crop_jpeg" not in viewer.text and len(viewer.content) < 20_000, len(viewer.content)
    assert all(
        "source" not in e["metadata"] and e["metadata"]["crop_box"] == [1, 2, 3, 4] for e in viewer.json()["items"]
    )
    one = viewer.json()["items"][0]["id"]
    assert "source" not in clients.as_user("viewer").get(f"/api/v1/events/{one}").json()["metadata"]
    read_key = clients.anonymous.get(f"/api/v1/events/{one}", headers=clients.bearer("read")).json()
    assert "source" not in read_key["metadata"]
    operator = clients.as_user("operator").get("/api/v1/events", params={"source": "crops-test"}).json()
    assert all(e["metadata"]["source"] == "/home/someone/videos/door.mp4" for e in operator["items"])
    assert "crop_jpeg" not in json.dumps(operator)

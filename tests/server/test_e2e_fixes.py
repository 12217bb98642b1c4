"""In a real browser (Chromium, as tests/server/test_e2e.py drives it): where a login may send the browser, what
a failed identification leaves on screen, the warning for a face enrolled twice, the face of an event in the
events list, and a page a viewer may not see."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.server_process import ADMIN_PASSWORD, ServerProcess, http_login

from .conftest import PASSWORD
from .test_e2e import server  # noqa: F401  (the same server; the browser and page are the shared fixtures)

pytestmark = [pytest.mark.slow]


def log_in_as(page: Any, username: str = "admin", password: str = ADMIN_PASSWORD, next_path: str | None = None) -> None:
    page.goto("/login" if next_path is None else f"/login?next={next_path}")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-form button")


@pytest.mark.parametrize("next_path", ["/\\evil.example", "/%09/evil.example", "/%5C/evil.example"])
def test_a_login_never_leaves_the_server(page: Any, server: ServerProcess, next_path: str) -> None:  # noqa: F811
    log_in_as(page, next_path=next_path)
    page.wait_for_url(re.compile(r".*/$"))
    assert page.url == f"{server.url}/", page.url  # and the fixture saw no request to another host


def test_a_failed_identification_clears_the_last_result(page: Any, media_dir: Path) -> None:
    log_in_as(page)
    page.wait_for_url(re.compile(r".*/$"))
    page.goto("/identify")
    page.set_input_files("#identify-photo", str(media_dir / "two_people.jpg"))
    page.click("#identify-form button[type=submit]")
    page.wait_for_selector("#identify-matches li")
    assert page.is_visible("#identify-canvas")
    page.set_input_files("#identify-photo", str(media_dir / "README.md"))  # not an image: refused
    page.click("#identify-form button[type=submit]")
    page.wait_for_selector(".flash.error")
    assert not page.is_visible("#identify-result") and not page.is_visible("#identify-canvas")
    assert page.eval_on_selector_all("#identify-matches li", "items => items.length") == 0


def test_enrolling_a_face_twice_shows_a_warning(page: Any, media_dir: Path) -> None:
    log_in_as(page)
    page.wait_for_url(re.compile(r".*/$"))
    for name in ("Twice Enrolled", "Enrolled Again"):
        page.goto("/people")
        page.fill("#enroll-name", name)
        page.set_input_files("#enroll-photos", str(media_dir / "obama.jpg"))
        page.click("#enroll-submit")
        page.wait_for_url(re.compile(r".*/people/\d+\?enrolled=1"))
        page.wait_for_selector("#face-grid img")
    warning = page.wait_for_selector(".flash.warn")
    assert "already in the gallery as Twice Enrolled" in warning.inner_text()


def test_the_events_list_shows_the_face_of_each_event(page: Any, server: ServerProcess, media_dir: Path) -> None:  # noqa: F811
    admin = http_login(server.url)
    key = admin.post("/api/v1/api-keys", json={"name": "door", "scopes": ["ingest"]}).json()["key"]
    admin.close()
    posted = httpx.post(
        f"{server.url}/api/v1/events",
        data={"source": "door", "box": "[789, 74, 938, 223]"},
        files={"snapshot": ("frame.jpg", (media_dir / "two_people.jpg").read_bytes(), "image/jpeg")},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert posted.status_code == 201, posted.text
    log_in_as(page)
    page.wait_for_url(re.compile(r".*/$"))
    page.goto("/events")
    item = page.wait_for_selector(f'[data-event-id="{posted.json()["id"]}"] img')
    assert "/face?v=" in item.get_attribute("src")
    item.scroll_into_view_if_needed()  # (the list's images load lazily)
    width = 0
    for _ in range(100):  # polled from here: the page's CSP forbids wait_for_function's evaluated strings
        width = page.evaluate("(img) => img.complete ? img.naturalWidth : 0", item)
        if width:
            break
        page.wait_for_timeout(100)
    assert width == 160  # the face, not the 1126 px frame


def test_a_viewer_on_an_admin_page_meets_no_script_error(page: Any, server: ServerProcess) -> None:  # noqa: F811
    admin = http_login(server.url)
    created = admin.post("/api/v1/users", json={"username": "vera", "password": PASSWORD, "role": "viewer"})
    assert created.status_code in (201, 409), created.text
    admin.close()
    log_in_as(page, "vera", PASSWORD)
    page.wait_for_url(re.compile(r".*/$"))
    page.goto("/admin/users")
    page.wait_for_selector("text=Not allowed")
    page.wait_for_timeout(300)  # the page's script has run; the fixture fails the test on any script error

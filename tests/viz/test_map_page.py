"""The map page in a real browser (Debian's headless Chromium driven by Playwright) against `faceid serve` on a
gallery enrolled from faces-dev: log in, open /map, find the plot, hover a face and an unknown event, zoom.
Every request the page makes must stay on the server itself."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.browser import open_page
from support.server_process import ADMIN_PASSWORD as PASSWORD
from support.server_process import serve

from .conftest import SmallGallery

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def server(small_gallery: SmallGallery, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # A copy, so the server's own writes (users, sessions) stay out of the gallery the other tests read.
    data_dir = tmp_path_factory.mktemp("map-server") / "data"
    shutil.copytree(small_gallery.data_dir, data_dir)
    with serve(data_dir) as running:
        yield running.url


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    # Stricter than the shared page: the map page provokes no refused request, so none may show.
    with open_page(browser, server, viewport=(1280, 900), timeout_ms=60_000, allow_failed_loads=False) as opened:
        yield opened


def test_the_map_page_shows_the_gallery(page: Any, server: str, small_gallery: SmallGallery) -> None:
    page.goto("/map")
    assert "/login" in page.url  # the map is for logged-in users only
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("#login-form button")
    page.wait_for_url(re.compile(r".*/map$"))
    assert page.inner_text(".topbar nav a.active") == "Map"

    # The plot: a canvas with a point per face and per unknown event, and a legend of the people.
    page.wait_for_selector("#map-canvas[data-ready='1']")
    canvas = page.locator("#map-canvas")
    assert canvas.get_attribute("data-points") == str(small_gallery.faces)
    assert canvas.get_attribute("data-unknown") == str(small_gallery.unknown)
    box = canvas.bounding_box()
    assert box["width"] > 300 and box["height"] > 300
    legend = page.inner_text("#map-legend")
    assert all(name in legend for name in small_gallery.people) and "unknown events" in legend

    # Hovering a face shows its thumbnail and the person's name.
    index = page.evaluate("window.faceidMap.data.faces.length - 1")
    position = page.evaluate(f"window.faceidMap.screenPosition({index})")
    page.mouse.move(position["x"], position["y"])
    page.wait_for_selector("#map-tip:not([hidden])")
    # Two points may overlap on the map; whichever is picked, the tip names the person of that point.
    hovered = int(canvas.get_attribute("data-hover"))
    assert 0 <= hovered < small_gallery.faces
    name = page.evaluate(f"window.faceidMap.data.faces[{hovered}].name")
    assert name in small_gallery.people and page.inner_text("#map-tip-name") == name
    page.wait_for_function(
        "() => { const i = document.getElementById('map-tip-img'); return i.complete && i.naturalWidth > 0; }"
    )
    assert "/api/v1/faces/" in page.get_attribute("#map-tip-img", "src")

    # Hovering an unknown event shows its snapshot.
    event_index = page.evaluate("window.faceidMap.indexOf('unknown', window.faceidMap.data.unknown[0].event_id)")
    position = page.evaluate(f"window.faceidMap.screenPosition({event_index})")
    page.mouse.move(position["x"], position["y"])
    page.wait_for_function("() => document.getElementById('map-tip-name').textContent === 'Unknown'")
    assert "/snapshot" in page.get_attribute("#map-tip-img", "src")

    # Zoom with the wheel around the pointer, then back to the whole map.
    page.mouse.wheel(0, -600)
    page.wait_for_function("() => Number(document.getElementById('map-canvas').dataset.zoom) > 1.5")
    page.click("#map-reset")
    assert float(canvas.get_attribute("data-zoom")) == pytest.approx(1.0)

    # Another projection, computed by the server on request.
    page.select_option("#map-method", "tsne")
    page.wait_for_selector("#map-canvas[data-ready='1']")
    assert "TSNE" in page.inner_text("#map-summary")


def test_the_map_data_needs_a_login(server: str) -> None:
    response = httpx.get(f"{server}/api/v1/viz/map", timeout=30)
    assert response.status_code == 401
    client = httpx.Client(base_url=server, timeout=120)
    login = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    assert login.status_code == 200
    assert client.get("/api/v1/viz/map", params={"method": "mds"}).status_code == 422
    data = client.get("/api/v1/viz/map", params={"unknown": 0}).json()
    assert data["unknown"] == [] and len(data["faces"]) > 0
    assert all(f["image"].startswith("/api/v1/faces/") for f in data["faces"])

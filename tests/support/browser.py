"""A real browser for the tests: Chromium driven by Playwright, and pages that may only talk to the server
under test and must not meet a script error."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("FACEID_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    # A synthetic camera (a test pattern) for the webcam capture.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
)


@contextlib.contextmanager
def launch_browser() -> Iterator[Any]:
    """Headless Chromium (a failure, not a skip, where it is missing: the suite promises the browser tests)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def open_page(
    browser: Any,
    base_url: str,
    *,
    viewport: tuple[int, int] = (1280, 860),
    timeout_ms: int = 30_000,
    allow_failed_loads: bool = True,
    **context_options: Any,
) -> Iterator[Any]:
    """A page in a context of its own whose requests may only go to ``base_url`` (others are refused and fail
    the test), and on which no script error may happen. ``allow_failed_loads``: refused requests that a test
    provokes on purpose show as console errors too; they alone are let through."""
    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=base_url, **context_options)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    outside: list[str] = []
    errors: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(base_url) or route.request.url.startswith(("blob:", "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert outside == [], f"the page asked for outside resources: {outside}"
    if allow_failed_loads:
        errors = [e for e in errors if "Failed to load resource" not in e]
    assert errors == [], errors


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser per test module (Playwright's sync API keeps an event loop of its own while it runs)."""
    with launch_browser() as launched:
        yield launched


@pytest.fixture
def page(browser: Any, server: Any) -> Iterator[Any]:
    """A page on the module's ``server`` fixture (a :class:`~support.server_process.ServerProcess`), allowed
    the camera."""
    with open_page(browser, server.url, permissions=["camera"]) as opened:
        yield opened

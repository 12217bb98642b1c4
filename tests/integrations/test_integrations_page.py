"""The Integrations page in Debian's Chromium: MQTT status, a webhook added, "send test", the delivery log."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from faceid.integrations.settings import IntegrationSettings, integrations_dir
from faceid.integrations.webhooks import verify_signature
from support.browser import open_page
from support.server_process import ADMIN_PASSWORD, running_server

from .broker import Mosquitto
from .receiver import Receiver

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def test_the_integrations_page(tmp_path: Path, broker: Mosquitto, browser: Any) -> None:
    data_dir = tmp_path / "data"
    IntegrationSettings(mqtt_url=broker.url, public_url="http://faceid.lan:8000").save(integrations_dir(data_dir))
    receiver = Receiver()
    try:
        with running_server(data_dir, tmp_path) as server, open_page(browser, server.url, viewport=(1280, 900)) as page:
            page.goto("/admin/integrations")
            page.fill("#username", "admin")
            page.fill("#password", ADMIN_PASSWORD)
            page.click("#login-form button")
            page.wait_for_url(re.compile(r".*/admin/integrations$"))
            page.wait_for_selector("#mqtt-status:has-text('Connected to')")
            assert "mqtt://127.0.0.1" in page.inner_text("#mqtt-status")

            page.fill("#hook-url", receiver.url)
            page.fill("#hook-name", "alarm panel")
            page.check('input[name="decision"][value="unknown"]')
            page.click("#hook-form button")
            page.wait_for_selector("#hook-table tbody tr")
            assert "Its signing secret: whsec_" in page.inner_text("#flash")
            assert "alarm panel" in page.inner_text("#hook-table") and "unknown" in page.inner_text("#hook-table")

            page.click("#hook-table button:has-text('send test')")
            page.wait_for_selector("#delivery-table tbody td:text-is('delivered')")
            assert [r.headers["x-faceid-event"] for r in receiver.succeeded()] == ["test"]
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "integrations.png"), full_page=True)
            page.click("#hook-table button:has-text('show')")
            secret = page.inner_text("#hook-table code >> nth=1")
            sent = receiver.succeeded()[0]
            assert verify_signature(
                secret, sent.body, sent.headers["x-faceid-timestamp"], sent.headers["x-faceid-signature"]
            )
    finally:
        receiver.close()

"""Who the client is and where a login sends it: no redirect off the server after a login, and forwarded
headers believed only from the proxies the configuration names."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from faceid.server.web import local_path
from faceid.thresholds import LOGIN_MAX_FAILURES_PER_ADDRESS
from support.server_process import ADMIN_PASSWORD, serve

from .conftest import Clients

OFF_SITE = [
    "/\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "//evil.example",
    " //evil.example",
    "\t//evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "evil.example",
    "/\x00/evil.example",
]


@pytest.mark.parametrize("target", OFF_SITE)
def test_login_never_sends_the_browser_off_the_server(clients: Clients, target: str) -> None:
    assert local_path(target) == "/"
    anonymous = TestClient(clients.app, follow_redirects=False)
    page = anonymous.get("/login", params={"next": target})
    assert page.status_code == 200 and 'data-next="/"' in page.text
    logged_in = clients.as_user("viewer")
    answer = logged_in.get("/login", params={"next": target}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_login_keeps_a_local_next(clients: Clients) -> None:
    assert local_path("/people/3?x=1") == "/people/3?x=1"
    page = TestClient(clients.app).get("/login", params={"next": "/events?unknown=true"})
    assert 'data-next="/events?unknown=true"' in page.text
    # What the redirect to the login page writes comes back intact.
    first = TestClient(clients.app, follow_redirects=False).get("/people/7")
    assert first.headers["location"] == "/login?next=%2Fpeople%2F7"


def test_the_raw_requests_of_the_issue(clients: Clients) -> None:
    """``/login?next=/\\evil.example`` and ``next=/%09/evil.example``, exactly as a browser sends them."""
    anonymous = TestClient(clients.app, follow_redirects=False)
    for query in ("next=/\\evil.example", "next=/%09/evil.example", "next=/%5Cevil.example"):
        page = anonymous.get(f"/login?{query}")
        assert re.search(r'data-next="/"', page.text), (query, page.text)


def _failed_login_addresses(data_dir: Path) -> list[str | None]:
    with sqlite3.connect(data_dir / "faceid.sqlite3") as db:
        rows = db.execute("SELECT address FROM audit_log WHERE action = 'auth.login_failed' ORDER BY id").fetchall()
    return [row[0] for row in rows]


def _guess(url: str, number: int, forwarded_for: str) -> int:
    response = httpx.post(
        f"{url}/api/v1/auth/login",
        json={"username": f"nobody-{number}", "password": "a guess"},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=30,
    )
    return response.status_code


def test_forwarded_headers_are_ignored_by_default(tmp_path: Path) -> None:
    """A client rotating X-Forwarded-For is still one address: throttled after the per-address limit, and
    recorded as the address it connected from."""
    data_dir = tmp_path / "data"
    with serve(data_dir, None, "--no-warm-up") as server:
        statuses = [_guess(server.url, n, f"203.0.113.{n}") for n in range(LOGIN_MAX_FAILURES_PER_ADDRESS + 1)]
        assert statuses[:LOGIN_MAX_FAILURES_PER_ADDRESS] == [401] * LOGIN_MAX_FAILURES_PER_ADDRESS
        assert statuses[-1] == 429, statuses
        https = httpx.post(
            f"{server.url}/api/v1/auth/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert all("Secure" not in c for c in https.headers.get_list("set-cookie"))  # no one said https here
    assert set(_failed_login_addresses(data_dir)) == {"127.0.0.1"}


def test_forwarded_headers_from_a_named_proxy(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir, None, "--no-warm-up", "--forwarded-allow-ips", "127.0.0.1") as server:
        assert _guess(server.url, 1, "198.51.100.7") == 401
        login = httpx.post(
            f"{server.url}/api/v1/auth/login",
            json={"username": "admin", "password": ADMIN_PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.8", "X-Forwarded-Proto": "https"},
        )
        assert login.status_code == 200 and all("Secure" in c for c in login.headers.get_list("set-cookie"))
    assert _failed_login_addresses(data_dir) == ["198.51.100.7"]

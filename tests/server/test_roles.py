"""Every endpoint, called by every kind of caller: allowed or refused exactly as its access rule says.

Allowed calls are made so that they change nothing (a missing id, an incomplete body): what is checked
is that the answer is not 401/403. Refused calls must be 401 for nobody and 403 for the wrong role or
scope, and a cookie session's change without the CSRF token must be 403 too.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Clients, row_counts

MISSING = 999_999_999
CALLERS = ("anonymous", "viewer", "operator", "admin", "key:read", "key:identify", "key:ingest", "key:write")
ALLOWED = {
    "public": set(CALLERS),
    "view": {"viewer", "operator", "admin", "key:read"},
    "identify": {"viewer", "operator", "admin", "key:identify"},
    "write": {"operator", "admin", "key:write"},
    "ingest": {"operator", "admin", "key:ingest"},
    "gallery": {"operator", "admin", "key:read"},
    "account": {"viewer", "operator", "admin"},
    "me": {"viewer", "operator", "admin", "key:read", "key:identify", "key:ingest", "key:write"},
    "admin": {"admin"},
}

# (method, path, access, request keyword arguments, whether an allowed call may be made here)
ENDPOINTS: list[tuple[str, str, str, dict[str, Any], bool]] = [
    ("GET", "/api/v1/health", "public", {}, True),
    ("GET", "/api/v1/openapi.json", "public", {}, True),
    ("POST", "/api/v1/auth/login", "public", {"json": {}}, True),
    ("GET", "/api/v1/auth/me", "me", {}, True),
    ("POST", "/api/v1/auth/logout", "account", {}, False),  # allowed: would end the shared session
    ("POST", "/api/v1/auth/password", "account", {"json": {}}, True),
    ("GET", "/api/v1/people", "view", {}, True),
    ("POST", "/api/v1/people", "write", {"json": {}}, True),
    ("POST", "/api/v1/enroll", "write", {}, True),
    ("GET", f"/api/v1/people/{MISSING}", "view", {}, True),
    ("PATCH", f"/api/v1/people/{MISSING}", "write", {"json": {}}, True),
    ("DELETE", f"/api/v1/people/{MISSING}", "write", {}, True),
    ("POST", f"/api/v1/people/{MISSING}/merge", "write", {"json": {"absorb": MISSING - 1}}, True),
    ("GET", f"/api/v1/people/{MISSING}/faces", "view", {}, True),
    ("POST", f"/api/v1/people/{MISSING}/faces", "write", {}, True),
    ("GET", f"/api/v1/faces/{MISSING}", "view", {}, True),
    ("DELETE", f"/api/v1/faces/{MISSING}", "write", {}, True),
    ("GET", f"/api/v1/faces/{MISSING}/image", "view", {}, True),
    ("GET", f"/api/v1/faces/{MISSING}/thumbnail", "view", {}, True),
    ("POST", "/api/v1/identify", "identify", {}, True),
    ("POST", "/api/v1/verify", "identify", {}, True),
    ("GET", "/api/v1/events", "view", {}, True),
    ("GET", "/api/v1/events/stream", "view", {}, False),  # allowed: an endless stream (see the e2e tests)
    ("POST", "/api/v1/events", "ingest", {"data": {"box": "not json"}}, True),
    ("GET", f"/api/v1/events/{MISSING}", "view", {}, True),
    ("GET", f"/api/v1/events/{MISSING}/snapshot", "view", {}, True),
    ("DELETE", f"/api/v1/events/{MISSING}", "write", {}, True),
    ("POST", f"/api/v1/events/{MISSING}/enroll", "write", {"json": {"name": "x"}}, True),
    ("GET", "/api/v1/users", "admin", {}, True),
    ("POST", "/api/v1/users", "admin", {"json": {}}, True),
    ("GET", f"/api/v1/users/{MISSING}", "admin", {}, True),
    ("PATCH", f"/api/v1/users/{MISSING}", "admin", {"json": {}}, True),
    ("DELETE", f"/api/v1/users/{MISSING}", "admin", {}, True),
    ("GET", "/api/v1/api-keys", "admin", {}, True),
    ("POST", "/api/v1/api-keys", "admin", {"json": {}}, True),
    ("DELETE", f"/api/v1/api-keys/{MISSING}", "admin", {}, True),
    ("GET", "/api/v1/audit", "admin", {}, True),
    ("GET", "/api/v1/metrics", "view", {}, True),
    ("GET", "/api/v1/stats", "view", {}, True),
    ("GET", "/api/v1/gallery/embeddings", "gallery", {}, True),
    ("GET", "/api/v1/integrations", "admin", {}, True),
    ("PUT", "/api/v1/integrations/mqtt", "admin", {"json": {"presence_timeout": 0}}, True),
    ("GET", "/api/v1/webhooks", "admin", {}, True),
    ("POST", "/api/v1/webhooks", "admin", {"json": {}}, True),
    ("GET", "/api/v1/webhooks/deliveries", "admin", {}, True),
    ("GET", f"/api/v1/webhooks/deliveries/{MISSING}", "admin", {}, True),
    ("POST", f"/api/v1/webhooks/deliveries/{MISSING}/retry", "admin", {}, True),
    ("GET", f"/api/v1/webhooks/{MISSING}", "admin", {}, True),
    ("PATCH", f"/api/v1/webhooks/{MISSING}", "admin", {"json": {}}, True),
    ("DELETE", f"/api/v1/webhooks/{MISSING}", "admin", {}, True),
    ("POST", f"/api/v1/webhooks/{MISSING}/test", "admin", {}, True),
]


def _call(clients: Clients, caller: str, method: str, path: str, csrf: bool = True, **kwargs: Any) -> Any:
    if caller == "anonymous":
        return clients.anonymous.request(method, path, **kwargs)
    if caller.startswith("key:"):
        return clients.anonymous.request(method, path, headers=clients.bearer(caller[4:]), **kwargs)
    headers = clients.headers(caller) if csrf else {}
    return clients.as_user(caller).request(method, path, headers=headers, **kwargs)


def test_the_matrix_covers_every_api_route(clients: Clients) -> None:
    declared = {
        (method, route.path)
        for route in clients.app.routes
        if getattr(route, "path", "").startswith("/api/v1")
        for method in getattr(route, "methods", set()) - {"HEAD"}
    }
    covered = {
        (method, path.replace(str(MISSING - 1), "{}").replace(str(MISSING), "{}")) for method, path, *_ in ENDPOINTS
    }
    normalised = set()
    for method, path in declared:
        parts = ["{}" if part.startswith("{") else part for part in path.split("/")]
        normalised.add((method, "/".join(parts)))
    assert normalised <= covered, sorted(normalised - covered)


@pytest.mark.parametrize(
    ("method", "path", "access", "kwargs", "call_allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS]
)
def test_each_caller_is_allowed_or_refused(
    clients: Clients, method: str, path: str, access: str, kwargs: dict[str, Any], call_allowed: bool
) -> None:
    before = row_counts(clients.services)
    for caller in CALLERS:
        allowed = caller in ALLOWED[access]
        if allowed and not call_allowed:
            continue
        response = _call(clients, caller, method, path, **kwargs)
        if allowed:
            assert response.status_code not in (401, 403), (caller, response.status_code, response.text)
            assert response.status_code < 500, (caller, response.text)
        else:
            expected = 401 if caller == "anonymous" else 403
            assert response.status_code == expected, (caller, response.status_code, response.text)
            assert response.json()["detail"], "a refusal says why"
    if method not in ("GET", "HEAD") and access not in ("public",):
        for caller in ("viewer", "operator", "admin"):
            if caller not in ALLOWED[access]:
                continue
            response = _call(clients, caller, method, path, csrf=False, **kwargs)
            assert response.status_code == 403 and response.json()["code"] == "csrf", (caller, response.text)
    after = row_counts(clients.services)
    assert {k: v for k, v in after.items() if k != "users"} == {k: v for k, v in before.items() if k != "users"}

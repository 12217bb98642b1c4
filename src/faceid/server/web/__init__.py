"""The web UI: server-rendered page shells whose script talks to the REST API. Every file it needs is
served from /static, so it works with no internet connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

import faceid
from faceid.errors import NotFoundError
from faceid.server.auth import Principal, identify_principal
from faceid.server.errors import ApiError
from faceid.store.accounts import DEFAULT_KEY_PRESET, KEY_PRESETS, SCOPE_HELP, SCOPES, role_at_least

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))

NAV = [
    ("/", "Dashboard", "viewer"),
    ("/people", "People", "viewer"),
    ("/identify", "Who is this?", "viewer"),
    ("/events", "Events", "viewer"),
    ("/inbox", "Inbox", "viewer"),
    ("/map", "Map", "viewer"),
    ("/admin/users", "Users", "admin"),
    ("/admin/keys", "API keys", "admin"),
    ("/admin/audit", "Audit log", "admin"),
    ("/admin/integrations", "Integrations", "admin"),
]


def local_path(target: str) -> str:
    """``target`` if it is a path on this server, else "/". Browsers read a backslash as a slash and drop
    tabs and newlines, so ``/\\evil.example`` and ``/<tab>/evil.example`` mean ``//evil.example``: another host."""
    cleaned = "".join(c for c in target.replace("\\", "/") if c == " " or (c.isprintable() and not c.isspace()))
    parts = urlsplit(cleaned)
    if not cleaned.startswith("/") or cleaned.startswith("//") or parts.scheme or parts.netloc:
        return "/"
    return cleaned


def _viewer(request: Request) -> Principal | None:
    try:
        principal = identify_principal(request, request.app.state.services)
    except ApiError:  # a bad bearer header on a page load: treat as not logged in
        return None
    return principal if principal is not None and principal.kind == "user" else None


def _render(
    request: Request, template: str, title: str, role: str = "viewer", status_code: int = 200, **extra: Any
) -> Response:
    principal = _viewer(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    assert principal.user is not None and principal.session is not None
    context = {
        "title": title,
        "user": principal.user,
        "csrf_token": principal.session.csrf_token,
        "nav": [(href, label) for href, label, need in NAV if role_at_least(principal.user.role, need)],
        "version": faceid.__version__,
        "page": template.removesuffix(".html"),
        **extra,
    }
    if not role_at_least(principal.user.role, role):
        # The page's own script must not run (it would look for the page it is not shown).
        forbidden = {**context, "needed": role, "page": "forbidden"}
        return TEMPLATES.TemplateResponse(request, "forbidden.html", forbidden, status_code=403)
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def not_found_page(request: Request, message: str) -> Response:
    """The web app's own 404: a page, with the menu for someone logged in."""
    principal = _viewer(request)
    if principal is None:
        context = {"title": "Not found", "message": message, "version": faceid.__version__, "page": "not_found"}
        return TEMPLATES.TemplateResponse(request, "not_found.html", context, status_code=404)
    return _render(request, "not_found.html", "Not found", status_code=404, message=message)


def web_router() -> APIRouter:
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

    @router.get("/login")
    def login(request: Request, next: str = "/") -> Response:
        target = local_path(next)
        if _viewer(request) is not None:
            return RedirectResponse(target, status_code=303)
        return TEMPLATES.TemplateResponse(
            request, "login.html", {"title": "Log in", "next": target, "version": faceid.__version__, "page": "login"}
        )

    @router.get("/")
    def dashboard(request: Request) -> Response:
        return _render(request, "dashboard.html", "Dashboard")

    @router.get("/people")
    def people(request: Request) -> Response:
        return _render(request, "people.html", "People")

    @router.get("/people/{person_id}")
    def person(request: Request, person_id: int) -> Response:
        if _viewer(request) is not None:
            try:
                request.app.state.services.store.get_person(person_id)
            except NotFoundError as error:
                return not_found_page(request, f"{error}: deleted, merged into someone else, or never enrolled.")
        return _render(request, "person.html", "Person", person_id=person_id)

    @router.get("/identify")
    def identify(request: Request) -> Response:
        return _render(request, "identify.html", "Who is this?")

    @router.get("/events")
    def events(request: Request) -> Response:
        return _render(request, "events.html", "Events")

    @router.get("/account")
    def account(request: Request) -> Response:
        return _render(request, "account.html", "My account")

    @router.get("/admin/users")
    def users(request: Request) -> Response:
        return _render(request, "users.html", "Users", role="admin")

    @router.get("/admin/keys")
    def keys(request: Request) -> Response:
        return _render(
            request,
            "keys.html",
            "API keys",
            role="admin",
            scopes=[(s, SCOPE_HELP[s]) for s in SCOPES],
            checked=KEY_PRESETS[DEFAULT_KEY_PRESET],
        )

    @router.get("/admin/audit")
    def audit(request: Request) -> Response:
        return _render(request, "audit.html", "Audit log", role="admin")

    @router.get("/admin/integrations")
    def integrations(request: Request) -> Response:
        return _render(request, "integrations.html", "Integrations", role="admin")

    @router.get("/api/docs")
    def api_docs(request: Request) -> Response:
        spec = request.app.openapi()
        operations = []
        for path, methods in spec.get("paths", {}).items():
            for method, operation in methods.items():
                operations.append(
                    {
                        "method": method.upper(),
                        "path": path,
                        "summary": operation.get("summary", ""),
                        "tag": (operation.get("tags") or ["other"])[0],
                        "parameters": operation.get("parameters", []),
                        "body": list((operation.get("requestBody") or {}).get("content", {}).keys()),
                        "responses": sorted(operation.get("responses", {}).keys()),
                    }
                )
        return TEMPLATES.TemplateResponse(
            request,
            "api_docs.html",
            {"title": "API", "operations": operations, "spec": spec, "version": faceid.__version__, "page": "api"},
        )

    return router

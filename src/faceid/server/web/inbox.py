"""The Inbox page: visitors to name, corrections, history by face, retention, erasure (script: static/inbox.js)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from faceid.server.web import _render


def inbox_router() -> APIRouter:
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

    @router.get("/inbox")
    def inbox_page(request: Request) -> Response:
        return _render(request, "inbox.html", "Inbox")

    return router

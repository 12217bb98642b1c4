"""The REST API under /api/v1: one router per area, collected here."""

from __future__ import annotations

from fastapi import APIRouter

from faceid.server.api import accounts, events, integrations, people, recognition, system, visitors


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    for module in (accounts, people, recognition, events, system, integrations, visitors):
        router.include_router(module.router)
    return router

"""Shared parameter types of the API routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query

from faceid.server.services import Services, services

# Ids are 64-bit in the database; a larger number in a URL is simply not found, never an overflow.
MAX_ID = 2**63 - 1

Svc = Annotated[Services, Depends(services)]
PersonId = Annotated[int, Path(ge=1, le=MAX_ID, description="a person's id")]
FaceId = Annotated[int, Path(ge=1, le=MAX_ID, description="a face's id")]
EventId = Annotated[int, Path(ge=1, le=MAX_ID, description="an event's id")]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="a user's id")]
KeyId = Annotated[int, Path(ge=1, le=MAX_ID, description="an API key's id")]
Limit = Annotated[int, Query(ge=1, le=500, description="at most this many items")]
Offset = Annotated[int, Query(ge=0, le=10**9, description="skip this many items")]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not logged in, or an unknown API key"},
    403: {"description": "wrong role or scope, or a missing CSRF token"},
}

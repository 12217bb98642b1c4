"""How faceid's errors become HTTP answers: a status and ``{"detail": message, "code": name}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from faceid.errors import (
    BadInputError,
    ConflictError,
    FaceidError,
    ImageError,
    ImageTooLargeError,
    MultipleFacesError,
    NoFaceError,
    NotFoundError,
    StoreError,
)
from faceid.store.accounts import LoginFailed, LoginThrottled

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides.
STATUS: list[tuple[type[Exception], int, str]] = [
    (LoginThrottled, 429, "throttled"),
    (LoginFailed, 401, "login_failed"),
    (ImageTooLargeError, 413, "image_too_large"),
    (ImageError, 415, "not_an_image"),
    (NoFaceError, 422, "no_face"),
    (MultipleFacesError, 422, "multiple_faces"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (BadInputError, 422, "bad_input"),
    (StoreError, 503, "store_unavailable"),
]

HTTP_CODES = {
    400: "bad_request",
    401: "not_logged_in",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "bad_input",
    429: "throttled",
}


class ApiError(HTTPException):
    """An HTTPException with a machine-readable code beside the message."""

    def __init__(self, status: int, detail: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.code = code or HTTP_CODES.get(status, "error")


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request is larger than the limit of {limit} bytes ({limit / 2**20:.1f} MiB)")


def status_of(error: Exception) -> tuple[int, str]:
    for kind, status, code in STATUS:
        if isinstance(error, kind):
            return status, code
    return 500, "internal_error"


def error_body(detail: Any, code: str) -> dict[str, Any]:
    return {"detail": detail, "code": code}


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path", "header"))
        parts.append(f"{where or 'request'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def wants_page(request: Request) -> bool:
    """A browser asking for a page of the web app (not the API, not a file of /static)."""
    path = request.url.path
    if path.startswith(("/api/", "/static/")) or request.method not in ("GET", "HEAD"):
        return False
    return "text/html" in request.headers.get("accept", "")


def install(app: FastAPI) -> None:
    @app.exception_handler(FaceidError)
    async def _faceid_error(_request: Request, error: FaceidError) -> JSONResponse:
        status, code = status_of(error)
        headers = {}
        if isinstance(error, LoginThrottled):
            headers["Retry-After"] = str(error.retry_after)
        if status >= 500:
            log.error("request failed: %s", error)
        return JSONResponse(error_body(str(error), code), status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404 and wants_page(request):
            from faceid.server.web import not_found_page

            return not_found_page(request, f"There is no page at {request.url.path}.")
        code = getattr(error, "code", None) or HTTP_CODES.get(error.status_code, "error")
        return JSONResponse(
            error_body(error.detail, code), status_code=error.status_code, headers=getattr(error, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"detail": _validation_message(error), "code": "bad_input", "errors": _plain(error.errors())},
            status_code=422,
        )


def _plain(errors: Any) -> Any:
    """Validation errors may hold the offending input (bytes, exceptions): keep what JSON can carry."""
    out = []
    for item in list(errors)[:20]:
        out.append(
            {"loc": [str(p) for p in item.get("loc", ())], "msg": str(item.get("msg", "")), "type": item.get("type")}
        )
    return out

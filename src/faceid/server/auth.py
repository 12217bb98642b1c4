"""Who is asking, and may they? Sessions (cookie + CSRF token) for people, bearer API keys for devices.

Every endpoint declares one :class:`Access`: the least role a user needs, and the scope an API key
needs (None: keys may not use it at all). A cookie-authenticated request that changes anything must
carry the session's CSRF token in the ``X-CSRF-Token`` header; the cookie alone is what a forged
cross-site request would have, the header is what it cannot have. Bearer keys are never sent by a
browser on its own, so they need no CSRF token.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request, Response, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from faceid.server.errors import ApiError
from faceid.server.services import Services, services
from faceid.store.accounts import ApiKey, LoginSession, User, role_at_least

SESSION_COOKIE = "faceid_session"
CSRF_COOKIE = "faceid_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer fid_...`")
cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="The session cookie set by login")
csrf_scheme = APIKeyHeader(
    name=CSRF_HEADER, auto_error=False, description="The session's CSRF token (from login), on every change"
)


@dataclass(frozen=True)
class Principal:
    kind: str  # "user" or "key"
    user: User | None = None
    session: LoginSession | None = None
    key: ApiKey | None = None

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.username
        assert self.key is not None
        return f"key:{self.key.name}"

    @property
    def role(self) -> str | None:
        return self.user.role if self.user is not None else None


@dataclass(frozen=True)
class Access:
    role: str
    scope: str | None


VIEW = Access("viewer", "read")
IDENTIFY = Access("viewer", "identify")
WRITE = Access("operator", "write")
INGEST = Access("operator", "ingest")
GALLERY = Access("operator", "read")  # biometric templates leave the server: not for viewers
ACCOUNT = Access("viewer", None)  # one's own account: people only
ADMIN = Access("admin", None)


def identify_principal(request: Request, svc: Services) -> Principal | None:
    """The caller, or None. A bearer header that names no active key is an error, not anonymity."""
    cached = getattr(request.state, "principal", False)
    if cached is not False:
        return cast("Principal | None", cached)
    principal: Principal | None = None
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise ApiError(401, "the Authorization header must be 'Bearer <API key>'", "bad_credentials")
        key = svc.accounts.authenticate_key(credentials.strip())
        if key is None:
            raise ApiError(401, "unknown or revoked API key", "bad_credentials")
        principal = Principal(kind="key", key=key)
    else:
        token = request.cookies.get(SESSION_COOKIE)
        session = svc.accounts.session(token) if token else None
        if session is not None:
            principal = Principal(kind="user", user=session.user, session=session)
    request.state.principal = principal
    return principal


def check_access(request: Request, principal: Principal | None, access: Access) -> Principal:
    if principal is None:
        raise ApiError(401, "not logged in: log in, or send an API key as 'Authorization: Bearer <key>'")
    if principal.kind == "user":
        assert principal.session is not None and principal.user is not None
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent.encode(), principal.session.csrf_token.encode()):
                raise ApiError(403, f"missing or wrong CSRF token (send the {CSRF_HEADER} header)", "csrf")
        if not role_at_least(principal.user.role, access.role):
            raise ApiError(403, f"this needs the {access.role} role; you are {principal.user.role}", "forbidden")
        return principal
    assert principal.key is not None
    if access.scope is None:
        raise ApiError(403, "API keys cannot do this; log in as a user", "forbidden")
    if access.scope not in principal.key.scopes:
        raise ApiError(403, f"this API key lacks the {access.scope!r} scope", "forbidden")
    return principal


def allowed(principal: Principal, access: Access) -> bool:
    """Whether ``principal`` (already let in) would pass ``access`` too."""
    if principal.user is not None:
        return role_at_least(principal.user.role, access.role)
    return principal.key is not None and access.scope is not None and access.scope in principal.key.scopes


def require(access: Access):  # type: ignore[no-untyped-def]
    """A dependency giving the Principal, or refusing with 401/403 before the handler runs."""

    def dependency(
        request: Request,
        svc: Annotated[Services, Depends(services)],
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)] = None,
        _cookie: Annotated[str | None, Security(cookie_scheme)] = None,
        _csrf: Annotated[str | None, Security(csrf_scheme)] = None,
    ) -> Principal:
        return check_access(request, identify_principal(request, svc), access)

    return dependency


def set_session_cookies(request: Request, response: Response, session: LoginSession, secure: bool | None) -> None:
    assert session.token is not None
    https = request.url.scheme == "https" if secure is None else secure
    max_age = max(60, int(session.expires_at.timestamp() - time.time()))
    response.set_cookie(
        SESSION_COOKIE, session.token, max_age=max_age, httponly=True, samesite="lax", secure=https, path="/"
    )
    # Readable by the page's script, which copies it into the CSRF header; useless to another site.
    response.set_cookie(
        CSRF_COOKIE, session.csrf_token, max_age=max_age, httponly=False, samesite="lax", secure=https, path="/"
    )


def clear_session_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")

"""Logging in and out, one's own password, and (admins) users, API keys and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from faceid.server.api.common import ERRORS, KeyId, Limit, Offset, Svc, UserId
from faceid.server.auth import (
    ACCOUNT,
    ADMIN,
    SESSION_COOKIE,
    Principal,
    clear_session_cookies,
    identify_principal,
    require,
    set_session_cookies,
)
from faceid.server.errors import ApiError
from faceid.server.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    AuditOut,
    LoginIn,
    LoginOut,
    MeOut,
    PasswordChange,
    UserCreate,
    UserOut,
    UserUpdate,
)
from faceid.server.services import client_address
from faceid.store.accounts import LoginFailed, LoginThrottled, key_scopes

router = APIRouter(tags=["accounts"], responses=ERRORS)

Someone = Annotated[Principal, Depends(require(ACCOUNT))]
Admin = Annotated[Principal, Depends(require(ADMIN))]


@router.post(
    "/auth/login",
    response_model=LoginOut,
    responses={401: {"description": "wrong username or password"}, 429: {"description": "too many failures"}},
    summary="Log in with a username and password; sets the session cookie",
)
def login(request: Request, body: LoginIn, svc: Svc) -> JSONResponse:
    try:
        session = svc.accounts.login(
            body.username,
            body.password,
            address=client_address(request),
            user_agent=request.headers.get("user-agent"),
        )
    except LoginThrottled:
        svc.metrics.logins.labels("throttled").inc()
        raise
    except LoginFailed:
        svc.metrics.logins.labels("failed").inc()
        svc.audit.record(
            "auth.login_failed", actor=body.username[:120], actor_type="anonymous", address=client_address(request)
        )
        raise
    svc.metrics.logins.labels("ok").inc()
    svc.audit.record(
        "auth.login",
        actor=session.user.username,
        actor_type="user",
        target_type="user",
        target_id=session.user.id,
        address=client_address(request),
    )
    response = JSONResponse(
        {"user": session.user.to_dict(), "csrf_token": session.csrf_token, "expires_at": session.expires_at.isoformat()}
    )
    set_session_cookies(request, response, session, svc.config.secure_cookies)
    return response


@router.post("/auth/logout", status_code=204, response_class=Response, summary="End this session")
def logout(request: Request, svc: Svc, principal: Someone) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if principal.kind != "user" or not token:
        raise ApiError(400, "only a browser session can log out", "bad_request")
    svc.accounts.logout(token)
    svc.record(request, principal, "auth.logout", "user", principal.user.id if principal.user else None)
    response = Response(status_code=204)
    clear_session_cookies(response)
    return response


@router.get("/auth/me", response_model=MeOut, summary="Who am I (user or API key)")
def me(request: Request, svc: Svc) -> dict[str, Any]:
    principal = identify_principal(request, svc)
    if principal is None:
        raise ApiError(401, "not logged in")
    if principal.kind == "key":
        assert principal.key is not None
        return {"kind": "key", "user": None, "csrf_token": None, "scopes": principal.key.scopes}
    assert principal.user is not None and principal.session is not None
    return {
        "kind": "user",
        "user": principal.user.to_dict(),
        "csrf_token": principal.session.csrf_token,
        "scopes": None,
    }


@router.post(
    "/auth/password",
    status_code=204,
    response_class=Response,
    summary="Change your own password (your other sessions end)",
)
def change_password(request: Request, body: PasswordChange, svc: Svc, principal: Someone) -> Response:
    assert principal.user is not None and principal.session is not None
    try:
        svc.accounts.change_password(
            principal.user.id, body.current_password, body.new_password, keep_session=principal.session.token_hash
        )
    except LoginFailed as error:
        raise ApiError(403, str(error), "wrong_password") from None
    svc.record(request, principal, "auth.password_change", "user", principal.user.id)
    return Response(status_code=204)


# -- users (admins) -------------------------------------------------------------------------------


@router.get("/users", response_model=list[UserOut], summary="All users")
def list_users(svc: Svc, _: Admin) -> list[dict[str, Any]]:
    return [u.to_dict() for u in svc.accounts.list_users()]


@router.post("/users", response_model=UserOut, status_code=201, summary="Create a user")
def create_user(request: Request, body: UserCreate, svc: Svc, principal: Admin) -> dict[str, Any]:
    user = svc.accounts.create_user(body.username, body.password, body.role)
    svc.record(request, principal, "user.create", "user", user.id, {"username": user.username, "role": user.role})
    return user.to_dict()


@router.get("/users/{user_id}", response_model=UserOut, summary="One user")
def get_user(user_id: UserId, svc: Svc, _: Admin) -> dict[str, Any]:
    return svc.accounts.get_user(user_id).to_dict()


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    summary="Change a user's role, password or disabled flag (a new password ends their sessions)",
)
def update_user(request: Request, user_id: UserId, body: UserUpdate, svc: Svc, principal: Admin) -> dict[str, Any]:
    assert principal.user is not None
    if user_id == principal.user.id and (body.role not in (None, principal.user.role) or body.disabled):
        raise ApiError(409, "you cannot change your own role or disable yourself; ask another admin", "conflict")
    user = svc.accounts.update_user(user_id, role=body.role, password=body.password, disabled=body.disabled)
    details: dict[str, Any] = {k: v for k, v in body.model_dump(exclude_unset=True).items() if k != "password"}
    if body.password is not None:
        details["password_reset"] = True
    svc.record(request, principal, "user.update", "user", user_id, details)
    return user.to_dict()


@router.delete("/users/{user_id}", response_model=UserOut, summary="Delete a user")
def delete_user(request: Request, user_id: UserId, svc: Svc, principal: Admin) -> dict[str, Any]:
    assert principal.user is not None
    if user_id == principal.user.id:
        raise ApiError(409, "you cannot delete yourself; ask another admin", "conflict")
    user = svc.accounts.delete_user(user_id)
    svc.record(request, principal, "user.delete", "user", user_id, {"username": user.username})
    return user.to_dict()


# -- API keys (admins) ----------------------------------------------------------------------------


@router.get("/api-keys", response_model=list[ApiKeyOut], summary="All API keys (never the keys themselves)")
def list_keys(svc: Svc, _: Admin) -> list[dict[str, Any]]:
    return [k.to_dict() for k in svc.accounts.list_keys()]


@router.post(
    "/api-keys",
    response_model=ApiKeyOut,
    status_code=201,
    summary="Create an API key; the answer holds the key, shown this once",
)
def create_key(request: Request, body: ApiKeyCreate, svc: Svc, principal: Admin) -> dict[str, Any]:
    assert principal.user is not None
    key = svc.accounts.create_key(body.name, key_scopes(body.scopes, body.preset), created_by=principal.user.id)
    svc.record(request, principal, "api_key.create", "api_key", key.id, {"name": key.name, "scopes": key.scopes})
    return key.to_dict()


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut, summary="Revoke an API key (at once, for good)")
def revoke_key(request: Request, key_id: KeyId, svc: Svc, principal: Admin) -> dict[str, Any]:
    key = svc.accounts.revoke_key(key_id)
    svc.record(request, principal, "api_key.revoke", "api_key", key_id, {"name": key.name})
    return key.to_dict()


# -- audit log (admins) ---------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditOut], summary="Who changed what, newest first")
def audit(
    svc: Svc,
    _: Admin,
    actor: Annotated[str | None, Query(max_length=120)] = None,
    action: Annotated[str | None, Query(max_length=60)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    return [e.to_dict() for e in svc.audit.entries(actor=actor, action=action, limit=limit, offset=offset)]

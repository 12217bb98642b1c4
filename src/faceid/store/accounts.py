"""Who may use the server: users with roles, login sessions, API keys with scopes, and login throttling.

Passwords are hashed with argon2id. Session tokens and API keys are long random strings, so a plain
SHA-256 of them is what the database keeps (a stolen database gives no usable token, and looking one up
costs one indexed query, not an argon2 run per request). The plaintext of a token or key exists only in
the answer that created it.

The tables live beside the store's (the accounts migration), on the same :class:`~faceid.store.database.Database`,
so that every server process on one database sees the same users, sessions and keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from faceid.errors import BadInputError, ConflictError, NotFoundError
from faceid.store.database import Database
from faceid.store.types import UTCDateTime, utcnow
from faceid.thresholds import (
    LOGIN_FAILURE_WINDOW_SECONDS,
    LOGIN_LOCKOUT_MAX_SECONDS,
    LOGIN_LOCKOUT_SECONDS,
    LOGIN_MAX_FAILURES_PER_ADDRESS,
    LOGIN_MAX_FAILURES_PER_USER,
    SESSION_IDLE_SECONDS,
    SESSION_MAX_SECONDS,
)

log = logging.getLogger(__name__)

ROLES = ("viewer", "operator", "admin")  # each role may do everything the ones before it may
SCOPES = ("read", "identify", "ingest", "write")
SCOPE_HELP = {
    "read": "read people, faces, events and the gallery embeddings",
    "identify": "identify and verify photos",
    "ingest": "post events (cameras, the monitor)",
    "write": "enroll, edit and delete people and faces",
}
# Named sets of scopes. "device" is what a camera or ``faceid monitor --server`` needs and nothing more: pull
# the gallery (read) and post what it saw (ingest). It is the default of ``faceid apikey create``, of
# ``POST /api/v1/api-keys`` without scopes, and of the API keys page.
KEY_PRESETS: dict[str, tuple[str, ...]] = {"device": ("read", "ingest")}
DEFAULT_KEY_PRESET = "device"
USERNAME_MAX = 64
PASSWORD_MIN = 8
PASSWORD_MAX = 1024  # argon2 takes anything, but a megabyte "password" is a denial of service
KEY_PREFIX = "fid"
# Writing "last seen" on every request would make every read a write (and SQLite has one writer).
TOUCH_EVERY = timedelta(seconds=60)

_Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("username", String(USERNAME_MAX), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("password_changed_at", UTCDateTime(), nullable=False),
    Column("last_login_at", UTCDateTime(), nullable=True),
)

sessions = Table(
    "user_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", _Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("address", String(64), nullable=True),
    Column("user_agent", String(255), nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("prefix", String(32), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("created_by", _Id, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("first_failure_at", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime(), nullable=True),
)


def role_at_least(role: str, minimum: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(minimum)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def clean_username(username: Any) -> str:
    if not isinstance(username, str):
        raise BadInputError("a username must be text")
    name = username.strip()
    if not name:
        raise BadInputError("a username cannot be empty")
    if len(name) > USERNAME_MAX:
        raise BadInputError(f"a username has at most {USERNAME_MAX} characters")
    if not all(c.isalnum() or c in "._-@" for c in name):
        raise BadInputError("a username may contain letters, digits and . _ - @ only")
    return name.lower()


def check_password_rules(password: Any) -> str:
    if not isinstance(password, str):
        raise BadInputError("a password must be text")
    if len(password) < PASSWORD_MIN:
        raise BadInputError(f"a password needs at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise BadInputError(f"a password has at most {PASSWORD_MAX} characters")
    return password


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise BadInputError(f"a role is one of {', '.join(ROLES)}")
    return str(role)


def check_scopes(scopes: Any) -> list[str]:
    if not isinstance(scopes, list | tuple) or not scopes:
        raise BadInputError(f"an API key needs at least one scope out of {', '.join(SCOPES)}")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise BadInputError(f"unknown scope(s) {', '.join(map(str, unknown))}; choose from {', '.join(SCOPES)}")
    return sorted(set(scopes), key=SCOPES.index)


def key_scopes(scopes: Sequence[str] | None = None, preset: str | None = None) -> list[str]:
    """The scopes of a new key: a preset's and/or those named; neither gives the default preset (device)."""
    if preset is not None and preset not in KEY_PRESETS:
        raise BadInputError(f"unknown API key preset {preset!r}; choose from {', '.join(KEY_PRESETS)}")
    if preset is None and not scopes:
        preset = DEFAULT_KEY_PRESET
    chosen = [*(KEY_PRESETS[preset] if preset else ()), *(scopes or ())]
    return check_scopes(chosen)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    disabled: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = None

    @classmethod
    def of(cls, row: Any) -> User:
        return cls(
            id=int(row.id),
            username=str(row.username),
            role=str(row.role),
            disabled=bool(row.disabled),
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_login_at=row.last_login_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


@dataclass(frozen=True)
class LoginSession:
    """A logged-in browser or script: the token goes in the cookie, the CSRF token in a header."""

    user: User
    token_hash: str
    csrf_token: str
    expires_at: datetime
    token: str | None = field(default=None, repr=False)  # only when just created


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_by: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    key: str | None = field(default=None, repr=False)  # only when just created

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def of(cls, row: Any, key: str | None = None) -> ApiKey:
        return cls(
            id=int(row.id),
            name=str(row.name),
            prefix=str(row.prefix),
            scopes=list(row.scopes or []),
            created_by=row.created_by,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            key=key,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": self.scopes,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "active": self.active,
        }
        if self.key is not None:
            out["key"] = self.key
        return out


class LoginThrottled(BadInputError):
    """Too many failed logins: refused without checking the password until ``retry_after`` seconds pass."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


class LoginFailed(BadInputError):
    """Wrong username or password (deliberately not saying which)."""


class Accounts:
    """Users, sessions, API keys and login throttling, on the store's database (``Accounts(store.database)``, or
    ``Accounts(open_database(url))`` where no store is needed)."""

    def __init__(self, database: Database) -> None:
        from argon2 import PasswordHasher

        self.database = database
        # argon2-cffi's defaults are argon2id with RFC 9106's low-memory parameters (t=3, 64 MiB, p=4).
        self.hasher = PasswordHasher()
        # Checking a password against this when the user does not exist keeps both failures equally slow.
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.database.write() as connection:
            yield connection

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.database.read() as connection:
            yield connection

    # -- users ----------------------------------------------------------------------------------

    def count_users(self) -> int:
        with self._read() as connection:
            return len(connection.execute(select(users.c.id)).all())

    def ensure_admin(self, password: str | None = None) -> str | None:
        """Create the user ``admin`` when there is no user at all. Returns the password when it was
        generated here (the caller shows it once), else None."""
        if self.count_users() > 0:
            return None
        generated = None
        if not password:
            generated = password = secrets.token_urlsafe(12)
        try:
            self.create_user("admin", password, "admin")
        except ConflictError:  # another process created it first
            return None
        log.info("created the first user, admin")
        return generated

    def create_user(self, username: str, password: str, role: str) -> User:
        name = clean_username(username)
        check_password_rules(password)
        role = check_role(role)
        password_hash = self.hasher.hash(password)
        now = utcnow()
        try:
            with self._write() as connection:
                if connection.execute(select(users.c.id).where(users.c.username == name)).first() is not None:
                    raise ConflictError(f"a user named {name!r} already exists")
                new_id = connection.execute(
                    insert(users)
                    .values(
                        username=name,
                        password_hash=password_hash,
                        role=role,
                        disabled=False,
                        created_at=now,
                        updated_at=now,
                        password_changed_at=now,
                    )
                    .returning(users.c.id)
                ).scalar_one()
                return User.of(connection.execute(select(users).where(users.c.id == new_id)).one())
        except IntegrityError:
            raise ConflictError(f"a user named {name!r} already exists") from None

    def get_user(self, user_id: int) -> User:
        with self._read() as connection:
            row = connection.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise NotFoundError(f"no user with id {user_id}")
        return User.of(row)

    def find_user(self, username: str) -> User | None:
        with self._read() as connection:
            row = connection.execute(select(users).where(users.c.username == username.strip().lower())).first()
        return User.of(row) if row is not None else None

    def list_users(self) -> list[User]:
        with self._read() as connection:
            return [User.of(r) for r in connection.execute(select(users).order_by(users.c.username))]

    def _count_active_admins(self, connection: Connection, excluding: int | None = None) -> int:
        query = select(users.c.id).where(users.c.role == "admin", users.c.disabled.is_(False))
        if excluding is not None:
            query = query.where(users.c.id != excluding)
        return len(connection.execute(query).all())

    def update_user(
        self,
        user_id: int,
        *,
        role: str | None = None,
        password: str | None = None,
        disabled: bool | None = None,
    ) -> User:
        """Change a user's role, password or disabled flag. A new password or disabling ends their sessions.
        The last active admin can be neither demoted nor disabled (nobody could manage users any more)."""
        values: dict[str, Any] = {}
        if role is not None:
            values["role"] = check_role(role)
        if password is not None:
            values["password_hash"] = self.hasher.hash(check_password_rules(password))
            values["password_changed_at"] = utcnow()
        if disabled is not None:
            values["disabled"] = bool(disabled)
        with self._write() as connection:
            row = connection.execute(select(users).where(users.c.id == user_id)).first()
            if row is None:
                raise NotFoundError(f"no user with id {user_id}")
            losing_admin = row.role == "admin" and (
                (role is not None and role != "admin") or (disabled is True and not row.disabled)
            )
            if losing_admin and self._count_active_admins(connection, excluding=user_id) == 0:
                raise ConflictError("this is the last active admin; make another user admin first")
            if values:
                values["updated_at"] = utcnow()
                connection.execute(update(users).where(users.c.id == user_id).values(**values))
            if password is not None or disabled:
                connection.execute(delete(sessions).where(sessions.c.user_id == user_id))
            return User.of(connection.execute(select(users).where(users.c.id == user_id)).one())

    def delete_user(self, user_id: int) -> User:
        with self._write() as connection:
            row = connection.execute(select(users).where(users.c.id == user_id)).first()
            if row is None:
                raise NotFoundError(f"no user with id {user_id}")
            if row.role == "admin" and self._count_active_admins(connection, excluding=user_id) == 0:
                raise ConflictError("this is the last active admin; make another user admin first")
            connection.execute(delete(sessions).where(sessions.c.user_id == user_id))
            connection.execute(update(api_keys).where(api_keys.c.created_by == user_id).values(created_by=None))
            connection.execute(delete(users).where(users.c.id == user_id))
            return User.of(row)

    def change_password(self, user_id: int, current: str, new: str, keep_session: str | None = None) -> None:
        """Change one's own password (the current one is checked). Every other session of the user ends."""
        check_password_rules(new)
        with self._read() as connection:
            row = connection.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise NotFoundError(f"no user with id {user_id}")
        if not self._verify(row.password_hash, current if isinstance(current, str) else ""):
            raise LoginFailed("the current password is wrong")
        new_hash = self.hasher.hash(new)
        with self._write() as connection:
            now = utcnow()
            connection.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password_hash=new_hash, password_changed_at=now, updated_at=now)
            )
            others = delete(sessions).where(sessions.c.user_id == user_id)
            if keep_session is not None:
                others = others.where(sessions.c.token_hash != keep_session)
            connection.execute(others)

    def _verify(self, password_hash: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        try:
            return bool(self.hasher.verify(password_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # -- logging in -----------------------------------------------------------------------------

    def _throttle_keys(self, username: str, address: str | None) -> list[tuple[str, int]]:
        keys = [(f"user:{username.strip().lower()[:150]}", LOGIN_MAX_FAILURES_PER_USER)]
        if address:
            keys.append((f"addr:{address[:150]}", LOGIN_MAX_FAILURES_PER_ADDRESS))
        return keys

    def _check_throttle(self, keys: Sequence[tuple[str, int]]) -> None:
        now = utcnow()
        with self._read() as connection:
            rows = connection.execute(
                select(login_throttle).where(login_throttle.c.key.in_([k for k, _ in keys]))
            ).all()
        wait = max(
            (int((r.locked_until - now).total_seconds()) + 1 for r in rows if r.locked_until and r.locked_until > now),
            default=0,
        )
        if wait > 0:
            raise LoginThrottled(wait)

    def _record_failure(self, keys: Sequence[tuple[str, int]]) -> None:
        now = utcnow()
        window = timedelta(seconds=LOGIN_FAILURE_WINDOW_SECONDS)
        with self._write() as connection:
            for key, allowed in keys:
                row = connection.execute(select(login_throttle).where(login_throttle.c.key == key)).first()
                if row is None or now - row.first_failure_at > window:
                    failures, first = 1, now
                    connection.execute(delete(login_throttle).where(login_throttle.c.key == key))
                    connection.execute(insert(login_throttle).values(key=key, failures=1, first_failure_at=now))
                    continue
                failures, first = int(row.failures) + 1, row.first_failure_at
                locked_until = None
                if failures >= allowed:
                    extra = failures - allowed
                    lock = min(LOGIN_LOCKOUT_SECONDS * (2 ** min(extra, 16)), LOGIN_LOCKOUT_MAX_SECONDS)
                    locked_until = now + timedelta(seconds=lock)
                    log.warning("login throttled for %s: %d failures, locked for %d s", key, failures, lock)
                connection.execute(
                    update(login_throttle)
                    .where(login_throttle.c.key == key)
                    .values(failures=failures, first_failure_at=first, locked_until=locked_until)
                )

    def login(
        self, username: Any, password: Any, *, address: str | None = None, user_agent: str | None = None
    ) -> LoginSession:
        """Check the credentials and open a session. Raises LoginThrottled (before checking anything) or
        LoginFailed; a failure counts against both the username and the client address."""
        if not isinstance(username, str) or not isinstance(password, str):
            raise LoginFailed("wrong username or password")
        keys = self._throttle_keys(username, address)
        self._check_throttle(keys)
        with self._read() as connection:
            row = connection.execute(select(users).where(users.c.username == username.strip().lower())).first()
        ok = self._verify(row.password_hash if row is not None else self._dummy_hash, password[:PASSWORD_MAX])
        if row is None or not ok or row.disabled:
            self._record_failure(keys)
            raise LoginFailed("wrong username or password")
        if self.hasher.check_needs_rehash(row.password_hash):
            with self._write() as connection:
                connection.execute(
                    update(users).where(users.c.id == row.id).values(password_hash=self.hasher.hash(password))
                )
        return self._open_session(User.of(row), address, user_agent)

    def _open_session(self, user: User, address: str | None, user_agent: str | None) -> LoginSession:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + timedelta(seconds=SESSION_MAX_SECONDS)
        with self._write() as connection:
            connection.execute(
                insert(sessions).values(
                    token_hash=token_hash(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires,
                    address=(address or "")[:64] or None,
                    user_agent=(user_agent or "")[:255] or None,
                )
            )
            connection.execute(update(users).where(users.c.id == user.id).values(last_login_at=now))
            for key, _ in self._throttle_keys(user.username, None):
                connection.execute(delete(login_throttle).where(login_throttle.c.key == key))
            # Expired sessions of anyone are swept here, where a write happens anyway.
            connection.execute(delete(sessions).where(sessions.c.expires_at < now))
        return LoginSession(user=user, token_hash=token_hash(token), csrf_token=csrf, expires_at=expires, token=token)

    def session(self, token: str) -> LoginSession | None:
        """The live session for a cookie token, or None (unknown, expired, idle too long, user disabled)."""
        if not token or len(token) > 200:
            return None
        digest = token_hash(token)
        now = utcnow()
        with self._read() as connection:
            row = connection.execute(
                select(
                    sessions.c.csrf_token,
                    sessions.c.last_seen_at,
                    sessions.c.expires_at,
                    users.c.id,
                    users.c.username,
                    users.c.role,
                    users.c.disabled,
                    users.c.created_at,
                    users.c.updated_at,
                    users.c.last_login_at,
                )
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.token_hash == digest)
            ).first()
        if row is None:
            return None
        idle = now - row.last_seen_at > timedelta(seconds=SESSION_IDLE_SECONDS)
        if row.expires_at <= now or idle or row.disabled:
            self.logout(token)
            return None
        if now - row.last_seen_at > TOUCH_EVERY:
            with self._write() as connection:
                connection.execute(update(sessions).where(sessions.c.token_hash == digest).values(last_seen_at=now))
        return LoginSession(user=User.of(row), token_hash=digest, csrf_token=row.csrf_token, expires_at=row.expires_at)

    def logout(self, token: str) -> None:
        with self._write() as connection:
            connection.execute(delete(sessions).where(sessions.c.token_hash == token_hash(token)))

    # -- API keys -------------------------------------------------------------------------------

    def create_key(self, name: str, scopes: Sequence[str], created_by: int | None = None) -> ApiKey:
        """A new key; its plaintext is in the returned ``key`` and nowhere else, ever."""
        if not isinstance(name, str) or not name.strip():
            raise BadInputError("an API key needs a name (what or who uses it)")
        if len(name.strip()) > 100:
            raise BadInputError("an API key's name has at most 100 characters")
        checked = check_scopes(list(scopes))
        prefix = secrets.token_hex(4)
        key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        with self._write() as connection:
            new_id = connection.execute(
                insert(api_keys)
                .values(
                    name=name.strip(),
                    prefix=prefix,
                    key_hash=token_hash(key),
                    scopes=checked,
                    created_by=created_by,
                    created_at=utcnow(),
                )
                .returning(api_keys.c.id)
            ).scalar_one()
            row = connection.execute(select(api_keys).where(api_keys.c.id == new_id)).one()
        return ApiKey.of(row, key=key)

    def list_keys(self) -> list[ApiKey]:
        with self._read() as connection:
            return [ApiKey.of(r) for r in connection.execute(select(api_keys).order_by(api_keys.c.id))]

    def get_key(self, key_id: int) -> ApiKey:
        with self._read() as connection:
            row = connection.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFoundError(f"no API key with id {key_id}")
        return ApiKey.of(row)

    def revoke_key(self, key_id: int) -> ApiKey:
        with self._write() as connection:
            row = connection.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is None:
                raise NotFoundError(f"no API key with id {key_id}")
            if row.revoked_at is None:
                connection.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=utcnow()))
            return ApiKey.of(connection.execute(select(api_keys).where(api_keys.c.id == key_id)).one())

    def authenticate_key(self, key: str) -> ApiKey | None:
        """The active key matching ``key``, or None."""
        if not key or len(key) > 200 or not key.startswith(KEY_PREFIX + "_"):
            return None
        with self._read() as connection:
            row = connection.execute(select(api_keys).where(api_keys.c.key_hash == token_hash(key))).first()
        if row is None or row.revoked_at is not None:
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
            with self._write() as connection:
                connection.execute(update(api_keys).where(api_keys.c.id == row.id).values(last_used_at=now))
        return ApiKey.of(row)

"""Where a store lives: its data folder and its database URL."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from faceid.errors import BadInputError
from faceid.paths import data_dir as default_data_dir
from faceid.settings import current

SQLITE_FILENAME = "faceid.sqlite3"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The given folder, else ``FACEID_DATA_DIR``, else the per-user data folder."""
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def resolve_database_url(db: str | None, data_dir: Path) -> URL:
    """The SQLAlchemy URL for ``db`` (a URL or a SQLite file path), else the env var, else SQLite in ``data_dir``.

    ``postgresql://`` and ``postgres://`` URLs are served by psycopg 3.
    """
    raw = db or current().db
    if raw is None:
        return URL.create("sqlite", database=str(data_dir / SQLITE_FILENAME))
    if "://" not in raw:
        return URL.create("sqlite", database=str(Path(raw).expanduser()))
    try:
        url = make_url(raw)
    except Exception as error:  # SQLAlchemy raises ArgumentError with a terse text
        raise BadInputError(f"not a database URL: {raw!r} ({error})") from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return url
    raise BadInputError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://...")


def describe_url(url: URL) -> str:
    """The URL without its password, for logs and messages."""
    return url.render_as_string(hide_password=True)

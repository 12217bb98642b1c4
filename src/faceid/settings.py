"""Every ``FACEID_*`` environment variable, read in one place into one typed object.

The library, the command line and the server ask :func:`current` rather than ``os.environ``, so that the list
below is the whole list, each variable is parsed once and a bad value is reported with its name. Pure standard
library: the core (``faceid verify``) and a connected monitor import it without the server's packages.

Options given on the command line or to a constructor win over these; these win over the built-in defaults.
The built-in detector names live with the detectors (:mod:`faceid.vision.detect`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from faceid.errors import BadInputError

PREFIX = "FACEID_"

# Name -> what it sets; the documentation of each field below, and `faceid --help`'s list of variables.
VARIABLES: dict[str, str] = {
    "FACEID_DATA_DIR": "the store folder (default: a per-user data folder)",
    "FACEID_DB": "the database URL or SQLite file (default: SQLite in the data folder)",
    "FACEID_DATABASE_URL": "the same as FACEID_DB, which wins when both are set",
    "FACEID_CACHE_DIR": "built ONNX models and other derived files (default: a per-user cache folder)",
    "FACEID_DLIB_MODELS": "a folder holding dlib's model files (default: the face_recognition_models package)",
    "FACEID_THREADS": "threads per ONNX Runtime session (default 0: every physical core)",
    "FACEID_NO_JIT": "1: run the numpy code even where numba is installed",
    "FACEID_DETECTOR": "the server's detector for posted photos (uvicorn --factory app_from_env)",
    "FACEID_MAX_UPLOAD_MB": "the server's largest upload in MB (uvicorn --factory app_from_env)",
    "FACEID_ADMIN_PASSWORD": "the admin password a new server starts with",
    "FACEID_NEW_PASSWORD": "the password for `faceid user add/password` without a terminal",
    "FACEID_API_KEY": "the API key of a connected monitor (`faceid monitor --server URL`)",
    "FACEID_ARCHIVE_KEY": "the key that signs and checks gallery archives",
    "FACEID_SHARED": "the folder holding datasets/ (`faceid demo`, tests, benchmarks)",
}


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _number(environ: Mapping[str, str], name: str, kind: type[int] | type[float]) -> int | float | None:
    raw = environ.get(name)
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise BadInputError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise BadInputError(f"{name} must not be negative")
    return value


@dataclass(frozen=True)
class Settings:
    """What the environment says; None where a variable is unset (or empty), so the caller's default holds."""

    data_dir: Path | None = None
    db: str | None = None
    cache_dir: Path | None = None
    dlib_models: Path | None = None
    threads: int | None = None
    no_jit: bool = False
    detector: str | None = None
    max_upload_mb: float | None = None
    shared: Path | None = None
    # Secrets: kept out of repr() so that a logged Settings shows none of them.
    admin_password: str | None = field(default=None, repr=False)
    new_password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    archive_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        threads = _number(env, "FACEID_THREADS", int)
        max_mb = _number(env, "FACEID_MAX_UPLOAD_MB", float)
        return cls(
            data_dir=_path(env.get("FACEID_DATA_DIR")),
            db=env.get("FACEID_DB") or env.get("FACEID_DATABASE_URL") or None,
            cache_dir=_path(env.get("FACEID_CACHE_DIR")),
            dlib_models=_path(env.get("FACEID_DLIB_MODELS")),
            threads=int(threads) if threads is not None else None,
            no_jit=env.get("FACEID_NO_JIT", "").strip().lower() not in ("", "0", "false", "no"),
            detector=env.get("FACEID_DETECTOR") or None,
            max_upload_mb=float(max_mb) if max_mb is not None else None,
            shared=_path(env.get("FACEID_SHARED")),
            admin_password=env.get("FACEID_ADMIN_PASSWORD") or None,
            new_password=env.get("FACEID_NEW_PASSWORD") or None,
            api_key=env.get("FACEID_API_KEY") or None,
            archive_key=env.get("FACEID_ARCHIVE_KEY") or None,
        )


@lru_cache(maxsize=4)
def _parsed(snapshot: tuple[tuple[str, str], ...]) -> Settings:
    return Settings.from_env(dict(snapshot))


def current() -> Settings:
    """The settings of the environment as it is now. Parsed once per distinct set of ``FACEID_*`` values,
    so a test (or a program) that changes a variable sees the change, and nobody parses twice."""
    return _parsed(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(PREFIX))))

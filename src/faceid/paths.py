"""Where faceid keeps its files: a cache for built models and a data folder for the store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from faceid.settings import current


def _user_dir(env_xdg: str, fallback: str, mac: str, windows_env: str) -> Path:
    if sys.platform == "darwin":
        return Path.home() / "Library" / mac / "faceid"
    if sys.platform == "win32":
        return Path(os.environ.get(windows_env, Path.home())) / "faceid"
    return Path(os.environ.get(env_xdg) or Path.home() / fallback) / "faceid"


def cache_dir() -> Path:
    """Built ONNX models and other derived files; safe to delete. ``FACEID_CACHE_DIR`` overrides."""
    override = current().cache_dir
    return override if override else _user_dir("XDG_CACHE_HOME", ".cache", "Caches", "LOCALAPPDATA")


def data_dir() -> Path:
    """The default store location. ``FACEID_DATA_DIR`` overrides."""
    override = current().data_dir
    return override if override else _user_dir("XDG_DATA_HOME", ".local/share", "Application Support", "APPDATA")

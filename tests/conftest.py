"""Shared fixtures. Real data sets live outside the repository, in ``../shared`` or ``$FACEID_SHARED``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("FACEID_SHARED", REPO.parent / "shared"))


def _dataset(name: str) -> Path:
    path = shared_dir() / "datasets" / name
    if not path.is_dir():
        pytest.skip(f"data set {name!r} not found at {path} (set FACEID_SHARED to the folder holding datasets/)")
    return path


@pytest.fixture(scope="session")
def media_dir() -> Path:
    return _dataset("media")


@pytest.fixture(scope="session")
def faces_dev_dir() -> Path:
    return _dataset("faces-dev")


@pytest.fixture(scope="session")
def analyzer():
    import faceid

    return faceid.Analyzer()

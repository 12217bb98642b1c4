"""Which optional extra (pyproject.toml's ``[project.optional-dependencies]``) installs which module.

The command line uses it to tell a missing optional package, which it reports with the extra to install,
from a broken import, which it lets through as the bug it is.
"""

from __future__ import annotations

# Top-level import name -> the extra that installs it. Kept beside pyproject.toml's lists; tests/test_cli_extras.py
# checks that every package named here is in the extra named.
MODULE_EXTRAS: dict[str, str] = {
    "sqlalchemy": "store",
    "alembic": "store",
    "faiss": "store",
    "fastapi": "server",
    "starlette": "server",
    "pydantic": "server",
    "uvicorn": "server",
    "multipart": "server",
    "python_multipart": "server",
    "argon2": "server",
    "jinja2": "server",
    "prometheus_client": "server",
    "psycopg": "postgres",
    "pgvector": "postgres",
    "av": "video",
    "cv2": "video",
    "numba": "jit",
    "torch": "train",
    "matplotlib": "viz",
    "sklearn": "viz",
    "umap": "viz",
    "paho": "integrations",
    "tflite2onnx": "setup",
    "tflite": "setup",
}


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """The extra that would install the module ``error`` is about, or None when the module is not an optional
    dependency (a bug, or a broken install, that must not be hidden)."""
    if not error.name:
        return None
    return MODULE_EXTRAS.get(error.name.split(".")[0])


def install_hint(error: ModuleNotFoundError, extra: str) -> str:
    return f"the {extra!r} extra is not installed (no module {error.name!r}): pip install 'faceid[{extra}]'"

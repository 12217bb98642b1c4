"""The faceid server: a REST API under /api/v1 and a web UI, on FastAPI and uvicorn.

    >>> from faceid.server import ServerConfig, create_app
    >>> app = create_app(ServerConfig(data_dir="~/faces"))     # then: uvicorn.run(app)

Layering: uses :mod:`faceid.store` and :mod:`faceid.vision`; nothing below imports it.
"""

from __future__ import annotations

from faceid.server.app import app_from_env, create_app
from faceid.server.config import ServerConfig

__all__ = ["ServerConfig", "app_from_env", "create_app"]

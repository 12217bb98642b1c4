"""The FastAPI application: the REST API under /api/v1, the web UI, and their shared services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import faceid
from faceid.integrations import Integrations
from faceid.server import errors
from faceid.server.api import api_router
from faceid.server.config import ServerConfig
from faceid.server.feed import ChangeListener, EventHub
from faceid.server.limits import BodyLimitMiddleware
from faceid.server.metrics import Metrics, MetricsMiddleware, StoreCollector
from faceid.server.services import Services
from faceid.server.views import Thumbnails, events_out
from faceid.server.viz import viz_router
from faceid.server.web import web_router
from faceid.server.web.inbox import inbox_router
from faceid.store import Store
from faceid.store.accounts import Accounts
from faceid.store.audit import AuditLog
from faceid.store.retention import RetentionJob

if TYPE_CHECKING:
    from faceid.vision.analyzer import Analyzer

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("web") / "static"
# Only this server's own files: no CDN, no inline script (so an injected <script> cannot run).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"permissions-policy", b"camera=(self), microphone=()"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def warm_up(store: Store) -> None:
    """Load the models and the gallery now rather than during the first request."""
    try:
        analyzer = store.analyzer
        analyzer.analyze(np.zeros((96, 96, 3), np.uint8))
        analyzer.landmarker.landmarks(np.zeros((96, 96, 3), np.uint8), np.array([8, 8, 88, 88], np.float32))
        analyzer.embed_chips(np.zeros((1, 150, 150, 3), np.uint8))
        store.gallery().sync()
        log.info("models and gallery loaded (%d faces)", len(store.gallery()))
    except Exception as error:  # a broken model shows up as errors on the requests that need it
        log.warning("warm-up failed: %s", error)


def create_app(config: ServerConfig | None = None, *, analyzer: Analyzer | None = None) -> FastAPI:
    """Open (creating or migrating) the store, create the first admin if there is no user, build the app.

    ``analyzer`` lets several apps share loaded models (tests); otherwise one is made from the config.
    """
    config = config or ServerConfig()
    if analyzer is None:
        from faceid.vision.analyzer import photo_analyzer

        analyzer = photo_analyzer(detector=config.detector, device=config.device)
    store = Store(config.data_dir, config.db, analyzer=analyzer, index=config.index)
    accounts = Accounts(store.database)
    generated = accounts.ensure_admin(config.resolved_admin_password())
    if generated:
        log.warning("created the user 'admin' with the generated password %s; it is not shown again", generated)
    hub = EventHub()
    integrations = open_integrations(store, config)
    hub.add_listener(integrations.on_event)
    changes = ChangeListener(store, hub, lambda record: events_out(store, [record])[0], config.poll_seconds)
    metrics = Metrics()
    metrics.add_store(StoreCollector(store.stats, lambda: hub.subscriber_count))
    services = Services(
        config=config,
        store=store,
        accounts=accounts,
        audit=AuditLog(store.database),
        hub=hub,
        changes=changes,
        metrics=metrics,
        analysis=threading.BoundedSemaphore(config.slots()),
        generated_admin_password=generated,
    )

    retention = RetentionJob(store)  # the retention rules, applied in the background

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        hub.bind(asyncio.get_running_loop())
        changes.start()
        integrations.start()
        retention.start()
        if config.warm_up:
            await run_in_threadpool(warm_up, store)
        log.info("serving %r", store)
        try:
            yield {}
        finally:
            hub.close()
            changes.stop()
            integrations.stop()
            retention.stop()
            store.close()

    app = FastAPI(
        title="faceid",
        version=faceid.__version__,
        description="Self-hosted face identity: people, faces, identification, events. "
        "Log in with POST /api/v1/auth/login (then send the X-CSRF-Token header on every change), "
        "or send an API key as `Authorization: Bearer <key>`.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # the stock pages load their scripts from a CDN; /api/docs is served from here
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.integrations = integrations
    app.state.retention = retention
    app.state.thumbnails = Thumbnails()
    errors.install(app)
    app.include_router(api_router())
    app.include_router(web_router())
    app.include_router(inbox_router())
    app.include_router(viz_router())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(BodyLimitMiddleware, limit=config.max_upload_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def open_integrations(store: Store, config: ServerConfig) -> Integrations:
    """MQTT and webhooks, with the saved settings; ``--mqtt`` and ``--public-url`` replace theirs."""
    from faceid.integrations.settings import IntegrationSettings, integrations_dir

    folder = integrations_dir(store.data_dir)
    settings = IntegrationSettings.load(folder)
    if config.mqtt is not None or config.public_url is not None:
        settings.mqtt_url = config.mqtt if config.mqtt is not None else settings.mqtt_url
        settings.public_url = config.public_url if config.public_url is not None else settings.public_url
        settings.validate()
        settings.save(folder)
    return Integrations(store, settings, folder=folder)


def app_from_env() -> FastAPI:
    """For ``uvicorn --factory faceid.server.app:app_from_env``: settings from FACEID_DATA_DIR, FACEID_DB,
    FACEID_DETECTOR and FACEID_MAX_UPLOAD_MB (faceid.settings)."""
    from faceid.settings import current
    from faceid.vision.detect import PHOTO_DETECTOR

    settings = current()
    config = ServerConfig(data_dir=settings.data_dir, db=settings.db, detector=settings.detector or PHOTO_DETECTOR)
    if settings.max_upload_mb is not None:
        config.max_upload_bytes = int(settings.max_upload_mb * 2**20)
    return create_app(config)

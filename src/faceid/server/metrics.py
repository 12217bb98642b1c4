"""Prometheus metrics: requests by route and status, latencies, identifications, ingested events, and the
store's size (counted when scraped). Each app has its own registry, so several apps in one process
(tests) do not collide."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PREFIX = "/api/v1"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StoreCollector:
    def __init__(self, stats: Callable[[], dict[str, Any]], subscribers: Callable[[], int]) -> None:
        self._stats = stats
        self._subscribers = subscribers

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield GaugeMetricFamily("faceid_people", "People in the store", value=stats.get("people", 0))
        faces = GaugeMetricFamily("faceid_faces", "Enrolled faces, by descriptor model", labels=["model"])
        for model, count in stats.get("faces_by_model", {}).items():
            faces.add_metric([model], count)
        yield faces
        yield GaugeMetricFamily("faceid_events", "Events in the store", value=stats.get("events", 0))
        yield GaugeMetricFamily("faceid_feed_subscribers", "Open live feeds", value=self._subscribers())


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "faceid_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "faceid_http_request_duration_seconds",
            "Time to answer, by route",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.identified = Counter(
            "faceid_identified_faces", "Faces identified, by decision", ["decision"], registry=self.registry
        )
        self.ingested = Counter(
            "faceid_ingested_events", "Events posted by devices", ["outcome"], registry=self.registry
        )
        self.logins = Counter("faceid_logins", "Login attempts, by outcome", ["outcome"], registry=self.registry)

    def add_store(self, collector: StoreCollector) -> None:
        self.registry.register(collector)  # type: ignore[arg-type]

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (never the raw path: ids would explode
    the label set)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static") else "other")
            # Routes of included routers keep the path they were declared with, without the mount prefix.
            if scope["path"].startswith(API_PREFIX) and not template.startswith(API_PREFIX):
                template = API_PREFIX + template
            method = scope.get("method", "GET")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)

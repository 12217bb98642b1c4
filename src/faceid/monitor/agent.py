"""Puts a monitor together from its settings: source, recogniser, sinks, outputs; standalone or connected.

Standalone, events go into the local store and the store decides who a face is. Connected
(``server`` and ``api_key``), the gallery comes from the server and events go through the on-disk queue
to it; nothing is written to a local store. Either way the agent's own files (the queue, the cached
gallery, a lock) live in its state folder, by default ``<data dir>/monitor/<camera>``; the lock keeps a
second agent from sharing them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceid.errors import BadInputError
from faceid.monitor.events import MonitorEvent
from faceid.monitor.pipeline import Monitor, MonitorOptions, MonitorStats, PipelineOptions
from faceid.monitor.recognize import Recognizer, StoreRecognizer
from faceid.monitor.sinks import CallbackSink, OutboxSink, StoreSink
from faceid.monitor.sources import Backoff, open_source, parse_source
from faceid.thresholds import (
    MONITOR_CONNECT_ATTEMPTS,
    MONITOR_GALLERY_REFRESH_SECONDS,
    MONITOR_UPLOAD_BACKOFF_INITIAL_SECONDS,
    MONITOR_UPLOAD_BACKOFF_MAX_SECONDS,
)
from faceid.vision.detect import VIDEO_DETECTOR

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    source: str
    camera: str | None = None
    data_dir: str | os.PathLike[str] | None = None
    db: str | None = None
    state_dir: str | os.PathLike[str] | None = None
    server: str | None = None
    api_key: str | None = None
    detector: str = VIDEO_DETECTOR
    device: str = "cpu"
    threads: int | None = None
    options: PipelineOptions = field(default_factory=PipelineOptions)
    output: str | os.PathLike[str] | None = None
    preview_port: int | None = None
    preview_host: str = "127.0.0.1"
    drain_timeout: float | None = None  # connected: how long to wait for the queue to empty at the end
    gallery_refresh: float = MONITOR_GALLERY_REFRESH_SECONDS
    connect_attempts: int = MONITOR_CONNECT_ATTEMPTS
    upload_backoff: tuple[float, float] = (MONITOR_UPLOAD_BACKOFF_INITIAL_SECONDS, MONITOR_UPLOAD_BACKOFF_MAX_SECONDS)
    max_reconnects: int | None = None

    @property
    def connected(self) -> bool:
        return bool(self.server)


@dataclass
class AgentResult:
    stats: MonitorStats
    mode: str
    recognizer: dict[str, Any]
    queue: dict[str, int] | None = None  # connected: pending / sent / failed after the run
    drained: bool = True
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "stats": self.stats.to_dict(),
            "recognizer": self.recognizer,
            "queue": self.queue,
            "drained": self.drained,
            "output": self.output,
        }


def camera_name(spec: str) -> str:
    """A default camera id from the source: the file's stem, ``camera-0``, or the stream's host and path."""
    kind, target = parse_source(spec)
    if kind == "file":
        return Path(target).stem or "video"
    if kind == "camera":
        return "camera-" + re.sub(r"[^A-Za-z0-9]+", "-", target).strip("-")
    if kind == "gstreamer":
        return "gstreamer"
    host = re.sub(r"^[a-z0-9+.-]+://([^@/]*@)?", "", target, flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", host).strip("-")[:100] or "stream"


@contextlib.contextmanager
def state_lock(folder: Path) -> Iterator[None]:
    """Exclusive use of a state folder (released by the system if the process dies, even by SIGKILL)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / "agent.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInputError(
                f"another monitor is using {folder} (give this one another --camera or --state-dir)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


class Agent:
    """One configured run. ``on_event`` is called for every event after the sinks took it."""

    def __init__(self, config: AgentConfig, on_event: Callable[[MonitorEvent], None] | None = None) -> None:
        if bool(config.server) != bool(config.api_key):
            raise BadInputError("connected mode needs both --server and --api-key")
        self.config = config
        self.on_event = on_event
        self.camera = config.camera or camera_name(config.source)
        self.monitor: Monitor | None = None
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True
        if self.monitor is not None:
            self.monitor.stop()

    def _status(self) -> dict[str, Any]:
        stats = self.monitor.stats.to_dict() if self.monitor is not None else {}
        return {"camera": self.camera, **stats}

    def _state_dir(self) -> Path:
        if self.config.state_dir is not None:
            return Path(self.config.state_dir)
        from faceid.store.config import resolve_data_dir

        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.camera).strip("-") or "camera"
        return resolve_data_dir(self.config.data_dir) / "monitor" / slug

    def run(self) -> AgentResult:
        from faceid.vision.analyzer import Analyzer

        config = self.config
        options = MonitorOptions.for_camera(self.camera, config.options)
        # Detection (main loop) and descriptors (worker) run side by side, one thread each: more threads
        # per model would only fight over the same cores.
        threads = config.threads if config.threads is not None else 1
        analyzer = Analyzer(config.detector, device=config.device, threads=threads)
        state_dir = self._state_dir()
        with state_lock(state_dir), contextlib.ExitStack() as stack:
            source = open_source(
                config.source, connect_attempts=config.connect_attempts, max_reconnects=config.max_reconnects
            )
            stack.callback(source.close)
            outputs: list[Any] = []
            output_path = None
            if config.output is not None:
                from faceid.monitor.annotate import VideoWriter

                writer = VideoWriter(config.output, source.fps)
                stack.callback(writer.close)
                outputs.append(writer)
                output_path = str(writer.path)
            sinks: list[Any] = []
            uploader = None
            outbox = None
            if config.connected:
                recognizer_of, describe, uploader, outbox = self._connected(stack, analyzer, state_dir)
                sinks.append(OutboxSink(outbox))
                mode = "connected"
            else:
                from faceid.store import open_store

                store = stack.enter_context(open_store(config.data_dir, config.db, analyzer=analyzer))
                store_recognizer = StoreRecognizer(store, self.camera)
                store_recognizer.describe()  # loads the gallery now rather than on the first face
                sinks.append(StoreSink(store))

                def recognizer_of() -> Recognizer:
                    return store_recognizer

                describe = store_recognizer.describe
                mode = "standalone"
            if self.on_event is not None:
                sinks.append(CallbackSink(self.on_event))
            if config.preview_port is not None:
                from faceid.monitor.preview import PreviewServer

                preview = PreviewServer(
                    config.preview_port, config.preview_host, camera=self.camera, status=self._status
                )
                stack.callback(preview.close)
                outputs.append(preview)
            self.monitor = Monitor(source, analyzer, recognizer_of, sinks, options, outputs)
            log.info("monitoring %s as camera %r (%s)", source.name, self.camera, mode)
            if self._stopped:
                self.monitor.stop()
            stats = self.monitor.run()
            result = AgentResult(stats, mode, describe(), output=output_path)
            if uploader is not None and outbox is not None:
                result.drained = uploader.drain(config.drain_timeout)
                result.queue = outbox.counts()
                if not result.drained:
                    log.warning(
                        "%d event(s) not delivered yet; they stay queued in %s and go with the next run",
                        result.queue["pending"],
                        outbox.path,
                    )
            return result

    def _connected(
        self, stack: contextlib.ExitStack, analyzer: Any, state_dir: Path
    ) -> tuple[Callable[[], Recognizer], Callable[[], dict[str, Any]], Any, Any]:
        from faceid.monitor.client import ServerClient
        from faceid.monitor.connected import GallerySync, check_key
        from faceid.monitor.outbox import Outbox, Uploader

        config = self.config
        try:
            client = ServerClient(str(config.server), str(config.api_key))
        except ValueError as error:
            raise BadInputError(f"--server: {error}") from None
        check_key(client)
        outbox = Outbox(state_dir / "outbox.sqlite3")
        stack.callback(outbox.close)
        pruned = outbox.prune()
        if pruned:
            log.debug("pruned %d old sent event(s) from the queue", pruned)
        # The uploader starts before the gallery: events queued by an earlier run go out even if this
        # run cannot start (no gallery), and while the video is being processed.
        uploader = Uploader(outbox, client, Backoff(*config.upload_backoff))
        uploader.start()
        stack.callback(uploader.stop)
        pending = outbox.counts()["pending"]
        if pending:
            log.info("%d event(s) queued by an earlier run are being sent", pending)
        sync = GallerySync(
            client,
            analyzer.model_id,
            state_dir / "gallery.json",
            refresh_seconds=config.gallery_refresh,
            connect_attempts=config.connect_attempts,
            analyzer=analyzer,
        )
        sync.start()
        stack.callback(sync.stop)

        def recognizer_of() -> Recognizer:
            assert sync.recognizer is not None
            return sync.recognizer

        def describe() -> dict[str, Any]:
            return sync.recognizer.describe() if sync.recognizer else {}

        return recognizer_of, describe, uploader, outbox

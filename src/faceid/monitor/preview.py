"""Live preview: the annotated frames as MJPEG over HTTP (``--preview PORT``).

``GET /`` a bare page showing the stream; ``GET /stream.mjpg`` the stream (``multipart/x-mixed-replace``,
which every browser shows in an ``<img>``); ``GET /frame.jpg`` the latest frame; ``GET /status`` the
monitor's counters as JSON. A frame is encoded only while someone watches, at most
``MONITOR_PREVIEW_FPS`` times a second and once for all viewers, so the preview costs nothing unwatched.
The stream answers any origin (``Access-Control-Allow-Origin: *``): it shows what the camera shows and
nothing else, and the web app may sit on another host.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from faceid.monitor.events import encode_jpeg
from faceid.monitor.sources import Frame
from faceid.thresholds import MONITOR_PREVIEW_FPS

log = logging.getLogger(__name__)

BOUNDARY = "faceidframe"
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>faceid monitor - {camera}</title>
<style>body{{margin:0;background:#111;color:#ddd;font:14px sans-serif}}img{{display:block;max-width:100%;margin:auto}}
p{{text-align:center}}</style></head><body><p>{camera}</p><img src="stream.mjpg" alt="live preview"></body></html>
"""


class PreviewServer:
    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        camera: str = "",
        fps: float = MONITOR_PREVIEW_FPS,
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.camera = camera
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.status = status
        self.viewers = 0
        self._latest: np.ndarray | None = None
        self._jpeg: bytes | None = None
        self._sequence = 0
        self._encoded_at = 0.0
        self._condition = threading.Condition()
        self._closed = False
        preview = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("preview %s: " + format, self.client_address[0], *args)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", PAGE.format(camera=preview.camera).encode())
                elif path == "/stream.mjpg":
                    preview._stream(self)
                elif path == "/frame.jpg":
                    jpeg = preview._wait_jpeg(-1, timeout=5.0)
                    if jpeg is None:
                        self._send(503, "text/plain", b"no frame yet\n")
                    else:
                        self._send(200, "image/jpeg", jpeg)
                elif path == "/status":
                    body = json.dumps(preview.status() if preview.status else {}).encode()
                    self._send(200, "application/json", body)
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as error:
            from faceid.errors import BadInputError

            raise BadInputError(f"cannot serve the preview on {host}:{port}: {error.strerror or error}") from None
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="faceid-preview", daemon=True)
        self._thread.start()
        log.info("live preview on %s", self.url)

    # -- the producer side (the monitor loop) ----------------------------------------------------------------

    def wants(self, frame: Frame) -> bool:
        return self.viewers > 0 and time.monotonic() - self._encoded_at >= self.period

    def write(self, frame: Frame, annotated: np.ndarray) -> None:
        self._encoded_at = time.monotonic()
        jpeg = encode_jpeg(annotated, quality=75)
        with self._condition:
            self._jpeg = jpeg
            self._sequence += 1
            self._condition.notify_all()

    # -- the viewers' side -------------------------------------------------------------------------------------

    def _wait_jpeg(self, after: int, timeout: float) -> bytes | None:
        with self._condition:
            self.viewers += 1
            try:
                self._condition.wait_for(
                    lambda: self._closed or (self._jpeg is not None and self._sequence > after), timeout=timeout
                )
                return self._jpeg
            finally:
                self.viewers -= 1

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Access-Control-Allow-Origin", "*")
        handler.end_headers()
        with self._condition:
            self.viewers += 1
        seen = -1

        def fresh() -> bool:
            return self._closed or self._sequence > seen

        try:
            while not self._closed:
                with self._condition:
                    self._condition.wait_for(fresh, timeout=5.0)
                    if self._closed:
                        return
                    jpeg, current = self._jpeg, self._sequence
                if jpeg is None or current == seen:
                    continue
                seen = current
                handler.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            pass  # the viewer went away
        finally:
            with self._condition:
                self.viewers -= 1

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._server.shutdown()
        self._server.server_close()

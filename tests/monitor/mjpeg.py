"""A small MJPEG-over-HTTP camera for tests: serves JPEG frames as multipart/x-mixed-replace, can be
stopped and started again on the same port (a camera or encoder that drops off the network)."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image

BOUNDARY = "testframe"


def jpegs(frames: Sequence[np.ndarray]) -> list[bytes]:
    out = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=80)
        out.append(buffer.getvalue())
    return out


class MjpegCamera:
    def __init__(self, frames: Sequence[bytes], fps: float = 15.0, port: int = 0) -> None:
        self.frames = list(frames)
        self.fps = fps
        self.port = port
        self.served = 0
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> None:
        camera = self
        self._stop.clear()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                index = 0
                try:
                    while not camera._stop.is_set():
                        data = camera.frames[index % len(camera.frames)]
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                            + data
                            + b"\r\n"
                        )
                        self.wfile.flush()
                        camera.served += 1
                        index += 1
                        time.sleep(1.0 / camera.fps)
                except OSError:
                    pass

        class Server(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the listening socket and every open stream, as a camera losing power would."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        time.sleep(0.3)  # let the streaming handlers notice and close their sockets


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

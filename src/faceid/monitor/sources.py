"""Where frames come from: a video file, a camera, or a network stream (RTSP, HTTP MJPEG, HLS, ...).

``open_source(spec)`` reads the spec the way ``faceid monitor SOURCE`` does:

* digits (``0``) or a device path (``/dev/video0``): a camera, through OpenCV;
* ``gst:<pipeline>``: a GStreamer pipeline through OpenCV (Jetson CSI cameras; needs an OpenCV built with it);
* ``rtsp://``, ``http(s)://``, ``rtmp://``, ``udp://``, ``tcp://``, ``srt://``: a network stream, through PyAV;
* anything else: a video file, through PyAV.

A file is read once, start to end, and its frames carry their media time; a camera or stream is live: its
frames carry the time since the monitor started, and when it stops delivering (network drop, camera
unplugged, server restarted) it is reopened with exponential backoff, for ever. A source that cannot be
used at all fails at once with a clear message: a missing, corrupt or empty file raises
:class:`SourceError` (bad input, exit code 2); a live source still unreachable after the first
``connect_attempts`` raises :class:`SourceUnavailableError` (exit code 1).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from faceid.errors import BadInputError, FaceidError
from faceid.thresholds import (
    MONITOR_CONNECT_ATTEMPTS,
    MONITOR_RECONNECT_INITIAL_SECONDS,
    MONITOR_RECONNECT_MAX_SECONDS,
    MONITOR_STREAM_TIMEOUT_SECONDS,
)
from faceid.vision.image import sample_grid

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@:\s'\"]*):[^/@\s'\"]*@")


class SourceError(BadInputError):
    """The source cannot be used: no such file, not a video, corrupt, no frame, an unknown kind of source."""


class SourceUnavailableError(FaceidError):
    """A camera or stream could not be reached (after retrying)."""


class PictureConverter:
    """PyAV's scaler, one context per kind of output, kept from frame to frame for one source.

    Setting a scaler up costs about as much as converting a 640x360 frame (0.3-0.7 ms); PyAV's own
    ``frame.to_ndarray`` sets one up for every frame, and a frame asked for two kinds of output would set up
    two. Safe to call from several threads (one conversion at a time).
    """

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter

        self._lock = threading.Lock()
        self._whole, self._grid, self._shrink = VideoReformatter(), VideoReformatter(), VideoReformatter()

    def rgb(self, decoded: Any) -> np.ndarray:
        with self._lock:
            return np.asarray(self._whole.reformat(decoded, format="rgb24").to_ndarray())

    def grid(self, decoded: Any, rows: int, columns: int) -> np.ndarray:
        with self._lock:
            picture = self._grid.reformat(decoded, width=columns, height=rows, format="rgb24", interpolation="POINT")
            return np.asarray(picture.to_ndarray())

    def shrunk(self, decoded: Any, width: int, height: int) -> np.ndarray:
        with self._lock:
            picture = self._shrink.reformat(decoded, width=width, height=height, format="rgb24", interpolation="AREA")
            return np.asarray(picture.to_ndarray())


class Frame:
    """One picture of a source and when it was taken.

    A frame decoded by PyAV keeps the decoder's picture (YUV) until something asks for :attr:`rgb`. The
    monitor looks at most frames only through a few sampled pixels (:meth:`grid`, cut detection) and, on the
    frames it detects on, through a picture the size of the detector's input (:meth:`shrunk`): at 1920x1080
    the decoder's scaler makes that from the YUV picture in about 0.5 ms, where converting the frame to RGB
    and shrinking the array cost about 5 ms. Only frames with a face are converted whole.
    """

    __slots__ = ("_decoded", "_lock", "_rgb", "index", "time", "wall")

    def __init__(
        self,
        index: int,
        time: float,
        wall: datetime,
        rgb: np.ndarray | None = None,
        *,
        decoded: Any = None,
        converter: PictureConverter | None = None,
    ) -> None:
        if (rgb is None) == (decoded is None):
            raise ValueError("a frame is made from either an RGB array or a decoded picture")
        self.index = index  # frames delivered by this source so far, from 0
        self.time = time  # seconds: media time for a file, time since the source opened for a live one
        self.wall = wall  # when the frame was taken (a file: its start time plus the media time), UTC
        self._rgb = rgb
        # A PyAV VideoFrame and the source's converter, until converted.
        self._decoded: tuple[Any, PictureConverter] | None = (
            None if decoded is None else (decoded, converter or PictureConverter())
        )
        self._lock = threading.Lock()  # the monitor's loop and its descriptor worker both read frames

    def __repr__(self) -> str:
        return f"Frame(index={self.index}, time={self.time:.3f}, size={self.width}x{self.height})"

    @property
    def width(self) -> int:
        return int(self._decoded[0].width) if self._decoded else int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self._decoded[0].height) if self._decoded else int(self.rgb.shape[0])

    @property
    def rgb(self) -> np.ndarray:
        """The whole picture, H x W x 3 uint8 RGB."""
        with self._lock:
            if self._decoded is not None:
                decoded, converter = self._decoded
                self._rgb = converter.rgb(decoded)
                self._decoded = None  # hands the decoder's buffer back
            assert self._rgb is not None  # one of the two is always set
            return self._rgb

    @property
    def shrinks_cheaply(self) -> bool:
        """Whether :meth:`shrunk` and :meth:`grid` work from the decoder's picture (not converted yet)."""
        return self._decoded is not None

    def grid(self, rows: int, columns: int) -> np.ndarray:
        """Single pixels on a grid of about ``rows`` x ``columns`` (x 3 uint8), not averaged."""
        with self._lock:
            if self._decoded is not None:
                decoded, converter = self._decoded
                return converter.grid(decoded, rows, columns)
        return sample_grid(self.rgb, rows, columns)

    def shrunk(self, width: int, height: int) -> np.ndarray:
        """The picture at ``width`` x ``height``, each pixel the average of the pixels it covers."""
        with self._lock:
            if self._decoded is not None:
                decoded, converter = self._decoded
                return converter.shrunk(decoded, width, height)
        from PIL import Image

        return np.asarray(Image.fromarray(self.rgb).resize((width, height), Image.Resampling.BOX))


class Source(Protocol):
    name: str  # for people: the path, the URL without credentials, "camera 0"
    identity: str  # stable across runs; part of every event's idempotency key
    live: bool
    fps: float | None

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


@dataclass
class Backoff:
    """Exponential backoff with jitter: ``initial``, doubling per failure, at most ``maximum`` seconds."""

    initial: float = MONITOR_RECONNECT_INITIAL_SECONDS
    maximum: float = MONITOR_RECONNECT_MAX_SECONDS
    jitter: float = 0.2

    def delay(self, failures: int) -> float:
        base = min(self.maximum, self.initial * (2.0 ** max(failures - 1, 0)))
        # Jitter keeps many cameras that lost the same server from reconnecting in lock-step.
        return base * (1.0 + self.jitter * (2.0 * random.random() - 1.0))


def redact(url: str) -> str:
    """A URL without its password (RTSP URLs often carry credentials)."""
    return _CREDENTIALS.sub(r"\1\2:***@", url)


def _file_identity(path: Path) -> str:
    """Names a file's content cheaply: its size and a hash of its first and last MiB.

    The name alone would collide between two clips called ``door.mp4``; hashing a whole recording would
    cost seconds on a small board for every start.
    """
    size = path.stat().st_size
    digest = hashlib.sha256(f"{path.name}|{size}".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        if size > 2 << 20:
            handle.seek(-(1 << 20), os.SEEK_END)
            digest.update(handle.read(1 << 20))
    return f"file:{digest.hexdigest()[:20]}"


def _av_error_types() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.FFmpegError, OSError, EOFError, UnicodeDecodeError)


class FileSource:
    """A video file decoded with PyAV, every frame in order, each with its media time."""

    live = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import av

        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise SourceError(f"{self.path}: not a file")
        if self.path.stat().st_size == 0:
            raise SourceError(f"{self.path}: empty file")
        self.identity = _file_identity(self.path)
        self._lock = threading.Lock()
        self._active = self._closing = self._closed = False
        self._errors = _av_error_types()
        try:
            self._container: Any = av.open(str(self.path))
        except self._errors as error:
            raise SourceError(f"{self.path}: not a readable video ({_reason(error)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{self.path}: no video stream in the file")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"  # ffmpeg's own decoding threads; they run outside the GIL
        self._stream = stream
        self._converter = PictureConverter()
        rate = stream.average_rate or stream.guessed_rate
        self.fps: float | None = float(rate) if rate else None
        self.start_wall = self._start_time()
        self._frames = self._decode()
        # Decode the first frame now, so that a file that opens but holds no decodable picture fails here.
        try:
            self._first: Frame | None = next(self._frames)
        except StopIteration:
            self._close_container()
            raise SourceError(f"{self.path}: no frame could be decoded") from None

    def _start_time(self) -> datetime:
        """When the recording started: the container's creation time, else the file's modification time
        minus its duration. Either is the same on every run, which keeps event times reproducible."""
        created = (self._container.metadata or {}).get("creation_time")
        if created:
            try:
                parsed = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
            except ValueError:
                pass
        duration = float(self._container.duration or 0) / 1_000_000
        return datetime.fromtimestamp(self.path.stat().st_mtime, timezone.utc) - timedelta(seconds=duration)

    def _decode(self) -> Iterator[Frame]:
        origin: float | None = None
        index = 0
        try:
            for decoded in self._container.decode(self._stream):
                if decoded.time is not None:
                    origin = decoded.time if origin is None else origin
                    seconds = float(decoded.time - origin)
                else:
                    seconds = index / (self.fps or 30.0)
                wall = self.start_wall + timedelta(seconds=seconds)
                yield Frame(index, seconds, wall, decoded=decoded, converter=self._converter)
                index += 1
        except self._errors as error:
            if index == 0:
                raise SourceError(f"{self.path}: not a readable video ({_reason(error)})") from None
            # A damaged tail: keep what was read, say where it stopped.
            log.warning("%s: decoding stopped after %d frames: %s", self.path, index, _reason(error))

    def frames(self) -> Iterator[Frame]:
        self._active = True
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            for frame in self._frames:
                if self._closing:
                    return
                yield frame
        finally:
            self._active = False
            self._close_container()

    def close(self) -> None:
        """Safe from any thread: the thread reading frames closes the file itself, between two frames
        (FFmpeg must not have a container closed under a decode running on another thread)."""
        self._closing = True
        if not self._active:
            self._close_container()

    def _close_container(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._container.close()


def _reason(error: BaseException) -> str:
    """The first line of an error, without any password (FFmpeg quotes the URL it failed on)."""
    text = str(error).strip() or type(error).__name__
    return _CREDENTIALS.sub(r"\1\2:***@", text.splitlines()[0])[:300]


class _Connection(Protocol):
    def read(self) -> Iterator[np.ndarray | Any]: ...  # RGB arrays or PyAV's decoded frames

    def close(self) -> None: ...


class _AvConnection:
    """One open network stream (PyAV), yielding RGB frames until it ends or fails."""

    def __init__(self, url: str, timeout: float) -> None:
        import av

        options = {"rtsp_transport": "tcp"} if url.lower().startswith("rtsp") else {}
        # PyAV's timeout (seconds) bounds both opening and each read; without it a dead network would block
        # a read for ever and the reconnect logic would never run.
        self._container: Any = av.open(url, options=options, timeout=(timeout, timeout))
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{redact(url)}: no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.converter = PictureConverter()

    def read(self) -> Iterator[Any]:
        yield from self._container.decode(self._stream)  # converted to RGB by Frame, when asked

    def close(self) -> None:
        self._container.close()


class _CvConnection:
    """One open OpenCV capture (a camera index, a device path or a GStreamer pipeline)."""

    def __init__(self, target: int | str, api: int | None) -> None:
        import cv2

        self._cv2 = cv2
        self._capture = cv2.VideoCapture(target) if api is None else cv2.VideoCapture(target, api)
        if not self._capture.isOpened():
            self._capture.release()
            raise OSError(f"OpenCV could not open {target!r}")
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else None

    def read(self) -> Iterator[np.ndarray]:
        while True:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                return
            yield self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._capture.release()


class LiveSource:
    """A camera or a stream: reopened with backoff whenever it stops delivering frames."""

    live = True

    def __init__(
        self,
        name: str,
        identity: str,
        connect: Callable[[], Any],
        *,
        connect_attempts: int = MONITOR_CONNECT_ATTEMPTS,
        backoff: Backoff | None = None,
        max_reconnects: int | None = None,
    ) -> None:
        self.name = name
        self.identity = identity
        self._connect = connect
        self.connect_attempts = max(1, connect_attempts)
        self.backoff = backoff or Backoff()
        self.max_reconnects = max_reconnects
        self.reconnects = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._active = False
        self._connection: Any = None
        self.fps: float | None = None
        # Connect now so that a source that is not there at all fails before anything else starts.
        self._connection = self._open(initial=True)

    def _open(self, initial: bool) -> Any:
        failures = 0
        while not self._stop.is_set():
            try:
                connection = self._connect()
                self.fps = connection.fps or self.fps
                if not initial:
                    log.info("%s: reconnected after %d attempt(s)", self.name, failures + 1)
                return connection
            except SourceError:
                raise
            except Exception as error:
                failures += 1
                if initial and failures >= self.connect_attempts:
                    raise SourceUnavailableError(
                        f"{self.name}: could not connect after {failures} attempt(s): {_reason(error)}"
                    ) from None
                delay = self.backoff.delay(failures)
                log.warning("%s: cannot connect (%s); retrying in %.1f s", self.name, _reason(error), delay)
                self._stop.wait(delay)
        return None

    def frames(self) -> Iterator[Frame]:
        self._active = True
        try:
            yield from self._frames()
        finally:
            self._active = False
            self._close_connection()

    def _frames(self) -> Iterator[Frame]:
        started = time.monotonic()
        index = 0
        while not self._stop.is_set():
            connection = self._connection
            if connection is None:
                return
            delivered = 0
            try:
                for picture in connection.read():
                    if self._stop.is_set():
                        return
                    delivered += 1
                    taken = (index, time.monotonic() - started, datetime.now(timezone.utc))
                    if isinstance(picture, np.ndarray):
                        yield Frame(*taken, picture)
                    else:
                        yield Frame(*taken, decoded=picture, converter=connection.converter)
                    index += 1
                reason = "the stream ended"
            except Exception as error:
                reason = _reason(error)
            finally:
                self._close_connection()
            if self._stop.is_set():
                return
            self.reconnects += 1
            if self.max_reconnects is not None and self.reconnects > self.max_reconnects:
                log.warning("%s: %s; giving up after %d reconnects", self.name, reason, self.max_reconnects)
                return
            log.warning("%s: %s after %d frame(s); reconnecting", self.name, reason, delivered)
            self._stop.wait(self.backoff.delay(1))
            self._connection = self._open(initial=False)

    def close(self) -> None:
        """Safe from any thread: a thread reading frames notices within one read (at most the stream
        timeout) and closes the connection itself; FFmpeg must not have it closed under a running read."""
        self._stop.set()
        if not self._active:
            self._close_connection()

    def _close_connection(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def parse_source(spec: str) -> tuple[str, str]:
    """(kind, target): kind is "camera", "gstreamer", "stream" or "file"."""
    spec = spec.strip()
    if not spec:
        raise SourceError("the source is empty: give a video file, a camera index or a stream URL")
    if spec.isdigit():
        return "camera", spec
    if spec.startswith("gst:"):
        return "gstreamer", spec[4:].strip()
    if spec.startswith("/dev/video"):
        return "camera", spec
    match = _SCHEME.match(spec)
    if match:
        scheme = match.group(1).lower()
        if scheme == "file":
            return "file", spec[len("file://") :]
        if scheme not in NETWORK_SCHEMES:
            raise SourceError(f"{redact(spec)}: unsupported scheme {scheme!r} (use {', '.join(NETWORK_SCHEMES)})")
        return "stream", spec
    return "file", spec


def open_source(
    spec: str,
    *,
    connect_attempts: int = MONITOR_CONNECT_ATTEMPTS,
    backoff: Backoff | None = None,
    timeout: float = MONITOR_STREAM_TIMEOUT_SECONDS,
    max_reconnects: int | None = None,
) -> Source:
    """Open the source named by ``spec`` (see the module notes); raises SourceError / SourceUnavailableError."""
    kind, target = parse_source(spec)
    if kind == "file":
        return FileSource(target)
    if kind == "stream":
        name = redact(target)
        identity = "stream:" + hashlib.sha256(target.encode()).hexdigest()[:20]
        return LiveSource(
            name,
            identity,
            lambda: _AvConnection(target, timeout),
            connect_attempts=connect_attempts,
            backoff=backoff,
            max_reconnects=max_reconnects,
        )
    try:
        import cv2
    except ImportError:
        raise SourceError("cameras need OpenCV: pip install opencv-python-headless") from None
    if kind == "gstreamer":
        return LiveSource(
            "gstreamer pipeline",
            "gst:" + hashlib.sha256(target.encode()).hexdigest()[:20],
            lambda: _CvConnection(target, cv2.CAP_GSTREAMER),
            connect_attempts=connect_attempts,
            backoff=backoff,
            max_reconnects=max_reconnects,
        )
    camera: int | str = int(target) if target.isdigit() else target
    return LiveSource(
        f"camera {target}",
        f"camera:{target}",
        lambda: _CvConnection(camera, None),
        connect_attempts=connect_attempts,
        backoff=backoff,
        max_reconnects=max_reconnects,
    )

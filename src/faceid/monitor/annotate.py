"""Boxes and names drawn on frames, and the annotated video file (``--output out.mp4``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from faceid.errors import BadInputError
from faceid.monitor.sources import Frame

log = logging.getLogger(__name__)

COLOURS = {True: (46, 204, 113), False: (241, 148, 38), None: (180, 180, 180)}  # named, unknown, not yet known
VIDEO_CODECS = ("libx264", "h264", "mpeg4")  # the first one this PyAV build can encode with


@dataclass(frozen=True)
class Label:
    box: np.ndarray
    text: str
    known: bool | None


@cache
def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the small bitmap font
        return ImageFont.load_default()


def draw(rgb: np.ndarray, labels: list[Label]) -> np.ndarray:
    """A copy of the frame with each label's box and text."""
    if not labels:
        return rgb
    picture = Image.fromarray(rgb)
    pen = ImageDraw.Draw(picture)
    size = max(12, rgb.shape[0] // 30)
    font = _font(size)
    width = max(2, rgb.shape[0] // 240)
    for label in labels:
        colour = COLOURS[label.known]
        x1, y1, x2, y2 = (float(v) for v in label.box)
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        left, top, right, bottom = pen.textbbox((0, 0), label.text, font=font)
        text_w, text_h = right - left, bottom - top
        ty = y1 - text_h - 6 if y1 - text_h - 6 >= 0 else y2 + 2
        pen.rectangle([x1, ty, x1 + text_w + 6, ty + text_h + 6], fill=colour)
        pen.text((x1 + 3, ty + 3 - top), label.text, fill=(0, 0, 0), font=font)
    return np.asarray(picture)


class VideoWriter:
    """Writes annotated frames to a video file with PyAV (H.264 where the build has it, else MPEG-4)."""

    def __init__(self, path: str | os.PathLike[str], fps: float | None) -> None:
        import av

        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise BadInputError(f"{self.path}: the folder does not exist")
        self.fps = Fraction(fps or 30.0).limit_denominator(1001)
        try:
            self._container: Any = av.open(str(self.path), "w")
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise BadInputError(f"{self.path}: cannot write a video there ({error})") from None
        self._stream: Any = None
        self._last_pts = -1
        self.frames = 0

    def _open_stream(self, width: int, height: int) -> None:
        import av

        for codec in VIDEO_CODECS:
            if codec not in av.codecs_available:
                continue
            try:
                stream = self._container.add_stream(codec, rate=self.fps)
            except (av.error.FFmpegError, ValueError):
                continue
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.time_base = Fraction(1, 1) / self.fps
            if codec == "libx264":
                stream.options = {"preset": "veryfast", "crf": "23"}
            self._stream = stream
            log.debug("writing %s with %s", self.path, codec)
            return
        raise BadInputError("no video encoder available in this PyAV build")

    def wants(self, frame: Frame) -> bool:
        return True

    def write(self, frame: Frame, annotated: np.ndarray) -> None:
        import av

        # yuv420p wants even sides: drop the last row/column of an odd-sized source.
        height, width = annotated.shape[0] // 2 * 2, annotated.shape[1] // 2 * 2
        if self._stream is None:
            self._open_stream(width, height)
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(annotated[:height, :width]), format="rgb24")
        # Live frames arrive at irregular times (dropped frames included): place each at its own time.
        pts = max(self._last_pts + 1, round(frame.time * float(self.fps)))
        picture.pts = pts
        self._last_pts = pts
        for packet in self._stream.encode(picture):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        self._container.close()

"""Sources that fail: a clear error and the right exit code; a stream that drops is reopened with backoff."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceid.cli import main
from faceid.monitor import Agent, AgentConfig, PipelineOptions
from faceid.monitor.sources import Backoff, FileSource, SourceError, open_source

from .mjpeg import MjpegCamera, closed_port, jpegs


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["monitor", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.mp4", None, "no such file"),
        ("empty.mp4", b"", "empty file"),
        ("noise.mp4", bytes(range(256)) * 64, "not a readable video"),
    ],
)
def test_a_bad_file_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, err = run_cli(capsys, str(path), "--data-dir", str(tmp_path / "data"))
    assert code == 2
    assert f"faceid: error: {path}: {message}" in err


def test_a_truncated_video_is_bad_input(tmp_path: Path, media_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = (media_dir / "short_hamilton_clip.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(clip[:20_000])  # the index (moov) of this file is at its end: nothing can be decoded
    code, err = run_cli(capsys, str(path), "--data-dir", str(tmp_path / "data"))
    assert code == 2 and f"{path}:" in err and "error" in err


def test_an_unreachable_stream_fails_after_a_few_attempts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for url in (f"http://127.0.0.1:{closed_port()}/stream.mjpg", f"rtsp://user:secret@127.0.0.1:{closed_port()}/live"):
        started = time.monotonic()
        code, err = run_cli(capsys, url, "--data-dir", str(tmp_path / "data"), "--connect-attempts", "2")
        assert code == 1, err
        assert "could not connect after 2 attempt(s)" in err
        assert "secret" not in err  # credentials never reach the logs
        assert time.monotonic() - started < 60


def test_bad_options_are_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], media_dir: Path) -> None:
    clip = str(media_dir / "short_hamilton_clip.mp4")
    assert run_cli(capsys, clip, "--api-key", "fid_x")[0] == 2
    code, err = run_cli(capsys, clip, "--server", "http://127.0.0.1:1")
    assert code == 2 and "API key" in err
    assert run_cli(capsys, clip, "--server", "ftp://host", "--api-key", "k", "--state-dir", str(tmp_path))[0] == 2
    assert run_cli(capsys, "ftp://host/video")[0] == 2
    code, err = run_cli(capsys, clip, "--detect-tiles", "9")
    assert code == 2 and "--detect-tiles" in err


def test_a_stream_that_drops_is_reopened_with_backoff(media_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    from faceid.vision.image import load_image

    frames = [load_image(media_dir / "obama.jpg")[:360, :640]]
    camera = MjpegCamera(jpegs(frames), fps=20)
    camera.start()
    caplog.set_level(logging.INFO, logger="faceid.monitor.sources")
    source = open_source(camera.url, backoff=Backoff(0.2, 1.0, jitter=0.0), timeout=5.0)
    restarted = threading.Event()

    def drop_and_return() -> None:
        time.sleep(1.5)
        camera.stop()
        time.sleep(2.0)  # several refused connections: the backoff grows
        camera.start()
        restarted.set()

    threading.Thread(target=drop_and_return, daemon=True).start()
    after = 0
    try:
        for _ in source.frames():
            if restarted.is_set():
                after += 1
                if after >= 10:
                    break
    finally:
        source.close()
    assert source.reconnects == 1 and after == 10
    delays = [float(d) for d in re.findall(r"retrying in ([0-9.]+) s", caplog.text)]
    assert len(delays) >= 3 and delays[:3] == [0.2, 0.4, 0.8], caplog.text
    assert "reconnected after" in caplog.text


def test_the_monitor_keeps_running_through_a_drop(tmp_path: Path, media_dir: Path) -> None:
    """The whole agent on a live MJPEG stream that goes away for a while: it carries on and reports faces."""
    from faceid.vision.image import load_image

    portrait = load_image(media_dir / "lin-manuel-miranda.png")
    camera = MjpegCamera(jpegs([portrait]), fps=10)
    camera.start()
    events: list[Any] = []
    agent = Agent(
        AgentConfig(
            source=camera.url, camera="door", data_dir=tmp_path / "data", options=PipelineOptions(max_seconds=8.0)
        ),
        on_event=events.append,
    )

    def drop_and_return() -> None:
        time.sleep(3.0)
        camera.stop()
        time.sleep(1.5)
        camera.start()

    threading.Thread(target=drop_and_return, daemon=True).start()
    try:
        result = agent.run()
    finally:
        camera.stop()
    assert result.stats.reconnects >= 1
    # the drop is longer than a track may pause: the face before and the face after are two appearances
    assert len(events) >= 2 and all(not e.known for e in events)  # nobody is enrolled in this store
    assert all(e.snapshot is not None for e in events)


def test_a_file_source_reports_media_time(media_dir: Path) -> None:
    source = FileSource(media_dir / "short_hamilton_clip.mp4")
    times = [f.time for _, f in zip(range(31), source.frames(), strict=False)]
    source.close()
    assert times[0] == 0.0 and times[30] == pytest.approx(30 / 29.97, abs=1e-3)
    assert source.fps == pytest.approx(29.97, abs=0.01)
    with pytest.raises(SourceError):
        FileSource(media_dir)


def test_a_decoded_frame_is_converted_only_when_asked(media_dir: Path) -> None:
    import av
    from PIL import Image

    from faceid.vision.image import sample_grid

    with av.open(str(media_dir / "short_hamilton_clip.mp4")) as container:
        decoded = container.decode(video=0)
        eager = [next(decoded).to_ndarray(format="rgb24") for _ in range(5)]
    source = FileSource(media_dir / "short_hamilton_clip.mp4")
    frames = [f for _, f in zip(range(5), source.frames(), strict=False)]
    source.close()
    for frame, rgb in zip(frames, eager, strict=True):
        assert frame.shrinks_cheaply and (frame.width, frame.height) == (640, 360)
        # Sampled and shrunk by the decoder's scaler, from the YUV picture: the same pixels within rounding.
        grid = frame.grid(18, 32).astype(int)
        assert grid.shape == (18, 32, 3) and np.abs(grid - sample_grid(rgb, 18, 32)).mean() < 3
        small = frame.shrunk(192, 108).astype(int)
        box = np.asarray(Image.fromarray(rgb).resize((192, 108), Image.Resampling.BOX)).astype(int)
        assert small.shape == (108, 192, 3) and np.abs(small - box).mean() < 2
        assert np.array_equal(frame.rgb, rgb)  # converted whole: exactly PyAV's own conversion
        assert not frame.shrinks_cheaply and np.array_equal(frame.grid(18, 32), sample_grid(rgb, 18, 32))


def test_a_big_frame_is_detected_on_the_decoders_small_picture(tmp_path: Path, media_dir: Path) -> None:
    """A 1920x1080 frame reaches the detector shrunk by the decoder; the faces come back in the frame's pixels."""
    import av
    from PIL import Image

    from faceid.monitor.pipeline import detect_in_frame
    from faceid.vision.blazeface import BlazeFaceDetector
    from faceid.vision.boxes import iou

    big = tmp_path / "big.mp4"
    with av.open(str(media_dir / "short_hamilton_clip.mp4")) as reader, av.open(str(big), "w") as writer:
        stream = writer.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for i, decoded in enumerate(reader.decode(video=0)):
            if i in (100, 230):  # Miranda in close-up; the audience
                picture = decoded.to_image().resize((1920, 1080), Image.Resampling.BILINEAR)
                for packet in stream.encode(av.VideoFrame.from_image(picture)):
                    writer.mux(packet)
        for packet in stream.encode():
            writer.mux(packet)
    detector = BlazeFaceDetector(threads=1)
    source = FileSource(big)
    for frame in source.frames():
        assert frame.shrinks_cheaply
        found = detect_in_frame(detector, frame)
        assert frame.shrinks_cheaply, "a frame is converted whole only for a face's quality and descriptor"
        whole = detector.detect(frame.rgb)
        assert len(found) == len(whole) >= 1
        # The two inputs differ by rounding (an area average from YUV against PIL's box reduction from RGB):
        # the same faces at the same places (a weak detection, score ~0.5, moves by up to 7% of its size).
        for mine, theirs in zip(found, whole, strict=True):
            assert iou(mine.box, theirs.box) > 0.8 and abs(mine.score - theirs.score) < 0.1

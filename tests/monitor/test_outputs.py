"""What a person watches: the annotated video (``--output``) and the live MJPEG preview (``--preview``)."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from faceid.monitor import Agent, AgentConfig, PipelineOptions
from support.server_process import free_port

from .conftest import CLIP, copy_store


def read_video(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_annotated_video_and_live_preview(tmp_path: Path, enrolled_store_dir: Path, media_dir: Path) -> None:
    data_dir = copy_store(enrolled_store_dir, tmp_path / "store")
    port = free_port()
    seen: dict[str, Any] = {}

    def watch() -> None:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "stream" not in seen:
            try:
                with urllib.request.urlopen(f"{base}/", timeout=5) as page:
                    seen["page"] = page.read().decode()
                with urllib.request.urlopen(f"{base}/frame.jpg", timeout=10) as frame:
                    seen["frame"] = (frame.headers["Content-Type"], frame.read())
                with urllib.request.urlopen(f"{base}/status", timeout=5) as status:
                    seen["status"] = json.loads(status.read())
                with urllib.request.urlopen(f"{base}/stream.mjpg", timeout=10) as stream:
                    seen["stream_type"] = stream.headers["Content-Type"]
                    seen["stream"] = stream.read(30_000)
            except OSError:
                time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    output = tmp_path / "annotated.mp4"
    config = AgentConfig(
        source=str(media_dir / CLIP),
        camera="hamilton-preview",
        data_dir=data_dir,
        output=output,
        preview_port=port,
        options=PipelineOptions(realtime=True, max_seconds=4.0),  # the opening shots and the start of the close-up
    )
    result = Agent(config).run()
    watcher.join(timeout=30)

    written = read_video(output)
    assert len(written) == result.stats.frames and written[0].shape == (360, 640, 3)
    from faceid.monitor.sources import FileSource

    source = FileSource(media_dir / CLIP)
    frames = source.frames()
    original = [next(frames).rgb for _ in range(len(written))]
    frames.close()
    # Frame 100 is Miranda's close-up, his face at x 191-274, y 95-178: the label is drawn above the box.
    label = (slice(72, 94), slice(195, 270))
    changed = np.abs(written[100][label].astype(int) - original[100][label].astype(int)).mean()
    untouched = np.abs(written[100][300:, 500:].astype(int) - original[100][300:, 500:].astype(int)).mean()
    assert changed > 40 and untouched < 8, (changed, untouched)

    assert "stream.mjpg" in seen["page"]
    kind, jpeg = seen["frame"]
    assert kind == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
    assert seen["status"]["camera"] == "hamilton-preview" and seen["status"]["frames"] > 0
    assert seen["stream_type"].startswith("multipart/x-mixed-replace")
    assert b"--faceidframe\r\nContent-Type: image/jpeg" in seen["stream"]


def test_unknown_faces_kept_without_images_or_dropped(
    tmp_path: Path, enrolled_store_dir: Path, media_dir: Path
) -> None:
    """With Lin-Manuel Miranda left out of the gallery, the opening shots (0-2.3 s) hold only faces it does not
    name (Miranda on the stage, a profile, Alex Lacamoire at the piano, whom one studio photo does not name)."""
    from faceid.store import Store

    data_dir = copy_store(enrolled_store_dir, tmp_path / "store")
    with Store(data_dir) as store:
        store.delete_person("Lin-Manuel Miranda")
    counts = {}
    for policy in ("no-snapshot", "drop"):
        events: list[Any] = []
        config = AgentConfig(
            source=str(media_dir / CLIP),
            camera=f"policy-{policy}",
            data_dir=data_dir,
            options=PipelineOptions(unknown=policy, max_seconds=2.3),
        )
        stats = Agent(config, on_event=events.append).run().stats
        assert stats.unknown == len(events) and stats.known == 0
        counts[policy] = len(events)
        with Store(data_dir) as store:
            recorded = store.list_events(source=f"policy-{policy}")
        assert len(recorded) == len(events)
        assert all(r.snapshot_sha256 is None and "crop_jpeg" not in r.metadata for r in recorded)
    assert counts["no-snapshot"] >= 2 and counts["drop"] == 0

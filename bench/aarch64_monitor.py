"""The standalone monitor end to end, as run by bench/aarch64_check.sh under aarch64 emulation.

    python bench/aarch64_monitor.py MEDIA_DIR

Enrolls Lin-Manuel Miranda and Barack Obama from their photos on a fresh store (no calibration step: the
shipped calibration decides), runs the monitor on the Hamilton clip and prints the machine, the versions and
the events. Any platform runs it; under emulation it shows that the aarch64 wheels do the whole job.
"""

from __future__ import annotations

import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    media = Path(sys.argv[1])
    logging.basicConfig(level=logging.WARNING)
    import av
    import numpy
    import onnxruntime

    from faceid.monitor import Agent, AgentConfig
    from faceid.store import Store

    print(f"machine {platform.machine()}, Python {platform.python_version()}", flush=True)
    print(f"onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}, av {av.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "store"
        started = time.time()
        with Store(data) as store:
            for name, photo in [("Lin-Manuel Miranda", "lin-manuel-miranda.png"), ("Barack Obama", "obama.jpg")]:
                store.enroll(name, media / photo)
        print(f"enrolled 2 people in {time.time() - started:.0f} s", flush=True)
        events: list[Any] = []
        config = AgentConfig(source=str(media / "short_hamilton_clip.mp4"), camera="aarch64", data_dir=data)
        stats = Agent(config, on_event=events.append).run().stats
        print(
            f"monitor: {stats.frames} frames, {stats.media_seconds:.1f} s of video in {stats.seconds:.0f} s, "
            f"{stats.embeddings} descriptors, {stats.events} events",
            flush=True,
        )
        for event in sorted(events, key=lambda e: e.media_start):
            print(f"  {event.media_start:5.2f}-{event.media_end:5.2f} s  {event.name or 'unknown'}", flush=True)


if __name__ == "__main__":
    main()

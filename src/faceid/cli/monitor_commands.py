"""``faceid monitor SOURCE``: watch a video file, camera or stream and report each appearance of a face."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from types import FrameType
from typing import Any

from faceid.cli.common import EXIT_ERROR, CommandError, add_json_option, add_store_location
from faceid.settings import current
from faceid.thresholds import (
    MONITOR_CONNECT_ATTEMPTS,
    MONITOR_DETECT_FPS,
    MONITOR_EMBED_INTERVAL_SECONDS,
    MONITOR_GALLERY_REFRESH_SECONDS,
    MONITOR_MAX_EMBEDDINGS_PER_TRACK,
    MONITOR_UPLOAD_BACKOFF_INITIAL_SECONDS,
    MONITOR_UPLOAD_BACKOFF_MAX_SECONDS,
)

EPILOG = """
SOURCE is a video file, a camera index (0) or device (/dev/video0), a stream URL (rtsp://, http://...),
or gst:<pipeline> (GStreamer, with an OpenCV built for it). Standalone, events go into the local store
(--data-dir / --db); with --server URL and --api-key KEY (or $FACEID_API_KEY; scopes read + ingest)
the gallery comes from the server and events are queued on disk and uploaded, retried until delivered.
Exit codes: 0 done, 1 source or server unreachable / events left queued, 2 bad input (missing or corrupt
file, bad option), 130 interrupted.
"""


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError("must not be negative")
        return value

    return parse


def _event_line(event: Any) -> str:
    from faceid.store.records import stranger_odds

    who = event.name if event.known else event.outcome
    confidence = f" ({stranger_odds(event.stranger_rate)})" if event.known else ""
    distance = f" distance {event.distance:.3f}" if event.distance is not None else ""
    return (
        f"{event.media_start:8.2f}-{event.media_end:6.2f} s  {event.camera}  track {event.track_id}: {who}"
        f"{confidence}{distance}  ({event.embedded} frame(s) voted, {event.detections} detections)"
    )


def _cmd_monitor(args: argparse.Namespace) -> int:
    from faceid.monitor import Agent, AgentConfig, PipelineOptions
    from faceid.vision.tiles import MAX_TILES

    if args.preview is not None and not 0 <= args.preview <= 65535:
        raise CommandError("--preview takes a TCP port (0-65535)")
    api_key = args.api_key or (current().api_key if args.server else None)
    if args.server and not api_key:
        raise CommandError("--server needs an API key: --api-key KEY or $FACEID_API_KEY")
    if args.api_key and not args.server:
        raise CommandError("--api-key is for connected mode: give --server URL too")
    if args.embed_interval <= 0:
        raise CommandError("--embed-interval must be above 0")
    if args.max_embeddings < 1:
        raise CommandError("--max-embeddings must be at least 1")
    if not 1 <= args.detect_tiles <= MAX_TILES:
        raise CommandError(f"--detect-tiles takes 1 to {MAX_TILES} (N x N tiles)")

    def on_event(event: Any) -> None:
        if args.json:
            sys.stdout.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
        else:
            sys.stdout.write(_event_line(event) + "\n")
        sys.stdout.flush()

    config = AgentConfig(
        source=args.source,
        camera=args.camera,
        data_dir=args.data_dir,
        db=args.db,
        state_dir=args.state_dir,
        server=args.server,
        api_key=api_key,
        detector=args.detector,
        device=args.device,
        threads=args.threads,
        options=PipelineOptions(
            detect_fps=args.detect_fps,
            embed_interval=args.embed_interval,
            max_embeddings=args.max_embeddings,
            unknown=args.unknown,
            realtime=args.realtime,
            max_seconds=args.max_seconds,
            detect_tiles=args.detect_tiles,
        ),
        output=args.output,
        preview_port=args.preview,
        preview_host=args.preview_host,
        drain_timeout=args.drain_timeout,
        gallery_refresh=args.gallery_refresh,
        connect_attempts=args.connect_attempts,
        upload_backoff=(min(MONITOR_UPLOAD_BACKOFF_INITIAL_SECONDS, args.upload_retry_max), args.upload_retry_max),
    )
    agent = Agent(config, on_event=on_event)

    def graceful(signum: int, _frame: FrameType | None) -> None:
        # The first signal finishes the open tracks (their events are emitted) and ends the run; a second
        # one interrupts at once. Queued events are safe on disk either way.
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        sys.stderr.write("faceid: stopping (again to interrupt)\n")
        agent.stop()

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
    result = agent.run()
    stats = result.stats
    sys.stderr.write(
        f"faceid monitor: {stats.frames} frames ({stats.media_seconds:.1f} s of video) in {stats.seconds:.1f} s "
        f"= {stats.fps:.1f} fps, {stats.realtime_factor:.2f}x real time; {stats.events} event(s): "
        f"{stats.known} named, {stats.unknown} unknown; {stats.embeddings} faces embedded\n"
    )
    if stats.dropped_frames or stats.reconnects:
        sys.stderr.write(
            f"faceid monitor: {stats.dropped_frames} frame(s) dropped (the pipeline fell behind the source), "
            f"{stats.reconnects} reconnection(s)\n"
        )
    if result.output:
        sys.stderr.write(f"faceid monitor: annotated video written to {result.output}\n")
    if result.queue is not None:
        sys.stderr.write(
            f"faceid monitor: queue: {result.queue['sent']} sent, {result.queue['pending']} pending, "
            f"{result.queue['failed']} refused by the server\n"
        )
        if not result.drained:
            sys.stderr.write("faceid: error: the server did not take every event in time; they stay queued\n")
            return EXIT_ERROR
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from faceid.models.runtime import DEVICE_PROVIDERS
    from faceid.monitor.pipeline import UNKNOWN_POLICIES
    from faceid.vision.detect import DETECTORS, VIDEO_DETECTOR

    parser = subparsers.add_parser(
        "monitor",
        help="watch a video, camera or stream; one event per appearance of a face",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SOURCE", help="video file, camera index, stream URL or gst:PIPELINE")
    parser.add_argument("--camera", default=None, help="camera id recorded with each event (default: from SOURCE)")
    add_json_option(parser)
    parser.set_defaults(handler=_cmd_monitor)

    where = parser.add_argument_group("where events go")
    add_store_location(where, when="standalone")
    where.add_argument("--server", default=None, metavar="URL", help="connected: the faceid server")
    where.add_argument("--api-key", default=None, metavar="KEY", help="connected: API key (or $FACEID_API_KEY)")
    where.add_argument("--state-dir", default=None, help="queue, cached gallery (default: DATA_DIR/monitor/CAMERA)")
    where.add_argument(
        "--drain-timeout",
        type=_positive(float),
        default=None,
        metavar="S",
        help="connected: at the end, wait at most S seconds for the server to take the queue (default: until done)",
    )
    where.add_argument(
        "--gallery-refresh",
        type=_positive(float),
        default=MONITOR_GALLERY_REFRESH_SECONDS,
        metavar="S",
        help="connected: ask the server for gallery changes every S seconds (0: never)",
    )
    where.add_argument(
        "--upload-retry-max",
        type=_positive(float),
        default=MONITOR_UPLOAD_BACKOFF_MAX_SECONDS,
        metavar="S",
        help="connected: longest wait between upload retries",
    )
    where.add_argument(
        "--unknown",
        choices=UNKNOWN_POLICIES,
        default="keep",
        help="unknown faces: keep (event with snapshot and crop, to enroll from), no-snapshot, drop (no event)",
    )

    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--output", default=None, metavar="OUT.mp4", help="write the annotated video here")
    outputs.add_argument("--preview", type=int, default=None, metavar="PORT", help="live MJPEG preview on this port")
    outputs.add_argument("--preview-host", default="127.0.0.1", help="preview address (0.0.0.0: every interface)")

    pipeline = parser.add_argument_group("pipeline")
    pipeline.add_argument("--detector", choices=sorted(DETECTORS), default=VIDEO_DETECTOR, help="face detector")
    pipeline.add_argument(
        "--device", choices=sorted(DEVICE_PROVIDERS), default="cpu", help="ONNX Runtime execution providers"
    )
    pipeline.add_argument(
        "--threads", type=int, default=None, help="threads per model (default 1: two models run side by side)"
    )
    pipeline.add_argument(
        "--detect-fps",
        type=_positive(float),
        default=MONITOR_DETECT_FPS,
        metavar="F",
        help="run the detector F times per second of video (0: every frame)",
    )
    pipeline.add_argument(
        "--detect-tiles",
        type=int,
        default=1,
        metavar="N",
        help="also detect in N x N overlapping tiles of each frame: faces under ~100 px in a 1080p frame "
        "(N^2 + 1 detector runs; 1-4, default 1: the whole frame only)",
    )
    pipeline.add_argument(
        "--embed-interval",
        type=float,
        default=MONITOR_EMBED_INTERVAL_SECONDS,
        metavar="S",
        help="per track, embed the best face of every S seconds",
    )
    pipeline.add_argument(
        "--max-embeddings",
        type=int,
        default=MONITOR_MAX_EMBEDDINGS_PER_TRACK,
        metavar="N",
        help="per track, at most N faces embedded",
    )
    pipeline.add_argument("--realtime", action="store_true", help="pace a video file at its frame rate, like a camera")
    pipeline.add_argument(
        "--max-seconds", type=_positive(float), default=None, metavar="S", help="stop after S s of video"
    )
    pipeline.add_argument(
        "--connect-attempts",
        type=int,
        default=MONITOR_CONNECT_ATTEMPTS,
        metavar="N",
        help="attempts at the first connection to a camera, stream or server before giving up",
    )

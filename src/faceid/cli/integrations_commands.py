"""``faceid frigate``: the Frigate bridge (names Frigate's people, sets its sub-labels, records events)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from faceid.cli.common import EXIT_OK, CommandError, add_store_location, echo, print_json

log = logging.getLogger(__name__)


def _cmd_frigate(args: argparse.Namespace) -> int:
    from faceid.integrations import MqttTarget
    from faceid.integrations.frigate import FrigateApi, FrigateBridge, FrigateListener
    from faceid.store import Store

    if args.max_attempts < 1:
        raise CommandError("--max-attempts must be at least 1")
    target = MqttTarget.parse(args.mqtt)
    if target.prefix == "faceid" and "/" not in args.mqtt.split("://", 1)[-1]:
        target = MqttTarget.parse(args.mqtt.rstrip("/") + "/frigate")  # Frigate's default topic prefix
    api = FrigateApi(args.url)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_a: stop.set())
    with Store(args.data_dir, args.db) as store:
        bridge = FrigateBridge(store, api, camera_prefix=args.camera_prefix, max_attempts=args.max_attempts)
        listener = FrigateListener(bridge, target)
        listener.start()
        echo(f"faceid frigate: {target.redacted()} -> {args.url}, events into {store!r} (Ctrl-C ends)", err=True)
        try:
            stop.wait(args.seconds) if args.seconds else stop.wait()
        finally:
            listener.drain(timeout=10)
            listener.stop()
        stats: dict[str, Any] = bridge.stats.to_dict()
    if args.json:
        print_json(stats)
    else:
        echo(" ".join(f"{k}={v}" for k, v in stats.items() if v is not None), err=True)
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction) -> None:
    frigate = subparsers.add_parser("frigate", help="name the people Frigate sees (sub-labels) and record them")
    frigate.add_argument("--url", required=True, help="Frigate's address, e.g. http://frigate:5000")
    frigate.add_argument(
        "--mqtt",
        required=True,
        metavar="URL",
        help="the broker Frigate publishes to: mqtt://user:pass@host:1883[/frigate]",
    )
    frigate.add_argument("--camera-prefix", default="", help="put before Frigate's camera names in faceid's events")
    frigate.add_argument("--max-attempts", type=int, default=5, help="snapshots tried per Frigate object (default 5)")
    frigate.add_argument("--seconds", type=float, default=0, help=argparse.SUPPRESS)  # tests: end after this long
    add_store_location(frigate)
    frigate.add_argument("--json", action="store_true", help="print the run's counts as JSON at the end")
    frigate.set_defaults(handler=_cmd_frigate)

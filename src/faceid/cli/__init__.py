"""The ``faceid`` command line. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from faceid.cli.common import EXIT_BAD_INPUT, EXIT_ERROR, CommandError
from faceid.errors import BadInputError, FaceidError

# Modules that add sub-commands; each defines ``register(subparsers)``.
COMMAND_MODULES = [
    "faceid.cli.vision_commands",
    "faceid.cli.store_commands",
    "faceid.cli.server_commands",
    "faceid.cli.train_commands",
    "faceid.cli.monitor_commands",
    "faceid.cli.viz_commands",
    "faceid.cli.integrations_commands",
    "faceid.cli.inbox_commands",
]

log = logging.getLogger("faceid")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceid", description="Self-hosted face identity.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as missing:
            # A command group whose optional dependencies are not installed is left out, not fatal.
            log.debug("commands of %s unavailable: %s", module_name, missing)
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except (BadInputError, CommandError) as error:
        print(f"faceid: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FaceidError as error:
        print(f"faceid: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("faceid: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

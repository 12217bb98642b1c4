"""The ``faceid`` command line. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from faceid.cli.common import EXIT_BAD_INPUT, EXIT_ERROR, CommandError
from faceid.cli.extras import install_hint, missing_extra
from faceid.errors import BadInputError, FaceidError
from faceid.settings import VARIABLES

# Modules that add sub-commands (each defines ``register(subparsers)``), the top-level commands each adds and
# the extra the group needs (None: the core). When a module cannot be loaded for want of an optional package,
# its commands stay listed and say which extra to install, rather than vanish.
COMMAND_MODULES: list[tuple[str, tuple[str, ...], str | None]] = [
    ("faceid.cli.vision_commands", ("detect", "embed", "verify", "eval", "models", "demo"), None),
    ("faceid.cli.store_commands", ("people", "identify", "gallery", "events", "calibrate", "bench"), "store"),
    ("faceid.cli.server_commands", ("serve", "user", "apikey"), "server"),
    ("faceid.cli.train_commands", ("finetune", "versions"), "train"),
    # Connected to a server: the agent extra; standalone (the local store): store and video.
    ("faceid.cli.monitor_commands", ("monitor",), "agent"),
    ("faceid.cli.viz_commands", ("viz", "bench"), "viz"),
    ("faceid.cli.integrations_commands", ("frigate",), "integrations"),
    ("faceid.cli.inbox_commands", ("visitors", "correct", "search", "retention", "people", "bench"), "store"),
]

log = logging.getLogger("faceid")


def _unavailable(hint: str) -> NoReturn:
    raise CommandError(hint)


def _register_missing(subparsers: argparse._SubParsersAction, commands: Sequence[str], hint: str) -> None:
    """Stand-ins for commands whose module needs an extra that is not installed: listed in --help, and
    exit 2 with the extra to install, whatever their arguments."""
    for command in commands:
        if command in subparsers.choices:
            continue  # ``bench``: another module registered the group
        stub = subparsers.add_parser(command, help=f"(not installed: {hint.rsplit(': ', 1)[-1]})", add_help=False)
        stub.set_defaults(handler=lambda _args, hint=hint: _unavailable(hint), accepts_any=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceid",
        description="Self-hosted face identity.",
        epilog="environment (an option given on the command line wins):\n"
        + "\n".join(f"  {name:<22} {text}" for name, text in VARIABLES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name, commands, group_extra in COMMAND_MODULES:
        try:
            importlib.import_module(module_name).register(subparsers)
        except ModuleNotFoundError as missing:
            # Only a missing optional package may leave a group out; anything else is a bug and surfaces.
            extra = missing_extra(missing)
            if extra is None:
                raise
            log.debug("commands of %s unavailable: %s", module_name, missing)
            # The group's own extra brings what is missing with it (server includes store, and so on).
            _register_missing(subparsers, commands, install_hint(missing, group_extra or extra))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Known arguments first: a stand-in command takes whatever follows it; any other command is strict.
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_any", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
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
    except ModuleNotFoundError as missing:
        # A command that reaches an optional package only when it runs (a video source, a PNG, PostgreSQL).
        extra = missing_extra(missing)
        if extra is None:
            raise
        print(f"faceid {args.command}: error: {install_hint(missing, extra)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("faceid: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

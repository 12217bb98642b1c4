"""Helpers shared by the command modules: output, exit codes, common options. Every command module takes
them from here, so that a line, a progress bar or ``--data-dir`` means the same in every command."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2


class CommandError(Exception):
    """A usage or input problem detected by a command; reported on stderr with exit code 2."""


ArgumentTarget = argparse.ArgumentParser | argparse._ArgumentGroup

DATA_DIR_HELP = "store folder (default: $FACEID_DATA_DIR or a per-user folder)"
DB_HELP = "database URL, e.g. postgresql://user@host/db, or a SQLite file (default: $FACEID_DB or SQLite in DATA_DIR)"


def add_json_option(parser: ArgumentTarget) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def add_store_location(parser: ArgumentTarget, when: str | None = None) -> None:
    """``--data-dir`` and ``--db``: where the store is (``faceid.store.config`` resolves them). ``when`` says
    when they apply, for commands that use a store only in one mode ("standalone", "with --model")."""
    prefix = f"{when}: " if when else ""
    parser.add_argument("--data-dir", default=None, help=prefix + DATA_DIR_HELP)
    parser.add_argument("--db", default=None, metavar="URL", help=prefix + DB_HELP)


def echo(text: str = "", err: bool = False) -> None:
    """One line for a person to read: on stdout, or on stderr (``err``) where stdout carries data.
    ``--json`` output goes through :func:`print_json`."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def progress_wanted(args: argparse.Namespace) -> bool:
    """Progress bars on stderr only for a person at a terminal: not with ``--json`` or ``--quiet``, nor into a
    log file or a pipe."""
    return not getattr(args, "json", False) and not getattr(args, "quiet", False) and sys.stderr.isatty()


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.floating | np.integer):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, default=_default, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()

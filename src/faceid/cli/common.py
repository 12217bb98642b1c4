"""Helpers shared by the command modules: JSON output, exit codes, common options."""

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


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


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

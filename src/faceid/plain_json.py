"""JSON of what numpy, pathlib and datetime hand us: the ``default=`` hook of every report and JSON column."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np


def json_default(value: Any) -> Any:
    """Arrays as lists, numpy numbers and booleans as Python's, paths and times as text; anything else is
    refused (a TypeError, as json.dumps expects)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.floating | np.integer | np.bool_):
        return value.item()
    if isinstance(value, Path | datetime):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")

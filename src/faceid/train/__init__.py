"""Fine-tuning the face descriptor (optional: needs PyTorch, ``pip install faceid[train]``).

Only the modules that train import torch; the data readers, chip extraction, report and version
bookkeeping do not, so the rest of faceid (and ``faceid finetune --help``) works without it.
"""

from __future__ import annotations

import importlib.util

from faceid.errors import ModelUnavailableError

TORCH_HINT = "fine-tuning needs PyTorch: pip install 'faceid[train]' (or pip install torch)"


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def require_torch() -> None:
    """Raise :class:`ModelUnavailableError` with an install hint unless torch can be imported."""
    if not torch_available():
        raise ModelUnavailableError(TORCH_HINT)
    try:
        import torch  # noqa: F401
    except ImportError as error:  # installed but broken (missing shared library, wrong wheel)
        raise ModelUnavailableError(f"{TORCH_HINT} (importing torch failed: {error})") from None

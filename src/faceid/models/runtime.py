"""Inference sessions behind one small interface (ONNX Runtime today; other engines can drop in)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

# Names accepted by ``--device`` and ``Analyzer(device=...)``, mapped to ONNX Runtime providers.
DEVICE_PROVIDERS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class InferenceSession(Protocol):
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def default_threads() -> int:
    env = os.environ.get("FACEID_THREADS")
    return int(env) if env else 0  # 0 lets ONNX Runtime use every physical core


class OnnxSession:
    """An ONNX Runtime session with faceid's defaults (threads, providers, graph optimisation)."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = default_threads() if threads is None else threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle intra-op threads spin for a while by default. faceid runs several sessions in turn (detector,
        # descriptor) on few cores, and one session's spinning pool steals the cores the next one needs:
        # on the 2-core video benchmark spinning cost a third of the frame rate (bench/RESULTS.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        wanted = DEVICE_PROVIDERS.get(device)
        if wanted is None:
            raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICE_PROVIDERS)}")
        available = set(ort.get_available_providers())
        providers: Sequence[str] = [p for p in wanted if p in available]
        if wanted[0] not in available:
            log.warning("%s is not available here; falling back to %s", wanted[0], providers[0])
        self.path = Path(path)
        self.device = device
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self._session.run(self.output_names, inputs))

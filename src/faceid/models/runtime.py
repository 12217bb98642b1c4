"""Inference sessions behind one small interface (ONNX Runtime today; other engines can drop in)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from faceid.settings import current

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
    threads = current().threads
    return threads if threads is not None else 0  # 0 lets ONNX Runtime use every physical core


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Numpy's BLAS on one thread while the block runs (the whole process: BLAS keeps one setting).

    For work made of many small matrix products (matching one face against a gallery and a cohort): BLAS
    would split each over every core, and its worker threads then spin waiting for the next product. In the
    monitor that spinning took 1.4 of 4.8 CPU seconds on the Hamilton clip (2 cores), and on a busy machine
    made each product 20x slower.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


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


def onnxruntime_has(device: str) -> bool:
    """Whether this onnxruntime has the execution provider that ``device`` asks for first."""
    import onnxruntime as ort

    wanted = DEVICE_PROVIDERS.get(device)
    if wanted is None:
        raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICE_PROVIDERS)}")
    return wanted[0] in ort.get_available_providers()


def _torch_cuda_usable() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    from faceid.models.torch_runtime import torch_cuda_reason

    return torch_cuda_reason() is None


def create_session(
    path: str | Path,
    device: str = "cpu",
    threads: int | None = None,
    precision: str | None = None,
    cuda_graphs: bool | None = None,
) -> InferenceSession:
    """The session ``device`` names: ONNX Runtime, or PyTorch on a CUDA GPU where onnxruntime has no GPU provider.

    ``--device cuda`` (or tensorrt) on a machine with a CUDA GPU and a CUDA build of torch but the CPU-only
    onnxruntime runs the graph through :class:`faceid.models.torch_runtime.TorchSession`; ``precision``
    ("fp32", "fp16") and ``cuda_graphs`` apply to that path only (defaults: fp32, no graphs). Without either
    GPU engine the ONNX Runtime CPU session runs, with a warning, as before.
    """
    gpu = device in ("cuda", "tensorrt")
    if gpu and not onnxruntime_has(device) and not onnxruntime_has("cuda") and _torch_cuda_usable():
        from faceid.models.torch_runtime import TorchSession

        log.info("onnxruntime has no CUDA provider: running %s through PyTorch on the GPU", Path(path).name)
        return TorchSession(path, "cuda", precision or "fp32", cuda_graphs=bool(cuda_graphs), threads=threads)
    return OnnxSession(path, device=device, threads=threads)

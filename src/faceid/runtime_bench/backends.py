"""The backends ``faceid bench runtimes`` measures: one engine, device and precision each.

A backend gives a descriptor runner ((N, 150, 150, 3) uint8 chips -> (N, 128) float32) and, where that engine
runs the detectors, a detector. ONNX Runtime fp32 rows go through :class:`faceid.models.runtime.OnnxSession`
with the same ``device`` names as ``--device`` (cpu, cuda, tensorrt), so the benchmark measures exactly what the
command line, the server and the monitor run. A backend that this machine cannot run says why instead.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceid.errors import ModelUnavailableError
from faceid.paths import cache_dir
from faceid.vision.types import Detector

log = logging.getLogger(__name__)

DescriptorRunner = Callable[[np.ndarray], np.ndarray]

# TensorRT builds one engine per input-shape profile; these cover every batch the benchmark sends.
TRT_MAX_BATCH = 32


@dataclass(frozen=True)
class Backend:
    key: str  # what --backends takes
    label: str  # the row's name in the table
    engine: str  # "onnxruntime" or "pytorch"
    device: str  # "cpu" or "cuda" (TensorRT runs on CUDA)
    precision: str  # "fp32", "fp16" or "int8"
    provider: str | None = None  # ONNX Runtime execution provider this row needs
    quant_format: str | None = None  # int8 rows: "qdq" or "qoperator"
    keep_float: bool = True  # int8 rows: stem and fully connected layer kept in float
    default: bool = True  # measured unless --backends names others
    cuda_graphs: bool = False  # pytorch CUDA rows: batches up to 32 replay captured CUDA graphs

    @property
    def is_int8(self) -> bool:
        return self.precision == "int8"

    @property
    def runs_detectors(self) -> bool:
        # The detectors are ONNX graphs plus numpy; there is no int8 or torch version of them to measure.
        return self.engine == "onnxruntime" and self.precision == "fp32"


BACKENDS: tuple[Backend, ...] = (
    Backend("ort-cpu", "ONNX Runtime CPU fp32", "onnxruntime", "cpu", "fp32", "CPUExecutionProvider"),
    Backend("ort-int8-qdq", "ONNX Runtime CPU int8 (QDQ)", "onnxruntime", "cpu", "int8", "CPUExecutionProvider", "qdq"),
    Backend(
        "ort-int8-qop",
        "ONNX Runtime CPU int8 (QOperator)",
        "onnxruntime",
        "cpu",
        "int8",
        "CPUExecutionProvider",
        "qoperator",
    ),
    Backend(
        "ort-int8-qdq-all",
        "ONNX Runtime CPU int8 (QDQ, every layer)",
        "onnxruntime",
        "cpu",
        "int8",
        "CPUExecutionProvider",
        "qdq",
        keep_float=False,
        default=False,
    ),
    Backend("torch-cpu", "PyTorch CPU fp32", "pytorch", "cpu", "fp32"),
    Backend("torch-cuda", "PyTorch CUDA fp32", "pytorch", "cuda", "fp32"),
    # What `--device cuda` runs where onnxruntime has no CUDA provider (thresholds.TORCH_CUDA_DESCRIPTOR_PRECISION).
    Backend("torch-cuda-fp16", "PyTorch CUDA fp16 (channels-last)", "pytorch", "cuda", "fp16"),
    Backend("torch-cuda-graph", "PyTorch CUDA fp16, CUDA graphs", "pytorch", "cuda", "fp16", cuda_graphs=True),
    Backend("ort-cuda", "ONNX Runtime CUDA fp32", "onnxruntime", "cuda", "fp32", "CUDAExecutionProvider"),
    Backend("ort-trt", "ONNX Runtime TensorRT fp32", "onnxruntime", "tensorrt", "fp32", "TensorrtExecutionProvider"),
    Backend(
        "ort-trt-fp16", "ONNX Runtime TensorRT fp16", "onnxruntime", "tensorrt", "fp16", "TensorrtExecutionProvider"
    ),
)
ANCHOR = "ort-cpu"


def backend_by_key(key: str) -> Backend:
    for backend in BACKENDS:
        if backend.key == key:
            return backend
    raise ValueError(f"unknown backend {key!r}; choose from {', '.join(b.key for b in BACKENDS)}")


def unavailable_reason(backend: Backend) -> str | None:
    """Why this machine cannot run ``backend`` (None when it can, as far as can be told without loading it)."""
    if backend.engine == "pytorch":
        if importlib.util.find_spec("torch") is None:
            return "not available here: torch is not installed (pip install torch)"
        if backend.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                return f"not available here: no CUDA device visible to torch {torch.__version__} (CPU build or no GPU)"
        return None
    import onnxruntime as ort

    if backend.provider not in ort.get_available_providers():
        return f"not available here: this onnxruntime has no {backend.provider} (no GPU build or no GPU)"
    return None


# -- descriptor runners ------------------------------------------------------------------------------------


def _check_provider(session: Any, wanted: str, backend: Backend) -> None:
    # ONNX Runtime silently falls back to the CPU when a GPU provider cannot start (missing libraries):
    # a row measured that way would be mislabelled, so it is refused.
    active = session.get_providers()
    if not active or active[0] != wanted:
        raise ModelUnavailableError(
            f"not available here: {wanted} did not start ({backend.label} fell back to {active})"
        )


def _tensorrt_session(path: str, fp16: bool, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    engines = cache_dir() / "tensorrt"
    engines.mkdir(parents=True, exist_ok=True)
    trt_options = {
        "trt_fp16_enable": fp16,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engines),
        # One profile for batches 1..32, so that batch 1 and batch 32 do not each rebuild the engine.
        "trt_profile_min_shapes": "chips:1x150x150x3",
        "trt_profile_max_shapes": f"chips:{TRT_MAX_BATCH}x150x150x3",
        "trt_profile_opt_shapes": f"chips:{TRT_MAX_BATCH}x150x150x3",
    }
    return ort.InferenceSession(
        path,
        sess_options=options,
        providers=[("TensorrtExecutionProvider", trt_options), "CUDAExecutionProvider", "CPUExecutionProvider"],
    )


def _onnx_runner(backend: Backend, path: str, threads: int | None) -> DescriptorRunner:
    if backend.device == "tensorrt":
        session = _tensorrt_session(path, backend.precision == "fp16", threads)
        _check_provider(session, "TensorrtExecutionProvider", backend)

        def run_trt(chips: np.ndarray) -> np.ndarray:
            return np.asarray(session.run(None, {"chips": np.ascontiguousarray(chips)})[0], np.float32)

        return run_trt
    from faceid.models.runtime import OnnxSession

    onnx = OnnxSession(path, device=backend.device, threads=threads)
    assert backend.provider is not None
    _check_provider(onnx._session, backend.provider, backend)

    def run(chips: np.ndarray) -> np.ndarray:
        return np.asarray(onnx.run({"chips": np.ascontiguousarray(chips)})[0], np.float32)

    return run


def _torch_runner(backend: Backend, path: str, threads: int | None) -> DescriptorRunner:
    # The same session `--device cuda` creates where onnxruntime has no CUDA provider: the ONNX graph run
    # through PyTorch (faceid.models.torch_runtime).
    from faceid.models.torch_runtime import torch_session

    session = torch_session(path, backend.device, backend.precision, backend.cuda_graphs, threads)

    def run(chips: np.ndarray) -> np.ndarray:
        # TorchSession.run copies the result back to the host, so a timed call includes the whole computation.
        return session.run({"chips": np.ascontiguousarray(chips)})[0]

    return run


def descriptor_runner(
    backend: Backend,
    threads: int | None = None,
    calibration_chips: np.ndarray | None = None,
    source: str | Path | None = None,
) -> DescriptorRunner:
    """A callable computing descriptors on ``backend``; int8 backends need ``calibration_chips``.

    Raises :class:`ModelUnavailableError` when the backend cannot run here.
    """
    reason = unavailable_reason(backend)
    if reason:
        raise ModelUnavailableError(reason)
    if source is None:
        from faceid.vision.embed import descriptor_onnx_path

        source = descriptor_onnx_path()
    path = str(source)
    if backend.engine == "pytorch":
        return _torch_runner(backend, path, threads)
    if backend.is_int8:
        if calibration_chips is None:
            raise ValueError(f"{backend.label} needs calibration chips")
        from faceid.runtime_bench.quantize import quantized_descriptor_path

        assert backend.quant_format is not None
        path = str(quantized_descriptor_path(backend.quant_format, calibration_chips, source, backend.keep_float))
    return _onnx_runner(backend, path, threads)


def detector_for(backend: Backend, name: str, threads: int | None = None) -> Detector:
    """Detector ``name`` ("fast", "mmod") running on ``backend``'s device; only fp32 ONNX Runtime rows run them."""
    if not backend.runs_detectors:
        raise ModelUnavailableError(
            f"{backend.label}: the detectors have no {backend.engine} {backend.precision} build"
        )
    from faceid.vision.detect import create_detector

    return create_detector(name, device=backend.device, threads=threads)

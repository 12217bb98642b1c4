"""Every runtime the descriptor and the detector can run on, and a benchmark that measures them side by side.

``faceid bench runtimes`` (:func:`faceid.runtime_bench.bench.run_runtime_benchmark`) times the same face chips
and images on ONNX Runtime CPU fp32 (the anchor), ONNX Runtime int8 (static quantization calibrated on real
chips, QDQ and QOperator layouts), PyTorch CPU, and, where the machine has them, PyTorch CUDA, ONNX Runtime
CUDA and ONNX Runtime TensorRT fp32/fp16; it also measures how far each backend's descriptors are from
fp32's and their accuracy on an LFW-style pairs file. Nothing here is needed at run time: torch is imported
only by the PyTorch backends, when they are measured.
"""

from __future__ import annotations

from faceid.runtime_bench.backends import BACKENDS, Backend, backend_by_key
from faceid.runtime_bench.bench import RuntimeReport, format_report, run_runtime_benchmark

__all__ = ["BACKENDS", "Backend", "RuntimeReport", "backend_by_key", "format_report", "run_runtime_benchmark"]

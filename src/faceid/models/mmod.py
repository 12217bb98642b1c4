"""dlib's CNN face detector (``mmod_human_face_detector.dat``) as an ONNX graph, plus its detection settings.

The network (dlib's ``examples/dnn_mmod_face_detection_ex.cpp``) is a plain stack of convolutions:
three 5x5 stride-2 convs (16, 32, 32 filters) and three 5x5 convs (45 filters), each followed by
batch norm (stored as ``bn_con2``, folded here into the conv) and relu, then one 9x9 conv giving a
score map per detector window. Its input layer, ``input_rgb_image_pyramid<pyramid_down<6>>``, turns
one image into a single tiled picture of an image pyramid; that part is not a network layer and is
done in :mod:`faceid.vision.mmod`, so the graph here takes the tiled, already normalised pyramid.

The ``.dat`` file stores the ``loss_mmod_`` options (detector windows, non-max suppression test) and
the input layer's channel means, read into :class:`MmodConfig`. The pyramid's down-scaling rate is a
C++ template argument (``pyramid_down<6>``), not stored, so it is a constant here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from faceid.errors import ModelFileError
from faceid.models.dlib_dnn import Affine, Conv, DlibNetwork, Relu, read_network
from faceid.models.dlib_serialize import DlibReader
from faceid.models.onnx_graph import FLOAT, GraphBuilder
from faceid.models.registry import DLIB_FILES, cached_onnx, dlib_model_path, verify_file

log = logging.getLogger(__name__)

# Bump the graph version whenever the graph's interface or layout changes, so that no stale cache is used.
GRAPH_VERSION = 1
ONNX_NAME = f"dlib_mmod_face_detector_g{GRAPH_VERSION}"
INPUT_NAME = "pyramid"  # (N, 3, H, W) float32: tiled pyramid, already (pixel - mean) / 256
OUTPUT_NAME = "scores"  # (N, windows, H', W') float32 score maps

# pyramid_down<6>: each pyramid level is 5/6 the size of the one above it.
PYRAMID_DOWN = 6
# dlib's defaults for files written before the input layer stored them (``input_rgb_image_pyramid``).
DEFAULT_PYRAMID_PADDING = 10
DEFAULT_PYRAMID_OUTER_PADDING = 11


@dataclass(frozen=True)
class DetectorWindow:
    width: int
    height: int
    label: str = ""


@dataclass(frozen=True)
class MmodConfig:
    """Everything besides the conv weights that dlib uses to turn score maps into boxes."""

    windows: tuple[DetectorWindow, ...]
    nms_iou_threshold: float
    nms_percent_covered_threshold: float
    mean_rgb: tuple[float, float, float]  # float32 values, as dlib keeps them
    pyramid_down: int
    pyramid_padding: int
    pyramid_outer_padding: int
    # A score-map cell (row r, column c) is centred on tensor point (c * stride + offset, r * stride + offset).
    stride: int
    offset: int
    loss_per_false_alarm: float = 1.0
    loss_per_missed_target: float = 1.0
    truth_match_iou_threshold: float = 0.5
    use_bounding_box_regression: bool = False
    assume_image_pyramid: bool = True


@dataclass(frozen=True)
class MmodModel:
    onnx_path: Path
    config: MmodConfig
    conv_geometry: tuple[tuple[int, int, int], ...]  # (kernel, stride, padding) per conv, input first

    def output_size(self, rows: int, cols: int) -> tuple[int, int]:
        """Score-map size for a (rows, cols) input; below 1 means the input is too small for the network."""
        for kernel, stride, padding in self.conv_geometry:
            rows = (rows + 2 * padding - kernel) // stride + 1
            cols = (cols + 2 * padding - kernel) // stride + 1
        return rows, cols


def _read_test_box_overlap(reader: DlibReader) -> tuple[float, float]:
    iou = reader.float()
    percent_covered = reader.float()
    return iou, percent_covered


def _read_mmod_loss(reader: DlibReader) -> dict[str, Any]:
    """``mmod_options`` (versions 1 to 4, ``dlib/dnn/loss.h``)."""
    version = reader.int()
    if not 1 <= version <= 4:
        raise reader.error(f"unsupported mmod_options version {version}")
    windows: list[DetectorWindow] = []
    if version == 1:
        windows.append(DetectorWindow(reader.int(), reader.int()))
    else:
        for _ in range(reader.int()):
            window_version = reader.int()
            if window_version not in (1, 2):
                raise reader.error(f"unsupported detector window version {window_version}")
            width, height = reader.int(), reader.int()
            label = reader.string() if window_version == 2 else ""
            windows.append(DetectorWindow(width, height, label))
    options: dict[str, Any] = {
        "windows": tuple(windows),
        "loss_per_false_alarm": reader.float(),
        "loss_per_missed_target": reader.float(),
        "truth_match_iou_threshold": reader.float(),
        "overlaps_nms": _read_test_box_overlap(reader),
        "overlaps_ignore": _read_test_box_overlap(reader),
        "assume_image_pyramid": True,
        "use_bounding_box_regression": False,
    }
    if version >= 3:
        options["assume_image_pyramid"] = reader.int() == 1
    if version >= 4:
        options["use_bounding_box_regression"] = reader.bool()
        reader.float()  # bbr_lambda: training only
    return options


def _read_pyramid_input(version: str) -> Any:
    def read(reader: DlibReader) -> dict[str, Any]:
        details: dict[str, Any] = {"mean": (reader.float(), reader.float(), reader.float())}
        if version == "input_rgb_image_pyramid2":
            details["padding"] = reader.int()
            details["outer_padding"] = reader.int()
        else:
            details["padding"] = DEFAULT_PYRAMID_PADDING
            details["outer_padding"] = DEFAULT_PYRAMID_OUTER_PADDING
        return details

    return read


def read_mmod_network(path: str | Path) -> DlibNetwork:
    """Parse an MMOD detector file and check that it is the conv/affine/relu stack this module supports."""
    reader = DlibReader.from_file(path)
    network = read_network(
        reader,
        {"loss_mmod_": _read_mmod_loss},
        {name: _read_pyramid_input(name) for name in ("input_rgb_image_pyramid", "input_rgb_image_pyramid2")},
    )
    _check_layers(network, reader.name)
    return network


def _check_layers(network: DlibNetwork, name: str) -> None:
    layers = network.layers
    if not layers or not isinstance(layers[-1], Conv):
        raise ModelFileError(f"{name}: the detector network must end in a convolution")
    i = 0
    while i < len(layers) - 1:
        block = layers[i : i + 3]
        if not (
            len(block) == 3
            and isinstance(block[0], Conv)
            and isinstance(block[1], Affine)
            and isinstance(block[2], Relu)
        ):
            raise ModelFileError(f"{name}: expected conv, batch norm, relu blocks; found {block}")
        i += 3
    loss = network.loss
    if loss["use_bounding_box_regression"]:
        raise ModelFileError(f"{name}: detectors with bounding box regression are not supported")
    if not loss["assume_image_pyramid"]:
        raise ModelFileError(f"{name}: detectors trained without an image pyramid are not supported")
    channels = layers[-1].weight.shape[0]  # type: ignore[union-attr]
    if channels != len(loss["windows"]):
        raise ModelFileError(f"{name}: {channels} score maps for {len(loss['windows'])} detector windows")


def _convs(network: DlibNetwork) -> list[Conv]:
    return [layer for layer in network.layers if isinstance(layer, Conv)]


def conv_geometry(network: DlibNetwork) -> tuple[tuple[int, int, int], ...]:
    geometry = []
    for conv in _convs(network):
        kh, kw = conv.weight.shape[2:]
        if kh != kw or conv.stride[0] != conv.stride[1] or conv.padding[0] != conv.padding[1]:
            raise ValueError("only square kernels, strides and paddings are supported")
        geometry.append((int(kh), int(conv.stride[0]), int(conv.padding[0])))
    return tuple(geometry)


def mmod_config(network: DlibNetwork) -> MmodConfig:
    # dlib maps an output point back through each conv as p * stride - padding + kernel // 2
    # (con_::map_output_to_input); composing them from the output back to the input gives one
    # stride and offset for the whole stack.
    stride, offset = 1, 0
    for kernel, conv_stride, padding in reversed(conv_geometry(network)):
        offset = offset * conv_stride - padding + kernel // 2
        stride *= conv_stride
    loss, details = network.loss, network.input
    nms_iou, nms_covered = loss["overlaps_nms"]
    mean = tuple(float(np.float32(v)) for v in details["mean"])
    return MmodConfig(
        windows=loss["windows"],
        nms_iou_threshold=nms_iou,
        nms_percent_covered_threshold=nms_covered,
        mean_rgb=(mean[0], mean[1], mean[2]),
        pyramid_down=PYRAMID_DOWN,
        pyramid_padding=int(details["padding"]),
        pyramid_outer_padding=int(details["outer_padding"]),
        stride=stride,
        offset=offset,
        loss_per_false_alarm=loss["loss_per_false_alarm"],
        loss_per_missed_target=loss["loss_per_missed_target"],
        truth_match_iou_threshold=loss["truth_match_iou_threshold"],
        use_bounding_box_regression=loss["use_bounding_box_regression"],
        assume_image_pyramid=loss["assume_image_pyramid"],
    )


def build_mmod_onnx(network: DlibNetwork) -> onnx.ModelProto:
    """The conv stack as a graph on an NCHW tiled pyramid of any height and width."""
    g = GraphBuilder("dlib_mmod_face_detector")
    x = g.add_input(INPUT_NAME, FLOAT, ["N", 3, "H", "W"])
    layers = network.layers
    i = 0
    while i < len(layers):
        conv = layers[i]
        assert isinstance(conv, Conv)
        if i + 1 < len(layers):
            affine = layers[i + 1]
            assert isinstance(affine, Affine)
            x = g.relu(g.conv(x, conv, affine))
            i += 3
        else:
            x = g.conv(x, conv)
            i += 1
    windows = len(network.loss["windows"])
    g.add_output(x, OUTPUT_NAME, FLOAT, ["N", windows, "h", "w"])
    return g.model(doc="mmod_human_face_detector rebuilt by faceid; input NCHW tiled pyramid, (px - mean) / 256")


def load_mmod_model(path: str | Path | None = None) -> MmodModel:
    """The detector's ONNX graph (built once, then cached) and its settings.

    ``path`` defaults to the verified copy from ``face_recognition_models``; a file given here is
    checked against the same size and sha256 first, so a truncated or different file is refused
    with a :class:`ModelFileError` naming it.
    """
    expected = DLIB_FILES["mmod"]
    if path is None:
        source = dlib_model_path("mmod")
    else:
        source = Path(path)
        verify_file(source, expected)
    network = read_mmod_network(source)
    log.debug("read %s: %d layers, windows %s", source, len(network.layers), network.loss["windows"])
    onnx_path = cached_onnx(ONNX_NAME, expected.sha256, lambda: build_mmod_onnx(network))
    return MmodModel(onnx_path=onnx_path, config=mmod_config(network), conv_geometry=conv_geometry(network))

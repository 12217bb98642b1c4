"""dlib's face descriptor ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as an ONNX graph.

The network (dlib's ``examples/dnn_face_recognition_ex.cpp``) is a ResNet-34-like stack of
residual blocks. Its ``.dat`` file stores the layers but not the wiring, which follows the C++
template: each block is ``conv-affine-relu-conv-affine`` plus a shortcut, and a down-sampling
block's shortcut is a 2x2 average pool. dlib adds tensors of different shapes by zero-filling the
smaller one at the end of each axis, which the graph reproduces with ``Pad``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from faceid.models.dlib_dnn import AddPrev, Affine, Conv, DlibNetwork, FullyConnected, Pool, Relu, read_network
from faceid.models.dlib_serialize import DlibReader
from faceid.models.onnx_graph import FLOAT, UINT8, GraphBuilder, conv_output_size

CHIP_SIZE = 150
INPUT_NAME = "chips"  # (N, 150, 150, 3) uint8 RGB
OUTPUT_NAME = "descriptors"  # (N, 128) float32


@dataclass(frozen=True)
class DescriptorInfo:
    mean_rgb: tuple[float, float, float]
    chip_size: int
    margin: float
    distance_threshold: float


def _read_loss(reader: DlibReader) -> dict[str, Any]:
    return {"margin": reader.float(), "distance_threshold": reader.float()}


def _read_input(reader: DlibReader) -> dict[str, Any]:
    return {"mean": (reader.float(), reader.float(), reader.float()), "rows": reader.int(), "cols": reader.int()}


def read_descriptor_network(path: str | Path) -> DlibNetwork:
    reader = DlibReader.from_file(path)
    network = read_network(reader, {"loss_metric_2": _read_loss}, {"input_rgb_image_sized": _read_input})
    if network.input["rows"] != CHIP_SIZE or network.input["cols"] != CHIP_SIZE:
        raise reader.error("descriptor network does not take 150x150 chips")
    return network


def descriptor_info(network: DlibNetwork) -> DescriptorInfo:
    mean = network.input["mean"]
    return DescriptorInfo(
        mean_rgb=(float(mean[0]), float(mean[1]), float(mean[2])),
        chip_size=int(network.input["rows"]),
        margin=float(network.loss["margin"]),
        distance_threshold=float(network.loss["distance_threshold"]),
    )


def build_descriptor_onnx(network: DlibNetwork) -> onnx.ModelProto:
    info = descriptor_info(network)
    g = GraphBuilder("dlib_face_descriptor")
    chips = g.add_input(INPUT_NAME, UINT8, ["N", CHIP_SIZE, CHIP_SIZE, 3])
    x = g.op("Cast", [chips], to=FLOAT)
    x = g.op("Transpose", [x], perm=[0, 3, 1, 2])
    mean = np.array(info.mean_rgb, np.float32).reshape(1, 3, 1, 1)
    x = g.op("Mul", [g.op("Sub", [x, g.constant(mean, "mean")]), g.constant(np.array(1 / 256, np.float32), "scale")])

    shape = (3, CHIP_SIZE, CHIP_SIZE)
    layers = network.layers
    block_input: tuple[str, tuple[int, int, int]] | None = None
    shortcut: tuple[str, tuple[int, int, int]] | None = None
    at_block_boundary = False  # after the stem's max pool, and after each block's closing relu
    just_added = False
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv):
            if at_block_boundary:
                block_input = (x, shape)
                at_block_boundary = False
            following = layers[i + 1] if i + 1 < len(layers) else None
            affine = following if isinstance(following, Affine) else None
            x = g.conv(x, layer, affine)
            out_channels, _, kh, kw = layer.weight.shape
            shape = (
                out_channels,
                conv_output_size(shape[1], kh, layer.stride[0], layer.padding[0]),
                conv_output_size(shape[2], kw, layer.stride[1], layer.padding[1]),
            )
            just_added = False
            i += 2 if affine is not None else 1
            continue
        if isinstance(layer, Affine):
            x = g.affine(x, layer)
        elif isinstance(layer, Relu):
            x = g.relu(x)
            at_block_boundary = at_block_boundary or just_added
        elif isinstance(layer, Pool) and layer.is_global:
            x = g.pool(x, layer)
            shape = (shape[0], 1, 1)
        elif isinstance(layer, Pool) and layer.kind == "max":
            x = g.pool(x, layer)
            at_block_boundary = True
            shape = (
                shape[0],
                conv_output_size(shape[1], layer.size[0], layer.stride[0], layer.padding[0]),
                conv_output_size(shape[2], layer.size[1], layer.stride[1], layer.padding[1]),
            )
        elif isinstance(layer, Pool):
            # The average pool of a down-sampling block applies to the block's input (skip1),
            # and the conv branch waits (tag2) to be added to it.
            if block_input is None:
                raise ValueError("average pool outside a residual block")
            source, source_shape = block_input
            pooled = g.pool(source, layer)
            pooled_shape = (
                source_shape[0],
                conv_output_size(source_shape[1], layer.size[0], layer.stride[0], layer.padding[0]),
                conv_output_size(source_shape[2], layer.size[1], layer.stride[1], layer.padding[1]),
            )
            shortcut = (x, shape)
            x, shape = pooled, pooled_shape
        elif isinstance(layer, AddPrev):
            other, other_shape = shortcut if shortcut is not None else block_input  # type: ignore[misc]
            target = tuple(max(a, b) for a, b in zip(shape, other_shape, strict=True))
            x = g.op("Add", [g.pad_to(x, shape, target), g.pad_to(other, other_shape, target)])  # type: ignore[arg-type]
            shape = target  # type: ignore[assignment]
            shortcut = None
            just_added = True
            i += 1
            continue
        elif isinstance(layer, FullyConnected):
            x = g.fully_connected(x, layer)
        just_added = False
        i += 1

    g.add_output(x, OUTPUT_NAME, FLOAT, ["N", 128])
    return g.model(doc="dlib_face_recognition_resnet_model_v1 rebuilt by faceid; input uint8 RGB NHWC chips")

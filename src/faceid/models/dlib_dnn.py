"""Parse dlib DNN files (``dlib::net_type`` serializations) into plain layer records.

The stream stores each layer's parameters but not the network's wiring (tags, skips and which
tag an ``add_prev`` refers to are template arguments in C++). This module therefore returns the
layers in order from the input outward; the per-network graph builders supply the wiring.
See ``docs/models.md`` for the format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceid.models.dlib_serialize import DlibReader


@dataclass
class Conv:
    weight: np.ndarray  # (out, in, kh, kw), OIHW
    bias: np.ndarray | None
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass
class Affine:
    """Per-channel scale and shift (``affine_`` layers, and batch norm folded for inference)."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass
class Relu:
    pass


@dataclass
class Pool:
    kind: str  # "max" or "avg"
    size: tuple[int, int]  # (0, 0) means global
    stride: tuple[int, int]
    padding: tuple[int, int]

    @property
    def is_global(self) -> bool:
        return self.size == (0, 0)


@dataclass
class AddPrev:
    pass


@dataclass
class FullyConnected:
    weight: np.ndarray  # (in, out), applied as x @ weight
    bias: np.ndarray | None


Layer = Conv | Affine | Relu | Pool | AddPrev | FullyConnected


@dataclass
class DlibNetwork:
    loss_kind: str
    loss: dict[str, Any]
    input_kind: str
    input: dict[str, Any]
    layers: list[Layer] = field(default_factory=list)


def _skip_multipliers(reader: DlibReader, count: int = 4) -> None:
    for _ in range(count):
        reader.float()


def _read_conv(reader: DlibReader, version: str) -> Conv:
    params = reader.tensor().reshape(-1)
    num_filters = reader.int()
    nr, nc = reader.int(), reader.int()
    stride = (reader.int(), reader.int())
    padding = (reader.int(), reader.int())
    reader.alias_tensor()
    reader.alias_tensor()
    _skip_multipliers(reader)
    use_bias = reader.bool() if version in ("con_5", "con_6") else True
    if version == "con_6":
        reader.bool()  # use_relu: fused activation flag, unused in the shipped models
    filter_count = params.size - num_filters if use_bias else params.size
    in_channels = filter_count // (num_filters * nr * nc)
    if in_channels * num_filters * nr * nc != filter_count:
        raise reader.error("convolution parameter count does not match its shape")
    weight = params[:filter_count].reshape(num_filters, in_channels, nr, nc)
    bias = params[filter_count:].copy() if use_bias else None
    return Conv(weight=weight, bias=bias, stride=stride, padding=padding)


def _read_affine(reader: DlibReader, version: str) -> Affine:
    params = reader.tensor().reshape(-1)
    reader.alias_tensor()
    reader.alias_tensor()
    mode = reader.int()
    if version == "affine_2":
        reader.bool()  # disabled
    if mode != 0:
        raise reader.error("only per-channel affine layers are supported")
    half = params.size // 2
    return Affine(gamma=params[:half].copy(), beta=params[half:].copy())


def _read_bn(reader: DlibReader, version: str) -> Affine:
    params = reader.tensor().reshape(-1)
    reader.alias_tensor()
    reader.alias_tensor()
    reader.tensor()  # means (training batch)
    reader.tensor()  # invstds (training batch)
    running_means = reader.tensor().reshape(-1)
    running_variances = reader.tensor().reshape(-1)
    reader.int()  # num_updates
    reader.int()  # running_stats_window_size
    _skip_multipliers(reader)
    eps = reader.float() if version in ("bn_con2", "bn_fc2") else 1e-5
    half = params.size // 2
    gamma, beta = params[:half].astype(np.float64), params[half:].astype(np.float64)
    scale = gamma / np.sqrt(running_variances.astype(np.float64) + eps)
    shift = beta - scale * running_means
    return Affine(gamma=scale.astype(np.float32), beta=shift.astype(np.float32))


def _read_pool(reader: DlibReader, version: str) -> Pool:
    size = (reader.int(), reader.int())
    stride = (reader.int(), reader.int())
    padding = (reader.int(), reader.int())
    return Pool(kind="max" if version.startswith("max") else "avg", size=size, stride=stride, padding=padding)


def _read_fc(reader: DlibReader, version: str) -> FullyConnected:
    num_outputs = reader.int()
    num_inputs = reader.int()
    params = reader.tensor().reshape(-1)
    reader.alias_tensor()
    reader.alias_tensor()
    bias_mode = reader.int()
    _skip_multipliers(reader)
    if version == "fc_3":
        reader.bool()  # use_bias
    weight = params[: num_inputs * num_outputs].reshape(num_inputs, num_outputs)
    bias = params[num_inputs * num_outputs :].copy() if bias_mode == 0 else None
    return FullyConnected(weight=weight, bias=bias)


_LAYER_READERS: dict[str, Callable[[DlibReader, str], Layer]] = {
    "con_4": _read_conv,
    "con_5": _read_conv,
    "con_6": _read_conv,
    "affine_": _read_affine,
    "affine_2": _read_affine,
    "bn_con2": _read_bn,
    "max_pool_2": _read_pool,
    "avg_pool_2": _read_pool,
    "fc_2": _read_fc,
    "fc_3": _read_fc,
    "relu_": lambda reader, version: Relu(),
    "relu_2": lambda reader, version: (reader.bool(), Relu())[1],
    "add_prev_": lambda reader, version: AddPrev(),
}


def _skip_training_state(reader: DlibReader, first_layer: bool, wrapper_version: int) -> None:
    for _ in range(3):
        reader.bool()
    for _ in range(3):  # x_grad, cached_output, params_grad (or grad_final next to the input)
        reader.tensor()
    if first_layer and wrapper_version >= 3:
        reader.int()  # sample_expansion_factor


InputReader = Callable[[DlibReader], dict[str, Any]]
LossReader = Callable[[DlibReader], dict[str, Any]]


def read_network(
    reader: DlibReader,
    loss_readers: dict[str, LossReader],
    input_readers: dict[str, InputReader],
) -> DlibNetwork:
    """Read a whole network: the loss, the wrapper versions, the input layer and every layer."""
    if reader.int() != 1:
        raise reader.error("not a dlib network file (bad loss layer version)")
    loss_kind = reader.string()
    if loss_kind not in loss_readers:
        raise reader.error(f"unsupported loss layer {loss_kind!r}")
    loss = loss_readers[loss_kind](reader)

    wrapper_versions: list[int] = []
    while True:
        peeked = reader.peek_string()
        if peeked is not None and peeked.startswith("input"):
            break
        wrapper_versions.append(reader.int())
        if len(wrapper_versions) > 10_000:
            raise reader.error("input layer not found")
    input_kind = reader.string()
    if input_kind not in input_readers:
        raise reader.error(f"unsupported input layer {input_kind!r}")
    input_details = input_readers[input_kind](reader)

    layers: list[Layer] = []
    while not reader.at_end:
        version = reader.string()
        layer_reader = _LAYER_READERS.get(version)
        if layer_reader is None:
            raise reader.error(f"unsupported layer {version!r}")
        layers.append(layer_reader(reader, version))
        _skip_training_state(reader, first_layer=len(layers) == 1, wrapper_version=wrapper_versions[-1])
    return DlibNetwork(loss_kind=loss_kind, loss=loss, input_kind=input_kind, input=input_details, layers=layers)

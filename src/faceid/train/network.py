"""dlib's descriptor ResNet as a PyTorch module, loaded from the same ``.dat`` weights, and back to ONNX.

The module follows the wiring of :func:`faceid.models.descriptor.build_descriptor_onnx` (which holds
parity with dlib): a stem (conv 7x7/2, affine, relu, max pool 3x3/2), fourteen residual blocks
``conv-affine-relu-conv-affine + shortcut`` whose down-sampling blocks take a 2x2 average pool of
their input as the shortcut, then a global average pool and a bias-free fully connected layer.
dlib adds tensors of different shapes by zero-filling the smaller one at the end of each axis; the
down blocks of the 256-channel level rely on it (3x3 + 4x4 -> 4x4), so it is reproduced exactly.

Batch norm was folded into per-channel affine layers when dlib saved the model, so training mode
and eval mode compute the same thing: a small fine-tuning batch never disturbs running statistics.
Each affine layer is further folded into the convolution before it. This matters for training: the
raw convolution weights are tiny (standard deviation down to 6e-4 in the 256-channel level, the
affine scale making up for it), and Adam moves every weight by about the learning rate per step
whatever its scale, so on the raw weights a usual fine-tuning rate rewrote the filters within a
hundred steps. Folded, the weights are on a common scale (about 1e-2).

Exporting writes the trained weights back into the layer records and reuses the ONNX builder, so a
fine-tuned model runs through exactly the same graph code as the original.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceid.models.descriptor import build_descriptor_onnx, descriptor_info, read_descriptor_network
from faceid.models.dlib_dnn import AddPrev, Affine, Conv, DlibNetwork, FullyConnected, Pool, Relu
from faceid.models.registry import dlib_model_path

log = logging.getLogger(__name__)

# Which stages are fine-tuned, by name: the fc only, the last one or two residual blocks, or every block from
# the first of a channel level onward (the frozen part below them is computed once and cached).
TRAINABLE_CHOICES = ("fc", "last", "last2", "256", "128", "64", "all")


@dataclass(frozen=True)
class BlockLayout:
    conv1: int  # indices into DlibNetwork.layers
    affine1: int
    conv2: int
    affine2: int
    down: bool


@dataclass(frozen=True)
class NetworkLayout:
    stem_conv: int
    stem_affine: int
    stem_pool: int
    blocks: tuple[BlockLayout, ...]
    fc: int


def _expect(layers: list, i: int, kind: type, what: str) -> int:
    if i >= len(layers) or not isinstance(layers[i], kind):
        found = type(layers[i]).__name__ if i < len(layers) else "the end"
        raise ValueError(f"descriptor layer {i}: expected {what}, found {found}")
    return i


def parse_layout(network: DlibNetwork) -> NetworkLayout:
    """Check that the layers follow the ResNet pattern and say where each trained tensor lives."""
    layers = network.layers
    stem_conv = _expect(layers, 0, Conv, "the stem convolution")
    stem_affine = _expect(layers, 1, Affine, "the stem affine layer")
    _expect(layers, 2, Relu, "a relu")
    stem_pool = _expect(layers, 3, Pool, "the stem max pool")
    i = 4
    blocks: list[BlockLayout] = []
    while i < len(layers) and isinstance(layers[i], Conv):
        conv1 = _expect(layers, i, Conv, "a block's first convolution")
        affine1 = _expect(layers, i + 1, Affine, "an affine layer")
        _expect(layers, i + 2, Relu, "a relu")
        conv2 = _expect(layers, i + 3, Conv, "a block's second convolution")
        affine2 = _expect(layers, i + 4, Affine, "an affine layer")
        i += 5
        down = isinstance(layers[i], Pool) and not layers[i].is_global  # type: ignore[union-attr]
        if down:
            pool = layers[i]
            assert isinstance(pool, Pool)
            if pool.kind != "avg" or pool.size != (2, 2) or pool.stride != (2, 2):
                raise ValueError(f"descriptor layer {i}: expected the 2x2 average pool of a down block")
            i += 1
        _expect(layers, i, AddPrev, "the residual add")
        _expect(layers, i + 1, Relu, "a relu")
        i += 2
        blocks.append(BlockLayout(conv1, affine1, conv2, affine2, down))
    pool_index = _expect(layers, i, Pool, "the global average pool")
    if not layers[pool_index].is_global:  # type: ignore[union-attr]
        raise ValueError(f"descriptor layer {pool_index}: expected a global average pool")
    fc = _expect(layers, i + 1, FullyConnected, "the fully connected layer")
    if fc != len(layers) - 1:
        raise ValueError("descriptor network has layers after its fully connected layer")
    return NetworkLayout(stem_conv, stem_affine, stem_pool, tuple(blocks), fc)


def _folded_conv(conv: Conv, affine: Affine) -> nn.Conv2d:
    """A convolution with the per-channel affine layer after it folded into its weights and bias."""
    out_channels, in_channels, kh, kw = conv.weight.shape
    gamma = np.asarray(affine.gamma, np.float64)
    weight = np.asarray(conv.weight, np.float64) * gamma[:, None, None, None]
    bias = np.zeros(out_channels) if conv.bias is None else np.asarray(conv.bias, np.float64)
    bias = bias * gamma + np.asarray(affine.beta, np.float64)
    module = nn.Conv2d(in_channels, out_channels, (kh, kw), stride=conv.stride, padding=conv.padding, bias=True)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        assert module.bias is not None
        module.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
    return module


def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: tensors of different (C, H, W) are zero-filled at the end of each axis, then added."""
    if a.shape == b.shape:
        return a + b
    target = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(target):
            return t
        return F.pad(t, (0, target[2] - w, 0, target[1] - h, 0, target[0] - c))

    return grow(a) + grow(b)


class Stem(nn.Module):
    def __init__(self, conv: Conv, affine: Affine, pool: Pool) -> None:
        super().__init__()
        self.conv = _folded_conv(conv, affine)
        self.pool = nn.MaxPool2d(pool.size, pool.stride, pool.padding)
        self.out_channels = int(conv.weight.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.conv(x)))


class ResidualBlock(nn.Module):
    def __init__(self, conv1: Conv, affine1: Affine, conv2: Conv, affine2: Affine, down: bool) -> None:
        super().__init__()
        self.conv1 = _folded_conv(conv1, affine1)
        self.conv2 = _folded_conv(conv2, affine2)
        self.down = down
        self.out_channels = int(conv2.weight.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1(x))
        y = self.conv2(y)
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(padded_add(y, shortcut))


class Head(nn.Module):
    """Global average pool and the bias-free fully connected layer that gives the 128-D descriptor."""

    def __init__(self, fc: FullyConnected) -> None:
        super().__init__()
        weight = np.array(fc.weight, np.float32)  # (in, out), applied as x @ weight
        self.fc = nn.Linear(weight.shape[0], weight.shape[1], bias=fc.bias is not None)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(weight.T.copy()))
            if fc.bias is not None and self.fc.bias is not None:
                self.fc.bias.copy_(torch.from_numpy(np.array(fc.bias, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


class DescriptorNet(nn.Module):
    """The descriptor as a sequence of stages: ``[stem, block 0 .. block 13, head]``.

    ``forward(x, start, stop)`` runs stages ``start`` up to (not including) ``stop``, so the frozen
    lower part can be run once per chip and the trained upper part many times on its output.
    """

    def __init__(self, network: DlibNetwork) -> None:
        super().__init__()
        self.network = network
        self.layout = parse_layout(network)
        layers = network.layers
        lay = self.layout
        stages: list[nn.Module] = [
            Stem(layers[lay.stem_conv], layers[lay.stem_affine], layers[lay.stem_pool])  # type: ignore[arg-type]
        ]
        for block in lay.blocks:
            stages.append(
                ResidualBlock(
                    layers[block.conv1],  # type: ignore[arg-type]
                    layers[block.affine1],  # type: ignore[arg-type]
                    layers[block.conv2],  # type: ignore[arg-type]
                    layers[block.affine2],  # type: ignore[arg-type]
                    block.down,
                )
            )
        stages.append(Head(layers[lay.fc]))  # type: ignore[arg-type]
        self.stages = nn.ModuleList(stages)
        info = descriptor_info(network)
        self.register_buffer("mean_rgb", torch.tensor(info.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))

    @property
    def head_index(self) -> int:
        return len(self.stages) - 1

    def block_channels(self) -> list[int]:
        return [stage.out_channels for stage in self.stages[1:-1] if isinstance(stage, ResidualBlock)]

    def first_trainable(self, trainable: str) -> int:
        """The index of the first stage that ``trainable`` (one of :data:`TRAINABLE_CHOICES`) fine-tunes."""
        if trainable == "fc":
            return self.head_index
        if trainable == "last":
            return self.head_index - 1
        if trainable == "last2":
            return self.head_index - 2
        if trainable == "all":
            return 0
        try:
            channels = int(trainable)
        except ValueError:
            raise ValueError(f"trainable must be one of {', '.join(TRAINABLE_CHOICES)}, not {trainable!r}") from None
        for i, c in enumerate(self.block_channels()):
            if c == channels:
                return i + 1
        raise ValueError(f"the network has no {channels}-channel level")

    def normalise(self, chips: torch.Tensor) -> torch.Tensor:
        """(N, 150, 150, 3) uint8 RGB chips -> (N, 3, 150, 150) float input, as dlib's input layer."""
        x = chips.permute(0, 3, 1, 2).to(torch.float32)
        return (x - self.get_buffer("mean_rgb")) / 256.0

    def forward(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        if start == 0 and x.dtype == torch.uint8:
            x = self.normalise(x)
        for stage in self.stages[start:stop]:
            x = stage(x)
        return x

    def trainable_parameters(self, first: int) -> list[nn.Parameter]:
        return [p for stage in self.stages[first:] for p in stage.parameters()]

    def freeze_below(self, first: int) -> None:
        for i, stage in enumerate(self.stages):
            for parameter in stage.parameters():
                parameter.requires_grad_(i >= first)

    # -- back to dlib layer records and ONNX ------------------------------------------------------

    def to_network(self, scale: float = 1.0) -> DlibNetwork:
        """A copy of the original layer records carrying this module's weights.

        ``scale`` multiplies the fully connected layer, which scales every descriptor by it: that is
        how a recalibrated threshold is folded into the model so that 0.6 stays the decision point.
        """
        network = copy.deepcopy(self.network)
        layers = network.layers
        lay = self.layout

        def put(conv_index: int, affine_index: int, module: nn.Conv2d) -> None:
            # The trained convolution carries the affine layer folded in; the record's affine becomes identity.
            conv, affine = layers[conv_index], layers[affine_index]
            assert isinstance(conv, Conv) and isinstance(affine, Affine) and module.bias is not None
            conv.weight = module.weight.detach().cpu().numpy().astype(np.float32).copy()
            conv.bias = module.bias.detach().cpu().numpy().astype(np.float32).copy()
            affine.gamma = np.ones_like(affine.gamma, dtype=np.float32)
            affine.beta = np.zeros_like(affine.beta, dtype=np.float32)

        stem = self.stages[0]
        assert isinstance(stem, Stem)
        put(lay.stem_conv, lay.stem_affine, stem.conv)
        for spec, stage in zip(lay.blocks, self.stages[1:-1], strict=True):
            assert isinstance(stage, ResidualBlock)
            put(spec.conv1, spec.affine1, stage.conv1)
            put(spec.conv2, spec.affine2, stage.conv2)
        head = self.stages[-1]
        assert isinstance(head, Head)
        fc = layers[lay.fc]
        assert isinstance(fc, FullyConnected)
        fc.weight = (head.fc.weight.detach().cpu().numpy().T * np.float32(scale)).astype(np.float32).copy()
        if head.fc.bias is not None:
            fc.bias = (head.fc.bias.detach().cpu().numpy() * np.float32(scale)).astype(np.float32).copy()
        return network

    def export_onnx(self, path: str | Path, scale: float = 1.0) -> Path:
        """Write the ONNX descriptor (same input/output names as the original) to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        model = build_descriptor_onnx(self.to_network(scale))
        model.doc_string = "faceid fine-tuned descriptor; input uint8 RGB NHWC chips"
        temporary = path.with_name(path.name + ".part")
        temporary.write_bytes(model.SerializeToString())
        temporary.replace(path)
        return path


def load_descriptor_net(path: str | Path | None = None) -> DescriptorNet:
    """The descriptor module with dlib's trained weights (from the verified model file by default)."""
    network = read_descriptor_network(path or dlib_model_path("descriptor"))
    return DescriptorNet(network)

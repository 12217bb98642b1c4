"""A small helper for writing ONNX graphs by hand, keeping track of static shapes."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from faceid.models.dlib_dnn import Affine, Conv, FullyConnected, Pool

OPSET = 17


class GraphBuilder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._ids = itertools.count()

    def fresh(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def constant(self, value: np.ndarray, prefix: str = "const") -> str:
        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], prefix: str | None = None, **attrs: Any) -> str:
        output = self.fresh(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def add_input(self, name: str, elem_type: int, shape: list[int | str | None]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def add_output(self, tensor: str, name: str, elem_type: int, shape: list[int | str | None]) -> None:
        self.nodes.append(helper.make_node("Identity", [tensor], [name], name=f"output_{name}"))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def model(self, doc: str = "") -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="faceid",
            doc_string=doc,
        )
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    # Layers shared by the dlib networks -------------------------------------------------

    def conv(self, x: str, conv: Conv, affine: Affine | None = None) -> str:
        """Convolution, with a following per-channel affine layer folded into its weights."""
        weight = conv.weight.astype(np.float32)
        bias = conv.bias.astype(np.float32) if conv.bias is not None else np.zeros(weight.shape[0], np.float32)
        if affine is not None:
            weight = weight * affine.gamma[:, None, None, None]
            bias = bias * affine.gamma + affine.beta
        pad_y, pad_x = conv.padding
        return self.op(
            "Conv",
            [x, self.constant(weight, "w"), self.constant(bias.astype(np.float32), "b")],
            kernel_shape=list(weight.shape[2:]),
            strides=list(conv.stride),
            pads=[pad_y, pad_x, pad_y, pad_x],
        )

    def affine(self, x: str, affine: Affine) -> str:
        scale = self.constant(affine.gamma.reshape(1, -1, 1, 1), "gamma")
        shift = self.constant(affine.beta.reshape(1, -1, 1, 1), "beta")
        return self.op("Add", [self.op("Mul", [x, scale]), shift])

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def pool(self, x: str, pool: Pool) -> str:
        if pool.is_global:
            return self.op("GlobalAveragePool" if pool.kind == "avg" else "GlobalMaxPool", [x])
        pad_y, pad_x = pool.padding
        return self.op(
            "MaxPool" if pool.kind == "max" else "AveragePool",
            [x],
            kernel_shape=list(pool.size),
            strides=list(pool.stride),
            pads=[pad_y, pad_x, pad_y, pad_x],
        )

    def fully_connected(self, x: str, fc: FullyConnected) -> str:
        flat = self.op("Flatten", [x], axis=1)
        out = self.op("MatMul", [flat, self.constant(fc.weight.astype(np.float32), "fc")])
        if fc.bias is not None:
            out = self.op("Add", [out, self.constant(fc.bias.astype(np.float32), "fcb")])
        return out

    def pad_to(self, x: str, shape: tuple[int, int, int], target: tuple[int, int, int]) -> str:
        """Zero-pad (C, H, W) at the end of each axis to reach ``target``, as dlib's add_prev does."""
        extra = [t - s for s, t in zip(shape, target, strict=True)]
        if not any(extra):
            return x
        pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
        return self.op("Pad", [x, self.constant(pads, "pads")], mode="constant")


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


FLOAT = TensorProto.FLOAT
UINT8 = TensorProto.UINT8

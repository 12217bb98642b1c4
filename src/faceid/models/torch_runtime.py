"""faceid's ONNX graphs run through PyTorch: the GPU path where ONNX Runtime has no CUDA provider.

``pip install onnxruntime`` has no CUDA provider, and ``onnxruntime-gpu`` must match the machine's CUDA
and cuDNN exactly; a CUDA build of torch is often already there. :class:`TorchSession` runs the same ONNX
file that :class:`faceid.models.runtime.OnnxSession` runs, node by node with torch operators, so the
original descriptor, a fine-tuned one and the sub-graphs fine-tuning cuts out of them all take this path
unchanged. Only the operators these graphs use are implemented; any other is refused by name.

On a GPU the session can run in fp16 with channels-last tensors (tensor cores), and replay CUDA graphs for
small batches: a batch of 1 otherwise spends most of its time launching the graph's ~100 kernels.
Nothing here is imported unless a device asks for it: the CPU runtime path never imports torch.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from faceid.errors import ModelUnavailableError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")
# Batches captured as CUDA graphs; a smaller batch is padded up to the next one, a larger one runs eagerly.
GRAPH_BATCHES = (1, 2, 4, 8, 16, 32)


def torch_cuda_reason() -> str | None:
    """Why torch cannot run on a CUDA GPU here (None when it can)."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install torch, a CUDA build)"
    try:
        import torch
    except ImportError as error:  # installed but broken
        return f"importing torch failed: {error}"
    if not torch.cuda.is_available():
        return f"no CUDA device visible to torch {torch.__version__} (CPU build or no GPU)"
    return None


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _module_class() -> type:
    """The interpreter module, defined on first use so that importing this file does not import torch."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}

    def pads_of(attributes: dict[str, Any], spatial: int) -> tuple[list[int], list[int]]:
        pads = list(attributes.get("pads", [0] * 2 * spatial))
        return pads[:spatial], pads[spatial:]

    class OnnxTorchModule(nn.Module):
        """An ONNX graph as a torch module: initializers are buffers, ``forward`` walks the nodes in order."""

        def __init__(self, model: onnx.ModelProto, dtype: Any, channels_last: bool) -> None:
            super().__init__()
            graph = model.graph
            self.compute_dtype = dtype
            self.channels_last = channels_last
            self.names: dict[str, str] = {}
            # Integer initializers (pads, shapes) stay on the host as numpy: reading them back from the GPU
            # would synchronise every call, and is not allowed while a CUDA graph is being captured.
            self.constants: dict[str, np.ndarray] = {}
            for i, tensor in enumerate(graph.initializer):
                array = np.array(numpy_helper.to_array(tensor))
                if not np.issubdtype(array.dtype, np.floating):
                    self.constants[tensor.name] = array
                    continue
                key = f"t{i}"
                self.names[tensor.name] = key
                self.register_buffer(key, torch.from_numpy(array).to(dtype), persistent=False)
            initialized = {t.name for t in graph.initializer}
            self.input_names = [i.name for i in graph.input if i.name not in initialized]
            self.output_names = [o.name for o in graph.output]
            self.nodes = [(n.op_type, list(n.input), list(n.output), _attributes(n)) for n in graph.node]
            supported = set(self._ops())
            unknown = sorted({op for op, *_ in self.nodes} - supported)
            if unknown:
                raise ModelUnavailableError(f"the PyTorch runtime has no operator {', '.join(unknown)}")

        def _ops(self) -> dict[str, Any]:
            return {
                "Identity": lambda x, a: x,
                "Cast": self._cast,
                "Transpose": self._transpose,
                "Sub": lambda x, y, a: x - y,
                "Mul": lambda x, y, a: x * y,
                "Add": lambda x, y, a: x + y,
                "Relu": lambda x, a: F.relu(x),
                "Conv": self._conv,
                "MaxPool": self._max_pool,
                "AveragePool": self._average_pool,
                "GlobalAveragePool": lambda x, a: x.mean(dim=(2, 3), keepdim=True),
                "Pad": self._pad,
                "Flatten": lambda x, a: x.flatten(int(a.get("axis", 1))),
                "MatMul": lambda x, y, a: x @ y,
                "Gemm": self._gemm,
                "Reshape": lambda x, shape, a: x.reshape([int(s) for s in np.asarray(shape).tolist()]),
            }

        def _cast(self, x: torch.Tensor, a: dict[str, Any]) -> torch.Tensor:
            to = int(a["to"])
            if to in float_types:
                return x.to(self.compute_dtype)
            return x.to(torch.from_numpy(np.zeros(0, onnx.helper.tensor_dtype_to_np_dtype(to))).dtype)

        def _transpose(self, x: torch.Tensor, a: dict[str, Any]) -> torch.Tensor:
            y = x.permute(*a["perm"])
            if self.channels_last and y.dim() == 4:
                return y.contiguous(memory_format=torch.channels_last)
            return y

        def _conv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, a: Any = None) -> torch.Tensor:
            if a is None:  # called with (x, w, a)
                a, b = b, None
            assert isinstance(a, dict)
            begin, end = pads_of(a, 2)
            if begin != end:
                x = F.pad(x, (begin[1], end[1], begin[0], end[0]))
                begin = [0, 0]
            return F.conv2d(
                x,
                w,
                b,
                stride=tuple(a.get("strides", (1, 1))),
                padding=tuple(begin),
                dilation=tuple(a.get("dilations", (1, 1))),
                groups=int(a.get("group", 1)),
            )

        def _max_pool(self, x: torch.Tensor, a: dict[str, Any]) -> torch.Tensor:
            begin, end = pads_of(a, 2)
            if begin != end:
                x = F.pad(x, (begin[1], end[1], begin[0], end[0]), value=float("-inf"))
                begin = [0, 0]
            return F.max_pool2d(
                x,
                tuple(a["kernel_shape"]),
                tuple(a.get("strides", (1, 1))),
                tuple(begin),
                ceil_mode=bool(a.get("ceil_mode", 0)),
            )

        def _average_pool(self, x: torch.Tensor, a: dict[str, Any]) -> torch.Tensor:
            begin, end = pads_of(a, 2)
            if begin != end:
                raise ModelUnavailableError("the PyTorch runtime has no asymmetric AveragePool padding")
            return F.avg_pool2d(
                x,
                tuple(a["kernel_shape"]),
                tuple(a.get("strides", (1, 1))),
                tuple(begin),
                ceil_mode=bool(a.get("ceil_mode", 0)),
                count_include_pad=bool(a.get("count_include_pad", 0)),
            )

        def _pad(self, x: torch.Tensor, pads: np.ndarray, *rest: Any) -> torch.Tensor:
            a = rest[-1]
            value = float(rest[0]) if len(rest) > 1 and rest[0] is not None else 0.0
            if a.get("mode", b"constant") not in (b"constant", "constant"):
                raise ModelUnavailableError("the PyTorch runtime pads with constants only")
            p = [int(v) for v in np.asarray(pads).tolist()]
            n = len(p) // 2
            flat: list[int] = []
            for axis in reversed(range(n)):  # F.pad takes the last axis first
                flat += [p[axis], p[n + axis]]
            y = F.pad(x, flat, value=value)
            if self.channels_last and y.dim() == 4:
                y = y.contiguous(memory_format=torch.channels_last)
            return y

        def _gemm(self, x: torch.Tensor, w: torch.Tensor, *rest: Any) -> torch.Tensor:
            a = rest[-1]
            bias = rest[0] if len(rest) > 1 else None
            if a.get("transA", 0):
                x = x.t()
            if a.get("transB", 0):
                w = w.t()
            y = float(a.get("alpha", 1.0)) * (x @ w)
            if bias is not None:
                y = y + float(a.get("beta", 1.0)) * bias
            return y

        def forward(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
            values: dict[str, Any] = {name: self.get_buffer(key) for name, key in self.names.items()}
            values.update(self.constants)
            for name, value in zip(self.input_names, inputs, strict=True):
                values[name] = value.to(self.compute_dtype) if value.is_floating_point() else value
            ops = self._ops()
            for op, ins, outs, attributes in self.nodes:
                args = [values[name] if name else None for name in ins]
                values[outs[0]] = ops[op](*args, attributes)
            return [values[name] for name in self.output_names]

    return OnnxTorchModule


class _CapturedGraph:
    """One CUDA graph of the module at a fixed batch: copy the input in, replay, read the output."""

    def __init__(self, module: Any, batch: int, shape: tuple[int, ...], dtype: Any, device: Any) -> None:
        import torch

        self.batch = batch
        self.input = torch.zeros((batch, *shape), dtype=dtype, device=device)
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up off the default stream, as graph capture requires
                module(self.input)
        torch.cuda.current_stream(device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = module(self.input)

    def run(self, x: Any) -> list[Any]:
        count = len(x)
        self.input[:count].copy_(x, non_blocking=True)
        self.graph.replay()
        return [out[:count] for out in self.outputs]


class TorchSession:
    """An ONNX file run through PyTorch, with :class:`faceid.models.runtime.OnnxSession`'s ``run`` interface.

    ``precision`` "fp16" runs weights and activations in half precision (outputs are returned as float32);
    ``channels_last`` keeps 4-D tensors NHWC in memory (the layout tensor cores want); ``cuda_graphs``
    captures one CUDA graph per batch size in :data:`GRAPH_BATCHES` on first use and replays it.
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "cuda",
        precision: str = "fp32",
        channels_last: bool | None = None,
        cuda_graphs: bool = False,
        threads: int | None = None,
    ) -> None:
        import torch

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if device.startswith("cuda"):
            reason = torch_cuda_reason()
            if reason:
                raise ModelUnavailableError(f"not available here: {reason}")
        elif precision == "fp16":
            raise ValueError("fp16 runs on a CUDA device only")
        if threads:
            torch.set_num_threads(threads)
        if device.startswith("cuda"):
            # Fixed shapes (a few batch sizes): let cuDNN pick the fastest convolution algorithm for each.
            torch.backends.cudnn.benchmark = True
        self.path = Path(path)
        self.device = device
        self.precision = precision
        self.cuda = device.startswith("cuda")
        self.channels_last = self.cuda if channels_last is None else channels_last
        self.cuda_graphs = cuda_graphs and self.cuda
        self._torch_device = torch.device(device)
        dtype = torch.float16 if precision == "fp16" else torch.float32
        module = _module_class()(onnx.load(str(path)), dtype, self.channels_last).eval()
        self.module = module.to(self._torch_device)
        if self.channels_last:
            for key in module.names.values():
                buffer = module.get_buffer(key)
                if buffer.dim() == 4:
                    setattr(module, key, buffer.contiguous(memory_format=torch.channels_last))
        self.input_names: list[str] = list(module.input_names)
        self.output_names: list[str] = list(module.output_names)
        self._graphs: dict[tuple[int, tuple[int, ...], Any], _CapturedGraph] = {}
        # A captured graph owns fixed input and output buffers: two threads must not replay it at once.
        self._lock = threading.Lock()

    @property
    def providers(self) -> list[str]:
        return [f"PyTorch {self.device} {self.precision}" + (" CUDA graphs" if self.cuda_graphs else "")]

    def _graph_for(self, x: Any) -> _CapturedGraph | None:
        batch = next((b for b in GRAPH_BATCHES if b >= len(x)), None)
        if batch is None:
            return None
        key = (batch, tuple(x.shape[1:]), x.dtype)
        graph = self._graphs.get(key)
        if graph is None:
            log.debug("capturing a CUDA graph for batch %d", batch)
            graph = _CapturedGraph(self.module, batch, tuple(x.shape[1:]), x.dtype, self._torch_device)
            self._graphs[key] = graph
        return graph

    def run_tensors(self, *inputs: Any) -> list[Any]:
        """Run on torch tensors already on the device; returns tensors in the compute precision."""
        import torch

        with torch.inference_mode():
            if self.cuda_graphs and len(inputs) == 1 and len(inputs[0]) > 0:
                graph = self._graph_for(inputs[0])
                if graph is not None:
                    return graph.run(inputs[0])
            return list(self.module(*inputs))

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        tensors = []
        for name in self.input_names:
            array = np.ascontiguousarray(inputs[name])
            tensor = torch.from_numpy(array)
            if self.cuda:
                tensor = tensor.to(self._torch_device)
            tensors.append(tensor)
        with self._lock:
            outputs = self.run_tensors(*tensors)
            # .cpu() waits for the device, so the call returns finished results.
            return [out.float().cpu().numpy() for out in outputs]


def torch_session(
    path: str | Path,
    device: str,
    precision: str = "fp32",
    cuda_graphs: bool = False,
    threads: int | None = None,
    channels_last: bool | None = None,
) -> TorchSession:
    """A :class:`TorchSession`; raises :class:`ModelUnavailableError` where torch or its device is missing."""
    if importlib.util.find_spec("torch") is None:
        raise ModelUnavailableError("not available here: torch is not installed (pip install torch)")
    return TorchSession(path, device, precision, channels_last, cuda_graphs, threads)

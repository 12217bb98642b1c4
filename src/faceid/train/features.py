"""The frozen lower part of the descriptor, run once per view of each chip and kept on disk.

Only the upper stages are fine-tuned, so their input (the frozen part's output) never changes: it
is computed once for a few views of every chip and the training steps then cost only the upper
stages. The frozen part runs in ONNX Runtime (a sub-graph of the descriptor's ONNX graph), about
twice as fast as PyTorch on a CPU. Values are stored as float16 in a memory-mapped ``.npy`` file in
the run folder, which a resumed run reuses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx.utils import Extractor
from tqdm import tqdm

from faceid.models.descriptor import INPUT_NAME, OUTPUT_NAME
from faceid.models.runtime import create_session
from faceid.train.augment import view

log = logging.getLogger(__name__)

BATCH = 32


def stage_output_names(model: onnx.ModelProto) -> list[str]:
    """The tensor each stage of the descriptor graph ends with: the stem's max pool, then each block's relu.

    A block ends with the relu that follows its residual ``Add``; that pattern appears nowhere else.
    """
    producers = {output: node for node in model.graph.node for output in node.output}
    stem = next(node.output[0] for node in model.graph.node if node.op_type == "MaxPool")
    blocks = [
        node.output[0]
        for node in model.graph.node
        if node.op_type == "Relu" and node.input[0] in producers and producers[node.input[0]].op_type == "Add"
    ]
    return [stem, *blocks]


def split_model(descriptor_onnx: str | Path, stages: int) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """The descriptor graph cut after its first ``stages`` stages: (chips -> features, features -> descriptors)."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(descriptor_onnx)))
    names = stage_output_names(model)
    if not 1 <= stages <= len(names):
        raise ValueError(f"the descriptor has {len(names)} stages before its head; cannot cut after {stages}")
    extractor = Extractor(model)
    return (
        extractor.extract_model([INPUT_NAME], [names[stages - 1]]),
        extractor.extract_model([names[stages - 1]], [OUTPUT_NAME]),
    )


def frozen_part(descriptor_onnx: str | Path, stages: int, path: Path) -> Path:
    """Write the ONNX sub-graph computing the first ``stages`` stages (uint8 chips -> their output) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(split_model(descriptor_onnx, stages)[0], str(path))
    return path


@dataclass
class FeatureStore:
    """Inputs of the trained stages for ``views`` views of each chip: (N, V, C, H, W) float16, or uint8 chips."""

    array: np.ndarray
    first_stage: int

    @property
    def views(self) -> int:
        return int(self.array.shape[1])

    def __len__(self) -> int:
        return int(self.array.shape[0])


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def open_features(path: Path, expected: Mapping[str, object]) -> FeatureStore | None:
    """The features in ``path`` if a finished computation with the same settings left them there."""
    meta_path = _meta_path(path)
    if not path.is_file() or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        return None
    if not meta.get("complete") or any(meta.get(k) != v for k, v in expected.items()):
        return None
    array = np.load(path, mmap_mode="r")
    return FeatureStore(array, int(meta["first_stage"]))


def compute_features(
    chips: np.ndarray,
    descriptor_onnx: str | Path,
    first_stage: int,
    views: int,
    path: Path,
    seed: int = 0,
    threads: int | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> FeatureStore:
    """Run the frozen stages ``[0, first_stage)`` on ``views`` views of every chip; store the results at ``path``.

    With ``first_stage == 0`` nothing is frozen and the views themselves (uint8 chips) are stored. On
    ``device="cuda"`` the frozen part runs on the GPU (ONNX Runtime's CUDA provider, else PyTorch, fp32).
    """
    settings = {"first_stage": first_stage, "views": views, "count": len(chips), "seed": seed}
    found = open_features(path, settings)
    if found is not None:
        log.info("reusing the frozen-part features in %s", path)
        return found
    path.parent.mkdir(parents=True, exist_ok=True)
    session = None
    if first_stage > 0:
        session = create_session(
            frozen_part(descriptor_onnx, first_stage, path.with_name("frozen.onnx")), device, threads=threads
        )
        probe = session.run({INPUT_NAME: np.ascontiguousarray(chips[:1])})[0]
        shape: tuple[int, ...] = tuple(probe.shape[1:])
        dtype: type = np.float16
    else:
        shape, dtype = tuple(chips.shape[1:]), np.uint8
    _meta_path(path).write_text(json.dumps({**settings, "complete": False}))
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(len(chips), views, *shape))
    rng = np.random.default_rng(seed)
    bar = tqdm(total=len(chips) * views, desc="frozen-part features", unit="view", disable=not progress)
    for start in range(0, len(chips), BATCH):
        batch = chips[start : start + BATCH]
        for v in range(views):
            inputs = view(batch, v, rng)
            if session is not None:
                array[start : start + len(batch), v] = session.run({INPUT_NAME: inputs})[0].astype(np.float16)
            else:
                array[start : start + len(batch), v] = inputs
            bar.update(len(batch))
    bar.close()
    array.flush()
    _meta_path(path).write_text(json.dumps({**settings, "complete": True}))
    return FeatureStore(np.load(path, mmap_mode="r"), first_stage)

"""The face descriptor: dlib's ResNet rebuilt as an ONNX graph, run on aligned 150x150 chips."""

from __future__ import annotations

import logging
from functools import cached_property

import numpy as np

from faceid.models.descriptor import build_descriptor_onnx, read_descriptor_network
from faceid.models.registry import DLIB_FILES, cached_onnx, dlib_model_path
from faceid.models.runtime import InferenceSession, create_session
from faceid.thresholds import TORCH_CUDA_DESCRIPTOR_PRECISION, TORCH_CUDA_GRAPHS

log = logging.getLogger(__name__)

DESCRIPTOR_MODEL_ID = "dlib-resnet-v1:" + DLIB_FILES["descriptor"].sha256[:8]


def descriptor_onnx_path() -> str:
    source = dlib_model_path("descriptor")
    sha = DLIB_FILES["descriptor"].sha256
    return str(cached_onnx("dlib_face_descriptor", sha, lambda: build_descriptor_onnx(read_descriptor_network(source))))


class DescriptorEmbedder:
    """128-D descriptors exactly as dlib's ``compute_face_descriptor`` computes them.

    With ``mirror=True`` each chip's descriptor is averaged with its left-right mirror's, which
    makes the descriptor less sensitive to pose at twice the cost.

    ``device="cuda"`` runs on ONNX Runtime's CUDA provider where it is installed, else through PyTorch on the
    GPU (see :func:`faceid.models.runtime.create_session`) in ``precision`` (default
    :data:`faceid.thresholds.TORCH_CUDA_DESCRIPTOR_PRECISION`) with CUDA graphs for batches up to 32.
    """

    chip_size = 150
    dimensions = 128

    def __init__(
        self,
        device: str = "cpu",
        threads: int | None = None,
        mirror: bool = False,
        batch_size: int = 32,
        onnx_path: str | None = None,
        precision: str | None = None,
    ) -> None:
        self.device = device
        self.threads = threads
        self.mirror = mirror
        self.batch_size = batch_size
        self._onnx_path = onnx_path
        self.precision = precision or TORCH_CUDA_DESCRIPTOR_PRECISION

    @property
    def model_id(self) -> str:
        # Mirror averaging stays in the network's space: descriptors made with and without it are compared.
        return DESCRIPTOR_MODEL_ID

    @cached_property
    def session(self) -> InferenceSession:
        return create_session(
            self._onnx_path or descriptor_onnx_path(),
            device=self.device,
            threads=self.threads,
            precision=self.precision,
            cuda_graphs=TORCH_CUDA_GRAPHS,
        )

    def embed(self, chips: np.ndarray) -> np.ndarray:
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.ndim != 4 or chips.shape[1:] != (self.chip_size, self.chip_size, 3):
            raise ValueError(f"expected chips of shape (N, {self.chip_size}, {self.chip_size}, 3), got {chips.shape}")
        if chips.dtype != np.uint8:
            raise ValueError(f"expected uint8 chips, got {chips.dtype}")
        if len(chips) == 0:
            return np.zeros((0, self.dimensions), np.float32)
        out = np.empty((len(chips), self.dimensions), np.float32)
        for start in range(0, len(chips), self.batch_size):
            batch = np.ascontiguousarray(chips[start : start + self.batch_size])
            descriptors = self.session.run({"chips": batch})[0]
            if self.mirror:
                flipped = np.ascontiguousarray(batch[:, :, ::-1])
                descriptors = (descriptors + self.session.run({"chips": flipped})[0]) / 2
            out[start : start + len(batch)] = descriptors
        return out

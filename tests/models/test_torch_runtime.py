"""The GPU path through PyTorch (faceid.models.torch_runtime): the same ONNX graphs, run by torch operators.

On a machine without a GPU these check the interpreter on the CPU (it is the code a GPU runs, in another
precision) and that ``--device cuda`` falls back to ONNX Runtime's CPU session there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from faceid.errors import ModelUnavailableError
from faceid.models.runtime import OnnxSession, create_session
from faceid.models.torch_runtime import torch_cuda_reason
from faceid.vision.embed import DescriptorEmbedder, descriptor_onnx_path


@pytest.fixture(scope="module")
def chips() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)


def test_the_descriptor_through_torch_matches_onnx_runtime(chips: np.ndarray) -> None:
    pytest.importorskip("torch")
    from faceid.models.torch_runtime import TorchSession

    path = descriptor_onnx_path()
    expected = OnnxSession(path, threads=1).run({"chips": chips})[0]
    for channels_last in (False, True):
        session = TorchSession(path, "cpu", channels_last=channels_last, threads=1)
        got = session.run({"chips": chips})[0]
        assert got.dtype == np.float32 and got.shape == (3, 128)
        assert np.abs(got - expected).max() < 1e-4


def test_fine_tuning_sub_graphs_run_through_torch(chips: np.ndarray, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from faceid.models.torch_runtime import TorchSession
    from faceid.train.features import split_model

    path = descriptor_onnx_path()
    trunk, head = split_model(path, 13)
    onnx.save(trunk, str(tmp_path / "trunk.onnx"))
    onnx.save(head, str(tmp_path / "head.onnx"))
    features = TorchSession(tmp_path / "trunk.onnx", "cpu").run({"chips": chips})[0]
    reference = OnnxSession(tmp_path / "trunk.onnx", threads=1).run({"chips": chips})[0]
    assert np.abs(features - reference).max() < 1e-4
    head_session = TorchSession(tmp_path / "head.onnx", "cpu")
    descriptors = head_session.run({head_session.input_names[0]: reference})[0]
    assert np.abs(descriptors - OnnxSession(path, threads=1).run({"chips": chips})[0]).max() < 1e-4


def test_an_unknown_operator_is_refused_by_name(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from onnx import TensorProto, helper

    from faceid.models.torch_runtime import TorchSession

    node = helper.make_node("Softmax", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "softmax.onnx"))
    with pytest.raises(ModelUnavailableError, match="no operator Softmax"):
        TorchSession(tmp_path / "softmax.onnx", "cpu")


@pytest.mark.skipif(torch_cuda_reason() is None, reason="this machine has a CUDA GPU: the fallback is not taken")
def test_device_cuda_without_a_gpu(chips: np.ndarray) -> None:
    # The descriptor still runs (ONNX Runtime on the CPU), and a torch session refuses with the reason.
    session = create_session(descriptor_onnx_path(), "cuda", threads=1)
    assert isinstance(session, OnnxSession) and session.providers == ["CPUExecutionProvider"]
    out = DescriptorEmbedder(device="cuda", threads=1).embed(chips)
    assert np.allclose(out, DescriptorEmbedder(threads=1).embed(chips), atol=1e-6)
    if pytest.importorskip("torch"):
        from faceid.models.torch_runtime import TorchSession

        with pytest.raises(ModelUnavailableError, match="not available here: no CUDA device"):
            TorchSession(descriptor_onnx_path(), "cuda")


@pytest.mark.skipif(torch_cuda_reason() is not None, reason="needs a CUDA GPU and a CUDA build of torch")
def test_device_cuda_runs_the_descriptor_on_the_gpu(chips: np.ndarray) -> None:  # pragma: no cover - GPU only
    reference = DescriptorEmbedder(threads=1).embed(chips)
    embedder = DescriptorEmbedder(device="cuda")
    got = embedder.embed(chips)
    assert "PyTorch" in embedder.session.providers[0] or "CUDA" in embedder.session.providers[0]  # type: ignore[attr-defined]
    cosines = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosines.min() > 0.999

"""The PyTorch descriptor against the ONNX graph (which itself holds parity with dlib), and the export back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceid.vision.embed import DescriptorEmbedder


@pytest.fixture(scope="module")
def net(torch_module):
    from faceid.train.network import load_descriptor_net

    return load_descriptor_net()


def test_torch_network_matches_the_onnx_graph(net, dev_chips: np.ndarray, torch_module) -> None:
    reference = DescriptorEmbedder().embed(dev_chips)
    with torch_module.no_grad():
        ours = net(torch_module.from_numpy(dev_chips)).numpy()
    cosine = np.sum(reference * ours, axis=1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(ours, axis=1)
    assert cosine.min() >= 0.99999
    assert np.abs(reference - ours).max() < 1e-4


def test_stages_compose(net, dev_chips: np.ndarray, torch_module) -> None:
    x = torch_module.from_numpy(dev_chips[:3])
    with torch_module.no_grad():
        whole = net(x)
        first = net.first_trainable("256")
        split = net(net(x, 0, first), first)
    assert net.block_channels() == [32] * 3 + [64] * 4 + [128] * 3 + [256] * 4
    assert first == 11 and net.first_trainable("fc") == 15 and net.first_trainable("last") == 14
    assert torch_module.allclose(whole, split)


def test_frozen_onnx_part_matches_torch(net, dev_chips: np.ndarray, torch_module, tmp_path: Path) -> None:
    from faceid.models.runtime import OnnxSession
    from faceid.train.features import frozen_part
    from faceid.vision.embed import descriptor_onnx_path

    first = net.first_trainable("256")
    session = OnnxSession(frozen_part(descriptor_onnx_path(), first, tmp_path / "frozen.onnx"))
    onnx_features = session.run({"chips": dev_chips[:4]})[0]
    with torch_module.no_grad():
        torch_features = net(torch_module.from_numpy(dev_chips[:4]), 0, first).numpy()
    assert onnx_features.shape == (4, 128, 8, 8)
    assert np.abs(onnx_features - torch_features).max() < 1e-3


def test_export_round_trip_and_scale(net, dev_chips: np.ndarray, tmp_path: Path) -> None:
    reference = DescriptorEmbedder().embed(dev_chips)
    exported = DescriptorEmbedder(onnx_path=str(net.export_onnx(tmp_path / "same.onnx"))).embed(dev_chips)
    assert np.abs(exported - reference).max() < 1e-5
    scaled = DescriptorEmbedder(onnx_path=str(net.export_onnx(tmp_path / "scaled.onnx", scale=1.25))).embed(dev_chips)
    assert np.allclose(scaled, 1.25 * reference, atol=1e-5)


def test_changed_weights_reach_the_export(net, dev_chips: np.ndarray, torch_module, tmp_path: Path) -> None:
    from faceid.train.network import load_descriptor_net

    changed = load_descriptor_net()
    with torch_module.no_grad():
        block = changed.stages[12]
        block.conv1.weight.mul_(1.1)
        block.conv2.bias.add_(0.01)
        expected = changed(torch_module.from_numpy(dev_chips)).numpy()
    exported = DescriptorEmbedder(onnx_path=str(changed.export_onnx(tmp_path / "changed.onnx"))).embed(dev_chips)
    assert np.abs(exported - expected).max() < 1e-4
    assert np.abs(exported - DescriptorEmbedder().embed(dev_chips)).max() > 1e-3

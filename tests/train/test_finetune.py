"""A whole fine-tune on a tiny CelebA-layout folder (a few steps): report, export, resume, Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceid.vision.embed import DescriptorEmbedder

pytestmark = pytest.mark.slow


def _options(**settings):
    from faceid.train.finetune import FinetuneOptions
    from faceid.train.trainer import TrainSettings

    base = {"steps": 4, "people_per_batch": 3, "photos_per_person": 2, "views": 2, "trainable": "last"}
    return FinetuneOptions(
        settings=TrainSettings(**{**base, **settings}),
        holdout_people=0.3,
        holdout_photos=0.3,
    )


@pytest.fixture(scope="module")
def dataset(celeba_folder: Path):
    from faceid.train.datasets import read_dataset

    return read_dataset(celeba_folder, boxes=celeba_folder / "boxes.csv")


def test_finetune_writes_model_and_report(torch_module, dataset, tmp_path: Path) -> None:
    from faceid.train.finetune import run_finetune

    result = run_finetune(dataset, _options(), tmp_path / "run", progress=False)
    report = result.report
    assert report["data"]["people_dropped_fewer_than_two_photos"] == 1
    assert report["data"]["photos_skipped"] == {"no face box in the csv": 1, "missing image file": 1}
    assert report["data"]["photos_left_out_at_extraction"] == {"unreadable image": 1}
    assert report["training"]["steps"] == 4 and report["training"]["epochs_completed"] >= 1
    for section in ("heldout_people", "heldout_photos"):
        for model in ("original", "new"):
            figures = report[section][model]
            for key in ("mean_cosine_positive", "mean_cosine_negative", "mean_l2_positive", "mean_l2_negative"):
                assert np.isfinite(figures[key])
            assert 0.0 <= figures["accuracy"] <= 1.0 and 0.0 <= figures["tar_at_far_1e3"] <= 1.0
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["calibration"]["scale"] == pytest.approx(result.scale)
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "mean cosine similarity, same person" in markdown and "TAR at FAR = 1e-3" in markdown

    chips = np.stack([np.full((150, 150, 3), v, np.uint8) for v in (40, 120, 200)])
    new = DescriptorEmbedder(onnx_path=str(result.model_path)).embed(chips)
    assert new.shape == (3, 128) and not np.allclose(new, DescriptorEmbedder().embed(chips))


def test_device_cuda_falls_back_to_the_cpu_without_a_gpu(
    torch_module, dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from faceid.train.finetune import run_finetune

    options = _options(steps=2)
    options.device = "cuda"
    result = run_finetune(dataset, options, tmp_path / "cuda", progress=False)
    used = result.report["training"]["device"]
    if torch_module.cuda.is_available():  # pragma: no cover - GPU machines
        assert used.startswith("cuda (")
        return
    assert used == "cpu" and "fine-tuning on the CPU" in caplog.text
    on_cpu = _options(steps=2)
    on_cpu.device = "cpu"
    reference = run_finetune(dataset, on_cpu, tmp_path / "cpu", progress=False)
    chips = np.stack([np.full((150, 150, 3), v, np.uint8) for v in (40, 120, 200)])
    a = DescriptorEmbedder(onnx_path=str(result.model_path)).embed(chips)
    b = DescriptorEmbedder(onnx_path=str(reference.model_path)).embed(chips)
    assert np.allclose(a, b, atol=1e-5)


def test_unknown_devices_are_refused(torch_module) -> None:
    from faceid.errors import BadInputError
    from faceid.train.finetune import resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch_module.cuda.is_available() else "cpu")
    with pytest.raises(BadInputError, match="device must be one of"):
        resolve_device("tpu")


def test_resume_continues_exactly(torch_module, dataset, tmp_path: Path) -> None:
    from faceid.train.finetune import run_finetune

    whole = run_finetune(dataset, _options(steps=4), tmp_path / "whole", progress=False)
    run_finetune(dataset, _options(steps=2), tmp_path / "parts", progress=False)
    resumed = run_finetune(dataset, _options(steps=4), tmp_path / "parts", progress=False)
    assert resumed.report["training"]["resumed_from_step"] == 2
    chips = np.stack([np.full((150, 150, 3), v, np.uint8) for v in (40, 120, 200)])
    a = DescriptorEmbedder(onnx_path=str(whole.model_path)).embed(chips)
    b = DescriptorEmbedder(onnx_path=str(resumed.model_path)).embed(chips)
    assert np.allclose(a, b, atol=1e-5)


def test_interrupt_keeps_the_last_checkpoint_and_writes_no_model(
    torch_module, dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faceid.train.trainer as trainer_module
    from faceid.train.finetune import run_finetune

    real = trainer_module.metric_loss
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "metric_loss", interrupted)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_finetune(dataset, _options(steps=6), run, progress=False)
    assert not (run / "model.onnx").exists()
    import torch

    saved = torch.load(run / "checkpoint.pt", weights_only=False)
    assert saved["step"] in (1, 2, 3)
    monkeypatch.setattr(trainer_module, "metric_loss", real)
    finished = run_finetune(dataset, _options(steps=6), run, progress=False)
    assert finished.report["training"]["resumed_from_step"] == saved["step"]
    assert finished.model_path.is_file()


def test_pairwise_loss_and_triplet_loss_train(torch_module) -> None:
    import torch

    from faceid.train.losses import metric_loss

    torch.manual_seed(0)
    x = torch.randn(12, 128, requires_grad=True)
    labels = torch.arange(4).repeat_interleave(3)
    for name in ("triplet", "pairwise"):
        loss = metric_loss(name, x * 0.05, labels)
        assert loss.item() > 0
        loss.backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        x.grad = None
    with pytest.raises(ValueError, match="loss must be one of"):
        metric_loss("arcface", x, labels)

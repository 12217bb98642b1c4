"""Shared fixtures. Real data sets live outside the repository, in ``../shared`` or ``$FACEID_SHARED``."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

# The shared fixtures of the support package (a real PostgreSQL, a real browser), for every test folder.
from support.browser import browser, page  # noqa: F401
from support.postgres import pg_url, postgres_server  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("FACEID_SHARED", REPO.parent / "shared"))


def _dataset(name: str) -> Path:
    path = shared_dir() / "datasets" / name
    if not path.is_dir():
        pytest.skip(f"data set {name!r} not found at {path} (set FACEID_SHARED to the folder holding datasets/)")
    return path


@pytest.fixture(scope="session")
def media_dir() -> Path:
    return _dataset("media")


@pytest.fixture(scope="session")
def faces_dev_dir() -> Path:
    return _dataset("faces-dev")


@pytest.fixture(scope="session")
def analyzer():
    import faceid

    return faceid.Analyzer()


SCALE = 1.1  # every distance of the "other" model is the built-in one's x SCALE


@pytest.fixture(scope="session")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from faceid.models.descriptor import build_descriptor_onnx, read_descriptor_network
    from faceid.models.dlib_dnn import FullyConnected
    from faceid.models.registry import dlib_model_path

    network = read_descriptor_network(dlib_model_path("descriptor"))
    fc = network.layers[-1]
    assert isinstance(fc, FullyConnected)
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(128, 128)))
    fc.weight = (fc.weight @ rotation * SCALE).astype(np.float32)
    path = tmp_path_factory.mktemp("model") / "other.onnx"
    path.write_bytes(build_descriptor_onnx(network).SerializeToString())
    return path


def still_video(photo: Path, path: Path, seconds: float = 2.0, fps: int = 15) -> Path:
    """A short video of one still photo: a camera looking at that face."""
    import av

    from faceid.vision.image import load_image

    rgb = load_image(str(photo))
    height, width = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for _ in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:height, :width]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path

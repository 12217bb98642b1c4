"""SFace, the second opinion: the pinned file, the rebuilt graph, the alignment, the fused descriptor."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from faceid.errors import ModelFileError, ModelUnavailableError
from faceid.models import sface as models
from faceid.thresholds import SFACE_DISTANCE_THRESHOLD, SFACE_FUSION_WEIGHT
from faceid.vision.analyzer import Analyzer
from faceid.vision.image import load_image
from faceid.vision.sface import DLIB5_IN_ARCFACE_112, FusedEmbedder, SFaceEmbedder, crop_details, sface_crops

FETCH_HINT = "SFace is not set up here: run `faceid models fetch`"


def _require_model() -> Path:
    try:
        return models.sface_onnx_path()
    except ModelUnavailableError:
        pytest.skip(FETCH_HINT)


@pytest.fixture(scope="module")
def embedder() -> SFaceEmbedder:
    _require_model()
    return SFaceEmbedder(threads=1)


# --- the file: pinned, checked, rebuilt --------------------------------------------------------------


def test_cached_source_is_the_pinned_file() -> None:
    source = models.source_path()
    if not source.is_file():
        pytest.skip(FETCH_HINT)
    data = source.read_bytes()
    assert len(data) == models.SOURCE_SIZE == 10_667_852
    assert hashlib.sha256(data).hexdigest() == models.SOURCE_SHA256


def test_a_wheel_with_other_bytes_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / models.WHEEL_FILENAME
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(models.MEMBER, b"not the model")
    with pytest.raises(ModelFileError, match="sha256"):
        models.read_source(wheel)
    with pytest.raises(ModelFileError, match="sha256"):
        models.check_source(b"not the model", "stand-in")


def test_missing_model_names_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEID_CACHE_DIR", str(tmp_path))
    embedder = SFaceEmbedder()  # building one must not need the file
    with pytest.raises(ModelUnavailableError, match="faceid models fetch"):
        embedder.embed_crops(np.zeros((1, 112, 112, 3), np.uint8))


def test_fetch_is_quick_when_already_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEID_CACHE_DIR", str(tmp_path))
    (tmp_path / "models").mkdir()
    models.onnx_path().write_bytes(b"stand-in")
    models.source_path().write_bytes(b"stand-in")

    def no_network(_: Path) -> Path:
        raise AssertionError("fetch_model downloaded although everything was in place")

    monkeypatch.setattr(models, "_download_wheel", no_network)
    assert models.fetch_model() == models.onnx_path()


def test_shipped_graph_needs_pruning_and_rebuild_reproduces_it() -> None:
    source = models.source_path()
    if not source.is_file():
        pytest.skip(FETCH_HINT)
    import onnxruntime as ort

    shipped = source.read_bytes()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(shipped, sess_options=options, providers=["CPUExecutionProvider"])
    assert len(session.get_inputs()) == 30  # the image and 29 weights no node reads
    # As shipped, it cannot be run on an image alone.
    with pytest.raises(Exception, match=r"(?i)missing from input feed"):
        session.run(None, {"data": models.probe_image()})
    rebuilt = onnx.load_from_string(models.build(shipped))  # checks the probe fingerprint itself
    assert [i.name for i in rebuilt.graph.input] == ["data"]
    assert rebuilt.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert not any(node.op_type in ("PRelu", "DequantizeLinear") for node in rebuilt.graph.node)


def test_cached_graph_gives_unit_128_d_vectors_in_batches(embedder: SFaceEmbedder) -> None:
    crops = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    together = embedder.embed_crops(crops)
    assert together.shape == (3, 128) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([embedder.embed_crops(c[None]) for c in crops])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    raw = embedder._run(models.probe_image().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(models.fingerprint(raw), models.PROBE_FINGERPRINT, rtol=1e-4, atol=1e-4)


# --- alignment ---------------------------------------------------------------------------------------


def test_template_points_give_the_identity_crop() -> None:
    image = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    details = crop_details(DLIB5_IN_ARCFACE_112)
    assert abs(details.angle) < 1e-9
    np.testing.assert_array_equal(sface_crops(image, [DLIB5_IN_ARCFACE_112])[0], image)


def test_same_person_is_near_and_others_far(embedder: SFaceEmbedder, media_dir: Path) -> None:
    analyzer = Analyzer(threads=1)
    vectors = {}
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg"):
        rgb = load_image(media_dir / name)
        face = analyzer.analyze(rgb, max_faces=1)[0]
        assert sface_crops(rgb, [face.landmarks]).shape == (1, 112, 112, 3)
        vectors[name] = embedder.embed_faces(rgb, [face.landmarks], face.chip[None])[0]
    same = float(np.linalg.norm(vectors["obama.jpg"] - vectors["obama2.jpg"]))
    other = float(np.linalg.norm(vectors["obama.jpg"] - vectors["biden.jpg"]))
    assert same < SFACE_DISTANCE_THRESHOLD < other, (same, other)


# --- the fused descriptor ----------------------------------------------------------------------------


def test_fused_analyzer_has_its_own_model_id_and_256_values(media_dir: Path) -> None:
    _require_model()
    plain = Analyzer(threads=1)
    fused = Analyzer(threads=1, second_opinion="sface")
    assert fused.model_id != plain.model_id
    assert fused.model_id.startswith("dlib-resnet-v1:") and "+sface-2021dec:" in fused.model_id
    mirrored = Analyzer(second_opinion="sface", mirror=True)
    assert mirrored.model_id == fused.model_id and mirrored.pipeline_id.endswith("+mirror")
    assert isinstance(fused.embedder, FusedEmbedder) and fused.embedder.dimensions == 256
    face = fused.analyze(media_dir / "obama.jpg")[0]
    reference = plain.analyze(media_dir / "obama.jpg")[0]
    assert face.embedding.shape == (256,)
    np.testing.assert_allclose(face.embedding[:128], reference.embedding, atol=1e-6)  # dlib's part unchanged
    assert abs(float(np.linalg.norm(face.embedding[128:])) - SFACE_FUSION_WEIGHT) < 1e-4
    from_chips = fused.embed_chips(face.chip[None])  # code that kept only chips still gets 256 values
    assert from_chips.shape == (1, 256)


def test_unknown_second_opinion_is_refused() -> None:
    with pytest.raises(ValueError, match="second opinion"):
        Analyzer(second_opinion="arcface")


def test_eval_pairs_with_the_second_opinion(
    tmp_path: Path, faces_dev_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_model()
    from faceid.cli import main
    from faceid.thresholds import SFACE_FUSED_THRESHOLD

    lines = (faces_dev_dir / "pairs.txt").read_text().splitlines()
    # Two folds of 5 same and 5 different pairs, from the first two folds of faces-dev.
    small = tmp_path / "pairs.txt"
    small.write_text("\n".join(["2\t5", *lines[1:6], *lines[301:306], *lines[601:606], *lines[901:906]]) + "\n")
    args = ["eval", "pairs", str(small), "--root", str(faces_dev_dir), "--json", "--quiet", "--no-cache"]
    assert main([*args, "--second-opinion", "sface", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pairs"] == 20 and "+sface-2021dec:" in report["configuration"]["model"]
    assert report["fixed_threshold"] == SFACE_FUSED_THRESHOLD
    assert report["accuracy_at_fixed_threshold"] >= 0.9
    with pytest.raises(SystemExit) as exit_info:  # argparse: bad choice -> exit code 2
        main([*args, "--second-opinion", "arcface"])
    assert exit_info.value.code == 2

"""The fused default (dlib's descriptor with SFace's) as a model version: its fine-tunes are fused too, their
re-embedding describes each face from its stored photo, rollback returns to the default."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceid.store.versions import VersionedStore
from faceid.vision.analyzer import Analyzer
from faceid.vision.sface import split_fused_id


def test_a_fine_tune_of_the_fused_default_is_fused(tmp_path: Path, small_people, other_model: Path) -> None:
    with VersionedStore(tmp_path / "data", analyzer=Analyzer(), index="exact") as store:
        default = store.active_version()
        assert split_fused_id(default.model_id) == (store.builtin_model_id(), 0.65) and default.parent_id is None
        for name, photos in small_people:
            store.enroll(name, [str(p) for p in photos[:2]], pick="largest")
        probe = small_people[0][1][2]
        before = store.identify(str(probe))[0]
        assert before.model_id == default.model_id and len(store.faces(small_people[0][0], True)[0].embedding) == 256
        assert before.person is not None and before.person.name == small_people[0][0]
        assert before.calibration == "shipped"

        plain = store.register_version(other_model, parent=default.model_id)
        assert store.calibrate_like_parent(plain.model_id, [], np.zeros((0, 128), np.float32))["calibrated"]
        fused = store.register_fused(plain, 0.65)
        assert fused.model_id == f"{plain.model_id}+sface-2021dec:fb143eea@0.65" and fused.kind == "fused"
        assert fused.parent_id == default.model_id and fused.onnx_file == plain.onnx_file
        inherited = store.calibrate_like_parent(fused.model_id, [], np.zeros((0, 128), np.float32))
        assert inherited["calibrated"] and inherited["inherited"]

        store.activate(fused.model_id)
        after = store.identify(str(probe))[0]
        assert after.model_id == fused.model_id and after.person is not None
        assert after.person.name == small_people[0][0]
        # Re-embedded from the stored photo as the analyzer describes it (SFace's crop cut from the photo, not
        # from the 150 px chip): the same descriptor as describing the photo afresh.
        name, photos = small_people[1]
        stored = store.faces(name, True)[0].embedding
        fresh = store.analyzer_for(fused).analyze(str(photos[0]))[0].embedding
        assert stored.shape == (256,) and float(np.linalg.norm(stored - fresh)) < 1e-3

        assert store.rollback()["active"] == default.model_id
        assert store.identify(str(probe))[0].model_id == default.model_id
        assert store.delete_version(fused.model_id)["model_id"] == fused.model_id
        assert (store.data_dir / plain.onnx_file).is_file()  # the fused version shared its dlib part's file

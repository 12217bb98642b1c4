"""The numbers behind the pictures, on synthetic descriptors: projections, maps, pair scores and curves."""

from __future__ import annotations

import numpy as np
import pytest

from faceid.errors import BadInputError
from faceid.eval.metrics import roc_auc
from faceid.viz.curves import PairScores, compute_curves, curves_to_dict, different_pairs, probit, same_pairs
from faceid.viz.embeddings import GalleryEmbeddings, UnknownEmbeddings
from faceid.viz.maps import build_map, person_color
from faceid.viz.projection import pca, project


def clusters(people: int = 5, per_person: int = 4, seed: int = 0) -> GalleryEmbeddings:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 128)).astype(np.float32)
    person_ids = np.repeat(np.arange(1, people + 1), per_person)
    vectors = centres[person_ids - 1] + 0.05 * rng.normal(size=(len(person_ids), 128)).astype(np.float32)
    return GalleryEmbeddings(
        model_id="test-model",
        face_ids=np.arange(100, 100 + len(person_ids)),
        person_ids=person_ids,
        embeddings=vectors.astype(np.float32),
        has_image=np.arange(len(person_ids)) % 2 == 0,
        names={i: f"Person {i}" for i in range(1, people + 1)},
        total_faces=len(person_ids),
    )


def test_pca_is_fitted_on_the_marked_rows_and_places_the_others() -> None:
    gallery = clusters()
    extra = np.full((1, 128), 50.0, np.float32)  # far off: would dominate PC1 if it were fitted on
    vectors = np.vstack([gallery.embeddings, extra])
    fit = np.arange(len(vectors)) < len(gallery)
    with_extra = pca(vectors, fit)
    alone = pca(gallery.embeddings)
    np.testing.assert_allclose(with_extra.coordinates[: len(gallery)], alone.coordinates, atol=1e-4)
    assert sum(alone.details["explained_variance"]) > 0.3  # five tight clusters: the first axes carry them


def test_small_sets_fall_back_to_pca_and_unknown_methods_are_refused() -> None:
    vectors = np.random.default_rng(1).normal(size=(3, 128)).astype(np.float32)
    projection = project(vectors, "tsne")
    assert projection.method == "pca" and "fallback" in projection.details
    with pytest.raises(BadInputError):
        project(vectors, "mds")


def test_tsne_keeps_people_together() -> None:
    pytest.importorskip("sklearn")
    gallery = clusters(people=4, per_person=5)
    coordinates = project(gallery.embeddings, "tsne").coordinates
    # Each face's nearest other face on the map belongs to the same person.
    d = np.linalg.norm(coordinates[:, None] - coordinates[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert (gallery.person_ids[d.argmin(axis=1)] == gallery.person_ids).all()


def test_map_colours_people_and_overlays_unknown_events() -> None:
    gallery = clusters()
    unknown = UnknownEmbeddings(
        event_ids=np.array([7, 8]),
        embeddings=np.random.default_rng(2).normal(size=(2, 128)).astype(np.float32),
        times=["2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"],
        sources=["cam", None],
        has_snapshot=np.array([True, False]),
    )
    emap = build_map(gallery, unknown, "pca")
    assert len(emap.x) == len(gallery) and len(emap.unknown_x) == 2
    assert len({p["color"] for p in emap.people}) == len(emap.people) == 5
    data = emap.to_dict(face_url="/f/{id}", event_url="/e/{id}")
    assert data["faces"][0]["image"] == "/f/100" and data["faces"][1]["image"] is None  # no stored photo
    assert data["faces"][0]["name"] == "Person 1"
    assert [u["image"] for u in data["unknown"]] == ["/e/7", None]
    assert all(isinstance(f["x"], float) for f in data["faces"])


def test_person_colours_differ_for_neighbouring_ids() -> None:
    colours = [person_color(i) for i in range(60)]
    assert len(set(colours)) == 60
    assert all(c.startswith("#") and len(c) == 7 for c in colours)


def test_pairs_of_a_gallery() -> None:
    person_ids = np.array([1, 1, 1, 2, 2, 3])
    rng = np.random.default_rng(0)
    a, b = same_pairs(person_ids, 100, rng)
    assert len(a) == 3 + 1 and (person_ids[a] == person_ids[b]).all()
    c, d = different_pairs(person_ids, 100, rng)
    assert len(c) == 15 - 4 and (person_ids[c] != person_ids[d]).all()  # every different pair, each once
    assert len(set(zip(c.tolist(), d.tolist(), strict=True))) == len(c)


def test_curves_from_scores() -> None:
    rng = np.random.default_rng(3)
    same = rng.normal(0.4, 0.06, 2000).astype(np.float32)
    different = rng.normal(0.8, 0.08, 20000).astype(np.float32)
    scores = PairScores(same, different, "distance", 0.6, "dlib's threshold", "synthetic", {"x": 0.5})
    curves = compute_curves(scores)
    values = np.concatenate([same, different])
    labels = np.concatenate([np.ones(len(same), bool), np.zeros(len(different), bool)])
    assert curves.auc == pytest.approx(roc_auc(values, labels))
    assert np.all(np.diff(curves.far) >= 0) and np.all(np.diff(curves.tar) >= 0)
    assert len(curves.far) <= 302
    assert 0 < curves.eer < 0.01
    assert curves.at_threshold["false_accept_rate"] == pytest.approx(np.mean(different <= 0.6))
    assert curves.at_threshold["false_reject_rate"] == pytest.approx(np.mean(same > 0.6))
    width = np.diff(curves.histogram_edges)
    assert (curves.histogram_same * width).sum() == pytest.approx(1.0, abs=1e-6)
    data = curves_to_dict(scores, curves)
    assert data["same_pairs"] == 2000 and data["threshold"] == 0.6 and len(data["roc"]["far"]) == len(curves.far)
    assert probit(np.array([0.5]))[0] == pytest.approx(0.0)

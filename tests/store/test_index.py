"""The exact and approximate indexes agree with brute force, and stay in step with the database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceid.store import Store
from faceid.store.index import ExactIndex, IvfIndex
from faceid.store.match import pairwise_distances

from .helpers import TEST_MODEL, random_embeddings


def brute_force(vectors: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(pairwise_distances(query[None], vectors)[0], kind="stable")[:k]


def test_exact_index_matches_brute_force() -> None:
    vectors = random_embeddings(500)
    index = ExactIndex()
    index.upsert(np.arange(500) + 1000, np.arange(500) // 2, vectors)
    query = random_embeddings(1, seed=1)[0]
    found = index.search(query, 10)
    np.testing.assert_array_equal(found.face_ids, brute_force(vectors, query, 10) + 1000)
    np.testing.assert_allclose(found.distances, np.sort(pairwise_distances(query[None], vectors)[0])[:10], atol=1e-5)
    assert found.person_ids.tolist() == ((found.face_ids - 1000) // 2).tolist()

    index.remove([int(found.face_ids[0]), 99999])
    assert len(index) == 499 and int(found.face_ids[0]) not in index.search(query, 10).face_ids
    index.upsert(np.array([1001]), np.array([7]), vectors[:1])  # moves face 1001 to person 7, new embedding
    assert index.person_of([1001]) == {1001: 7}
    assert index.search(vectors[0], 1).face_ids.tolist() in ([1000], [1001])
    assert len(index.search(query, 1000)) == 499


def test_ivf_index_recall_save_and_load(tmp_path: Path) -> None:
    vectors = random_embeddings(3000)
    index = IvfIndex(threads=1)
    index.build(np.arange(3000), np.arange(3000), vectors)
    queries = vectors[:200] + 0.05 * random_embeddings(200, seed=2)
    hits = sum(int(index.search(q, 1).face_ids[0]) == int(brute_force(vectors, q, 1)[0]) for q in queries)
    assert hits / len(queries) >= 0.98
    index.remove(range(100))
    assert len(index) == 2900 and index.search(vectors[0], 5).face_ids.min() >= 100
    index.save(tmp_path / "graph")
    loaded = IvfIndex()
    assert loaded.load(tmp_path / "graph") and len(loaded) == 2900
    assert loaded.search(vectors[500], 1).face_ids.tolist() == [500]


def test_approximate_gallery_follows_the_database(data_dir: Path, db_url: str | None, backend: str) -> None:
    vectors = random_embeddings(60, seed=4)
    with Store(data_dir, db_url, model_id=TEST_MODEL, index="approx") as store:
        people = [store.enroll_embeddings(f"P{i}", vectors[2 * i : 2 * i + 2]) for i in range(30)]
        result = store.identify_embedding(vectors[10])
        assert store.gallery().kind == "ivf"
        assert result.candidates[0].person_id == people[5].id
        store.delete_person(people[5].id)
        assert people[5].id not in [c.person_id for c in store.identify_embedding(vectors[10]).candidates]
        assert store.gallery().people_count() == 29
    # The in-process graph is saved on close and reused (then brought up to date) at the next open.
    with Store(data_dir, db_url, model_id=TEST_MODEL, index="approx") as store:
        store.enroll_embeddings("Late", vectors[10:11] + 0.001)
        assert store.identify_embedding(vectors[10]).candidates[0].name == "Late"
        assert store.gallery().people_count() == 30


def test_pgvector_index_searches_inside_postgresql(data_dir: Path, db_url: str | None, backend: str) -> None:
    vectors = random_embeddings(40, seed=6)
    if backend != "postgresql":
        with (
            pytest.raises(ValueError, match="PostgreSQL"),
            Store(data_dir, db_url, model_id=TEST_MODEL, index="pgvector") as store,
        ):
            store.enroll_embeddings("A", vectors[:1])
            store.identify_embedding(vectors[0])
        return
    with Store(data_dir, db_url, model_id=TEST_MODEL, index="pgvector") as store:
        people = [store.enroll_embeddings(f"P{i}", vectors[2 * i : 2 * i + 2]) for i in range(20)]
        result = store.identify_embedding(vectors[14])
        assert store.gallery().kind == "pgvector"
        assert result.candidates[0].person_id == people[7].id


@pytest.mark.parametrize("mode", ["exact", "approx"])
def test_auto_index_switches_by_size(monkeypatch: pytest.MonkeyPatch, data_dir: Path, mode: str) -> None:
    import faceid.store.gallery_cache as gallery_module

    monkeypatch.setattr(gallery_module, "APPROX_INDEX_MIN_FACES", 5 if mode == "approx" else 10**9)
    with Store(data_dir, None, model_id=TEST_MODEL) as store:
        store.enroll_embeddings("A", random_embeddings(6))
        store.identify_embedding(random_embeddings(1)[0])
        assert store.gallery().kind == ("ivf" if mode == "approx" else "exact")

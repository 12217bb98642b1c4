"""The inference-session helpers every model shares."""

from __future__ import annotations

from threadpoolctl import threadpool_info

from faceid.models.runtime import one_blas_thread


def blas_threads() -> set[int]:
    return {int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_one_blas_thread_holds_only_inside_the_block() -> None:
    import numpy as np

    np.ones((4, 4)) @ np.ones((4, 4))  # numpy's BLAS is loaded
    before = blas_threads()
    with one_blas_thread():
        assert blas_threads() == {1}
    assert blas_threads() == before

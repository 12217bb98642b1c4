"""2-D projections of descriptors: PCA (numpy), t-SNE (scikit-learn) and UMAP (umap-learn), the last two
imported only when asked for.

PCA is fitted on the gallery alone and the overlaid points (unknown events) are projected into it, so the axes
do not move when events come in. t-SNE has no way to place new points into a fitted map, so with it (and, for
the same picture, with UMAP) the gallery and the overlay are embedded together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceid.errors import BadInputError, ModelUnavailableError

log = logging.getLogger(__name__)

METHODS = ("pca", "tsne", "umap")
# Below this many points t-SNE and UMAP have no neighbourhoods to speak of; PCA is shown instead.
MIN_POINTS_NONLINEAR = 6


@dataclass
class Projection:
    coordinates: np.ndarray  # (N, 2) float32
    method: str  # the method actually used (a tiny set falls back to PCA)
    details: dict[str, Any] = field(default_factory=dict)


def pca(vectors: np.ndarray, fit_rows: np.ndarray | None = None) -> Projection:
    """Principal components 1 and 2, fitted on ``fit_rows`` (a boolean mask; default all rows)."""
    vectors = np.asarray(vectors, np.float64)
    fit = vectors if fit_rows is None else vectors[np.asarray(fit_rows, bool)]
    if len(fit) == 0:
        return Projection(np.zeros((len(vectors), 2), np.float32), "pca", {"explained_variance": [0.0, 0.0]})
    mean = fit.mean(axis=0)
    _, singular, components = np.linalg.svd(fit - mean, full_matrices=False)
    axes = components[:2]
    if len(axes) < 2:
        axes = np.vstack([axes, np.zeros((2 - len(axes), vectors.shape[1]))])
    # SVD signs are arbitrary; fixing them makes repeated maps of a similar gallery look alike.
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular**2
    explained = (variance[:2] / variance.sum()).tolist() if variance.sum() > 0 else [0.0, 0.0]
    coordinates = ((vectors - mean) @ axes.T).astype(np.float32)
    return Projection(coordinates, "pca", {"explained_variance": [round(float(v), 4) for v in explained]})


def tsne(vectors: np.ndarray, seed: int = 0) -> Projection:
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise ModelUnavailableError("t-SNE maps need scikit-learn (pip install scikit-learn)") from None
    n = len(vectors)
    # scikit-learn requires perplexity < n; a third of the points keeps small galleries meaningful.
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    model = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, learning_rate="auto")
    from threadpoolctl import threadpool_limits

    # One thread (OpenMP and BLAS): on a busy machine the spinning worker threads made a 20-point map take
    # 17 s instead of 1.3 s, and Barnes-Hut t-SNE of a few thousand faces is quick enough on one core.
    with threadpool_limits(limits=1):
        coordinates = model.fit_transform(np.asarray(vectors, np.float32))
    return Projection(np.asarray(coordinates, np.float32), "tsne", {"perplexity": perplexity})


def umap(vectors: np.ndarray, seed: int = 0) -> Projection:
    try:
        import umap as umap_learn
    except ImportError:
        raise ModelUnavailableError("UMAP maps need umap-learn (pip install umap-learn)") from None
    n_neighbors = int(min(15, len(vectors) - 1))
    # n_jobs=1: a fixed random_state makes UMAP single-threaded anyway (and it warns unless told so).
    model = umap_learn.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed, init="random", n_jobs=1)
    coordinates = model.fit_transform(np.asarray(vectors, np.float32))
    return Projection(np.asarray(coordinates, np.float32), "umap", {"n_neighbors": n_neighbors})


def project(vectors: np.ndarray, method: str = "pca", fit_rows: np.ndarray | None = None, seed: int = 0) -> Projection:
    """(N, D) -> (N, 2) by ``method``; ``fit_rows`` marks the rows PCA is fitted on (the others are placed)."""
    if method not in METHODS:
        raise BadInputError(f"unknown projection {method!r}; choose from {', '.join(METHODS)}")
    vectors = np.asarray(vectors, np.float32)
    if vectors.ndim != 2:
        raise BadInputError(f"expected (N, D) vectors, got shape {vectors.shape}")
    if method == "pca":
        return pca(vectors, fit_rows)
    if len(vectors) < MIN_POINTS_NONLINEAR:
        log.info("%d points are too few for %s; using PCA", len(vectors), method)
        projection = pca(vectors, fit_rows)
        projection.details["fallback"] = f"{method} needs at least {MIN_POINTS_NONLINEAR} points"
        return projection
    return tsne(vectors, seed) if method == "tsne" else umap(vectors, seed)

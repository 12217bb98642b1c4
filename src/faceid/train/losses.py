"""Metric-learning losses on a batch of descriptors with person labels (Euclidean distances, as dlib).

``triplet``: batch-hard triplet loss (each anchor against its farthest same-person descriptor and
its nearest other-person one). ``pairwise``: dlib's own ``loss_metric`` (the loss the model was
trained with): same-person pairs are pushed under ``threshold - margin``, other pairs over
``threshold + margin``, and only as many of the hardest negative pairs count as there are positive
pairs, so the many easy negatives do not drown the positives.
"""

from __future__ import annotations

import torch

from faceid.thresholds import DLIB_DISTANCE_THRESHOLD, DLIB_PAIRWISE_MARGIN, TRIPLET_MARGIN

LOSSES = ("triplet", "pairwise")
DEFAULT_MARGINS = {"triplet": TRIPLET_MARGIN, "pairwise": DLIB_PAIRWISE_MARGIN}


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    squared = (x * x).sum(dim=1)
    d2 = squared[:, None] + squared[None, :] - 2.0 * x @ x.T
    # The epsilon keeps the square root's gradient finite on the diagonal and for identical views.
    return torch.sqrt(d2.clamp_min(0.0) + 1e-12)


def batch_hard_triplet(descriptors: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    d = pairwise_distances(descriptors)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    hardest_positive = torch.where(same & ~eye, d, torch.zeros_like(d)).max(dim=1).values
    hardest_negative = torch.where(same, torch.full_like(d, float("inf")), d).min(dim=1).values
    valid = (same & ~eye).any(dim=1) & torch.isfinite(hardest_negative)
    losses = torch.relu(hardest_positive - hardest_negative + margin)
    return losses[valid].mean() if bool(valid.any()) else descriptors.sum() * 0.0


def dlib_pairwise(
    descriptors: torch.Tensor, labels: torch.Tensor, margin: float, threshold: float = DLIB_DISTANCE_THRESHOLD
) -> torch.Tensor:
    d = pairwise_distances(descriptors)
    upper = torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)
    same = (labels[:, None] == labels[None, :]) & upper
    different = (labels[:, None] != labels[None, :]) & upper
    positives = torch.relu(d[same] - (threshold - margin))
    negatives = torch.relu((threshold + margin) - d[different])
    count = int(same.sum())
    if count == 0:
        return descriptors.sum() * 0.0
    hardest = torch.topk(negatives, min(count, negatives.numel())).values
    return (positives.sum() + hardest.sum()) / (2.0 * count)


def metric_loss(
    name: str, descriptors: torch.Tensor, labels: torch.Tensor, margin: float | None = None
) -> torch.Tensor:
    if name == "triplet":
        return batch_hard_triplet(descriptors, labels, DEFAULT_MARGINS[name] if margin is None else margin)
    if name == "pairwise":
        return dlib_pairwise(descriptors, labels, DEFAULT_MARGINS[name] if margin is None else margin)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {name!r}")

"""Verification metrics on distance scores (smaller distance = more alike)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs decided right when "same person" means distance < threshold."""
    return float(np.mean((distances < threshold) == same))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold that maximises accuracy on these pairs (midpoint between neighbouring scores)."""
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order].astype(np.int64)
    # Accepting the first i pairs: correct = same among them + different among the rest.
    same_accepted = np.concatenate([[0], np.cumsum(s)])
    diff_rejected = np.sum(1 - s) - np.concatenate([[0], np.cumsum(1 - s)])
    correct = same_accepted + diff_rejected
    # Only cut between distinct distances.
    cut_ok = np.concatenate([[True], d[1:] > d[:-1], [True]])
    correct = np.where(cut_ok, correct, -1)
    i = int(np.argmax(correct))
    if i == 0:
        return float(d[0] - 1e-6)
    if i == len(d):
        return float(d[-1] + 1e-6)
    return float((d[i - 1] + d[i]) / 2)


def roc_curve(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false accept rate, true accept rate, threshold) for every distinct threshold, ascending."""
    order = np.argsort(distances, kind="stable")
    d, s = distances[order], same[order].astype(bool)
    positives, negatives = max(int(s.sum()), 1), max(int((~s).sum()), 1)
    tar = np.concatenate([[0.0], np.cumsum(s) / positives])
    far = np.concatenate([[0.0], np.cumsum(~s) / negatives])
    thresholds = np.concatenate([[d[0] - 1e-6], d + 1e-9]) if len(d) else np.array([0.0])
    last_of_run = np.concatenate([d[1:] > d[:-1], [True]]) if len(d) else np.array([], bool)
    keep = np.concatenate([[True], last_of_run])
    return far[keep], tar[keep], thresholds[keep]


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    far, tar, _ = roc_curve(distances, same)
    # The trapezoid rule written out: numpy renamed trapz to trapezoid in 2.0 and the oldest supported numpy is 1.24.
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2.0))


def tar_at_far(distances: np.ndarray, same: np.ndarray, far_target: float) -> tuple[float, float]:
    """The highest true-accept rate whose false-accept rate is <= ``far_target``, and its threshold."""
    far, tar, thresholds = roc_curve(distances, same)
    allowed = far <= far_target + 1e-12
    i = int(np.max(np.nonzero(allowed)[0]))
    return float(tar[i]), float(thresholds[i])


@dataclass
class KFoldResult:
    fold_accuracies: list[float]
    fold_thresholds: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_accuracies))


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, folds: np.ndarray) -> KFoldResult:
    """LFW protocol: each fold is scored with the threshold that is best on the other folds."""
    accuracies, thresholds = [], []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        threshold = best_threshold(distances[train], same[train])
        thresholds.append(threshold)
        accuracies.append(accuracy_at(distances[test], same[test], threshold))
    return KFoldResult(accuracies, thresholds)

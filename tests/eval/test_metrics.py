from __future__ import annotations

import numpy as np

from faceid.eval.metrics import accuracy_at, best_threshold, kfold_accuracy, roc_auc, tar_at_far


def test_separable_scores_are_perfect() -> None:
    distances = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    same = np.array([True, True, True, False, False, False])
    threshold = best_threshold(distances, same)
    assert 0.3 < threshold < 0.7
    assert accuracy_at(distances, same, threshold) == 1.0
    assert roc_auc(distances, same) == 1.0
    assert tar_at_far(distances, same, 0.0)[0] == 1.0


def test_kfold_uses_other_folds_threshold() -> None:
    rng = np.random.default_rng(0)
    same = np.tile([True] * 50 + [False] * 50, 4)
    distances = np.where(same, rng.normal(0.4, 0.1, same.size), rng.normal(0.8, 0.1, same.size))
    folds = np.repeat([1, 2, 3, 4], 100)
    result = kfold_accuracy(distances, same, folds)
    assert len(result.fold_accuracies) == 4
    assert 0.9 < result.mean <= 1.0
    assert all(0.5 < t < 0.7 for t in result.fold_thresholds)


def test_tar_at_far_respects_the_budget() -> None:
    distances = np.array([0.1, 0.2, 0.25, 0.3, 0.4])
    same = np.array([True, False, True, True, False])
    tar, threshold = tar_at_far(distances, same, 0.0)
    assert tar == 1 / 3 and threshold < 0.2
    tar, _ = tar_at_far(distances, same, 0.5)
    assert tar == 1.0

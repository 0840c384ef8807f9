import itertools

import numpy as np

from retinagan.metrics.segmentation import accuracy, best_threshold, dice, roc_auc


def test_dice_by_hand():
    pred = np.array([1, 1, 0, 0], bool)
    truth = np.array([1, 0, 1, 0], bool)
    assert dice(pred, truth) == 0.5
    assert dice(truth, truth) == 1.0
    assert accuracy(pred, truth) == 0.5


def brute_force_auc(scores, truth):
    pos, neg = scores[truth], scores[~truth]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    truth = rng.random(60) < 0.4
    assert abs(roc_auc(scores, truth) - brute_force_auc(scores, truth)) < 1e-12
    assert roc_auc(truth.astype(float), truth) == 1.0


def test_best_threshold_finds_the_gap():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    truth = scores > 0.5
    t = best_threshold(scores, truth)
    assert 0.3 < t <= 0.7

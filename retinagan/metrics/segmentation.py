"""Segmentation scores: pure numpy functions on probability maps and labels."""
from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    pred, truth = pred.astype(bool), truth.astype(bool)
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(pred, truth).sum() / total)


def accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    return float((pred.astype(bool) == truth.astype(bool)).mean())


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged."""
    scores, truth = scores.ravel().astype(np.float64), truth.ravel().astype(bool)
    positives, negatives = truth.sum(), (~truth).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average ranks over runs of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    average = (starts + ends + 1) / 2.0  # 1-based mean rank of each run
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def best_threshold(scores: np.ndarray, truth: np.ndarray, candidates: np.ndarray | None = None) -> float:
    """The threshold on scores that maximises Dice against truth."""
    candidates = np.linspace(0.2, 0.8, 25) if candidates is None else candidates
    return float(max(candidates, key=lambda t: dice(scores >= t, truth)))

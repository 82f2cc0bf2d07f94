"""Gradient-boosted trees as flat arrays: what the learned time model evaluates its per-kernel corrections
with (learned.py)."""

from __future__ import annotations

from typing import Any

import numpy as np


class TreeEnsemble:
    """A fitted GradientBoostingRegressor as flat arrays, evaluated for all rows and trees at once.

    Why: scikit-learn's `predict` validates its input on every call (~1 ms), which alone would cap the
    learned model at a few hundred networks per second; this evaluates the same trees in ~0.1 ms and is
    checked against `predict` in the tests."""

    def __init__(self, gbr: Any):
        trees = [e.tree_ for e in gbr.estimators_[:, 0]]
        n = max(t.node_count for t in trees)
        shape = (len(trees), n)
        self.feature = np.zeros(shape, dtype=np.intp)
        self.threshold = np.zeros(shape)
        self.left = np.full(shape, -1, dtype=np.intp)
        self.right = np.full(shape, -1, dtype=np.intp)
        self.value = np.zeros(shape)
        for i, t in enumerate(trees):
            c = t.node_count
            self.feature[i, :c] = np.maximum(t.feature, 0)  # leaves hold -2: any column, never used
            self.threshold[i, :c] = t.threshold
            self.left[i, :c] = t.children_left
            self.right[i, :c] = t.children_right
            self.value[i, :c] = t.value[:, 0, 0]
        self.depth = max(t.max_depth for t in trees)
        self.learning_rate = float(gbr.learning_rate)
        self.init = float(gbr.init_.predict(np.zeros((1, gbr.n_features_in_)))[0])

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32).astype(np.float64)  # trees compare float32 inputs
        rows = np.arange(len(X))[:, None]
        trees = np.arange(self.feature.shape[0])[None, :]
        node = np.zeros((len(X), self.feature.shape[0]), dtype=np.intp)
        for _ in range(self.depth):
            left = self.left[trees, node]
            go_left = X[rows, self.feature[trees, node]] <= self.threshold[trees, node]
            node = np.where(left < 0, node, np.where(go_left, left, self.right[trees, node]))
        return self.init + self.learning_rate * self.value[trees, node].sum(axis=1)

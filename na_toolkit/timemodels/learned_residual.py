"""Step 3 of the learned time model (learned.py): a boosted correction of the calibrated network latency.

The calibration is linear in the summed kernel predictions and kernel counts per group: it cannot bend where
a network's latency departs from that sum in a way that depends on the network's make-up (how the runtime
schedules many small kernels, the share a group takes). The residual model learns log(measured / calibrated)
on the network's make-up (log(1 + kernel count) and share of the predicted time per group: no absolute
latency, so a profile whose latencies are all k times another's gives predictions exactly k times its) with
small gradient-boosted trees, and its correction is clipped to ±CLIP. It applies only to networks whose
make-up lies within the profile's networks' (RANGE_MARGIN past each feature's range): elsewhere the trees,
constant outside what they saw, learned nothing, and networks of other families were predicted worse with it.

It is kept only where it earns its place: a RESIDUAL_FOLDS-fold cross-validation on the profile's networks
(calibration and residual refitted on each fold's rest) must give a mean |log(predicted / measured)| at least
MIN_GAIN smaller than the calibration alone. Ten-fold cross-validation (three seeds) on committed profiles (2026-12-03,
docs/time_models.md) moved the share of networks within ±10% from 0.904 to 0.965 (this project's AMD EPYC),
0.879 to 0.899 (the same CPU a day earlier), 0.786 to 0.931 (`example-cpu`), 0.393 to 0.427 (`h200-torch-b1`),
and 0.929 to 0.929 on a profile of other families (where the gate dropped it in 16 of 30 folds).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .trees import TreeEnsemble

#: fewer profile networks than this: no residual model (the calibration alone)
RESIDUAL_MIN_NETWORKS = 30
RESIDUAL_FOLDS = 5
#: the cross-validated error the correction must save, relative, to be kept
MIN_GAIN = 0.02
#: how far past the range of the profile's networks (a share of it, per feature) the correction still applies
RANGE_MARGIN = 0.1
#: the largest correction, as a log ratio (±25%)
CLIP = float(np.log(1.25))


def residual_features(X: np.ndarray, n_groups: int) -> np.ndarray:
    """Per network (network features `X`): log(1 + kernels) per group and share of predicted time per group
    (no absolute latency)."""
    sums = np.maximum(X[:, :n_groups], 0.0)
    shares = sums / np.maximum(sums.sum(axis=1, keepdims=True), 1e-12)
    return np.column_stack([np.log1p(X[:, n_groups : 2 * n_groups]), shares])


def _boost(F: np.ndarray, target: np.ndarray, seed: int) -> TreeEnsemble:
    from sklearn.ensemble import GradientBoostingRegressor

    gbr = GradientBoostingRegressor(
        n_estimators=100, max_depth=2, learning_rate=0.05, subsample=0.8, min_samples_leaf=3, random_state=seed
    )
    return TreeEnsemble(gbr.fit(F, target))


class NetworkResidual:
    """The fitted correction: `factor(X)` multiplies the calibrated latencies of networks `X`."""

    def __init__(self, trees: TreeEnsemble, n_groups: int, F_train: np.ndarray):
        self.trees = trees
        self.n_groups = n_groups
        span = np.maximum(F_train.max(axis=0) - F_train.min(axis=0), 1e-9)
        self.low_ = F_train.min(axis=0) - RANGE_MARGIN * span
        self.high_ = F_train.max(axis=0) + RANGE_MARGIN * span

    def factor(self, X: np.ndarray) -> np.ndarray:
        """The correction per network; 1 for a network whose make-up lies outside the profile's networks'
        (past RANGE_MARGIN of a feature's range): the trees learned nothing there (another family's networks,
        `benchmarks/latency-out-of-family.json`, were predicted worse with it than without)."""
        F = residual_features(X, self.n_groups)
        inside = np.all((F >= self.low_) & (F <= self.high_), axis=1)
        return np.where(inside, np.exp(np.clip(self.trees.predict(F), -CLIP, CLIP)), 1.0)

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        y_ms: np.ndarray,
        n_groups: int,
        coef_all: np.ndarray,
        fit_calibration: Callable[[np.ndarray], np.ndarray],
        calibrate: Callable[[np.ndarray, np.ndarray], np.ndarray],
        seed: int = 0,
    ) -> NetworkResidual | None:
        """The residual model of networks `X` (network features) measured at `y_ms`, or None where the
        cross-validation says it saves less than MIN_GAIN of the calibration's error (or there are too few
        networks).
        `coef_all`: the calibration fitted on all of them; `fit_calibration(rows)` fits it on those rows (each
        fold's) and returns its coefficients; `calibrate(X, coef)` applies them."""
        n = len(y_ms)
        if n < RESIDUAL_MIN_NETWORKS:
            return None
        fold = np.random.default_rng([seed, 7]).permutation(n) % RESIDUAL_FOLDS
        alone, corrected = np.zeros(n), np.zeros(n)
        for k in range(RESIDUAL_FOLDS):
            train, test = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            coef = fit_calibration(train)
            base_train, base_test = calibrate(X[train], coef), calibrate(X[test], coef)
            F_train = residual_features(X[train], n_groups)
            model = cls(_boost(F_train, np.log(y_ms[train] / base_train), seed), n_groups, F_train)
            alone[test] = np.abs(np.log(base_test / y_ms[test]))
            corrected[test] = np.abs(np.log(base_test * model.factor(X[test]) / y_ms[test]))
        if alone.mean() - corrected.mean() < max(MIN_GAIN * alone.mean(), 1e-3):  # and at least 0.1% of latency
            return None
        base = calibrate(X, coef_all)
        F = residual_features(X, n_groups)
        return cls(_boost(F, np.log(y_ms / base), seed), n_groups, F)

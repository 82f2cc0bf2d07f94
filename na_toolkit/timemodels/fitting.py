"""The least-squares fits of the learned time model (learned.py): non-negative least squares weighted to relative
errors (a kernel kind's cost-linear base), and the network calibration's robust bounded fit."""

from __future__ import annotations

import numpy as np

#: fewer networks than this: no network calibration (kernel sums only)
MIN_NETWORKS = 5


def nnls_relative(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    coef, _ = nnls(X * w[:, None], y * w)
    return coef


def robust_relative_lstsq(
    X: np.ndarray, y: np.ndarray, n_sums: int, count_lower: np.ndarray | None = None, rounds: int = 3, k: float = 3.0
) -> tuple[np.ndarray, int]:
    """Least squares on relative errors (rows weighted by 1/y) with the first `n_sums` coefficients (the
    kernel sums) kept >= 0 and the next `n_sums` (the per-kernel terms) >= `count_lower` where given, refitted
    without outliers: residuals beyond k robust standard deviations (1.4826 x the median absolute residual, at
    least 5%). Returns the coefficients and the number of
    networks left out."""
    from scipy.optimize import lsq_linear

    w = 1.0 / y
    lower = np.full(X.shape[1], -np.inf)
    lower[:n_sums] = 0.0
    if count_lower is not None:  # the per-kernel terms that follow the sums
        lower[n_sums : 2 * n_sums] = count_lower
    keep = np.ones(len(y), dtype=bool)
    coef = np.zeros(X.shape[1])
    for _ in range(rounds):
        coef = lsq_linear(X[keep] * w[keep, None], y[keep] * w[keep], bounds=(lower, np.inf)).x
        rel = (X @ coef - y) / y
        scale = max(1.4826 * float(np.median(np.abs(rel[keep]))), 0.05)
        new_keep = np.abs(rel) <= k * scale
        if new_keep.sum() < max(MIN_NETWORKS, X.shape[1] + 2) or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return coef, int((~keep).sum())

"""The least-squares fits of the learned time model (learned.py): non-negative least squares weighted to relative
errors (a kernel kind's cost-linear base), the network calibration's robust bounded fit, and the floor under a
calibrated network latency."""

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


#: the floor under a calibrated network latency, as a share of its kernel sum, where the profile's networks
#: do not set one (`floor_share`)
FLOOR_SHARE = 0.25
#: a profile's networks set the floor at this share of the lowest (measured / kernel sum) among them
FLOOR_MARGIN = 0.5


def floor_share(X: np.ndarray, y_ms: np.ndarray, n_groups: int) -> float:
    """The floor for networks `X` measured at `y_ms`: FLOOR_SHARE, or lower where the profile's own networks
    took less than that share of their kernel sum. Kernels timed alone each carry a runtime call's overhead,
    which a network of many tiny kernels (a small CNN on a CPU) pays once: such a network can take a tenth of
    its kernel sum, and a fixed quarter floored it 20-50% too high, its own profile's networks included."""
    sums = X[:, :n_groups].sum(axis=1)
    ratios = y_ms[sums > 0] / sums[sums > 0]
    return float(min(FLOOR_SHARE, FLOOR_MARGIN * ratios.min())) if len(ratios) else FLOOR_SHARE


def calibrated(X: np.ndarray, coef: np.ndarray, share: float = FLOOR_SHARE) -> np.ndarray:
    """Network features `X` (G group sums, G kernel counts, 1) through calibration `coef`; far outside the
    profile a negative overhead term could dominate: never below `share` of the kernel sum (`floor_share`)."""
    floor = share * X[:, : (len(coef) - 1) // 2].sum(axis=1)
    return np.maximum(X @ coef, np.maximum(floor, 1e-6))

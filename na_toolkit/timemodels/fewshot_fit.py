"""The two forms a few-shot latency model chooses between (profile_fewshot.py), each fitted on the new device's
few measured networks and judged by its leave-one-out error in log space (the errors that matter are relative),
each network's error weighed by its share of the candidate pool (the choice takes the pool's extremes):

- **ridge**: log t = b + c · z, z the standardised features (each prior's predicted log latency, log FLOPs, log
  kernel count). It rescales the priors' whole-network predictions and blends them, but cannot weigh a kernel
  group (convolutions, depthwise convolutions, adds, the rest) differently from how every prior does.
- **groups** (one per prior): t = Σ_g w_g · T_g + o · kernels + c, T_g the prior's calibrated time of group g
  in the network (its summed kernel predictions times its calibration, plus its per-kernel term), least
  squares on relative errors with w_g >= 0 shrunk towards one common scale s: λ · Σ_g (w_g - s)². A large λ
  is the prior rescaled as a whole; a small one lets a group cost relatively more or less on the new device
  than on the prior (a depthwise convolution is relatively cheaper on one CPU than on another). A group the
  measured networks lack follows s. λ is chosen by leave-one-out, like the ridge's strength.

On committed full profiles used as pools (20 networks chosen, the rest scored, six resampled pools each;
2026-12-03, docs/time_models.md), choosing between the two forms, with the group shares in the choice, placed
94% of the AMD EPYC's and 94% of the Xeon's networks within ±20% where the ridge alone on the earlier choice
placed 80% and 66%; on a GPU with CPU priors the leave-one-out keeps the ridge (about half, either way).
"""

from __future__ import annotations

import numpy as np

from .kernels import Kernel
from .learned import GROUPS, KernelLatencyModel

#: ridge strengths the leave-one-out chooses from (on standardised features and log latency)
ALPHA_GRID: tuple[float, ...] = (1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
#: shrinkage strengths of the groups form the leave-one-out chooses from (relative errors vs the weights)
LAMBDA_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


# ---- ridge ----------------------------------------------------------------------------------------------
def ridge(Z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge with an unpenalised intercept, closed form on centred columns."""
    zm, ym = Z.mean(axis=0), float(y.mean())
    Zc = Z - zm
    coef = np.linalg.solve(Zc.T @ Zc + alpha * np.eye(Z.shape[1]), Zc.T @ (y - ym))
    return coef, ym - float(zm @ coef)


def ridge_loo(Z: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """(leave-one-out squared error, strength) of the ALPHA_GRID strength with the smallest error (y is log
    latency, so that is the squared log ratio), each network's error times its weight (default 1)."""
    n = len(y)
    w = np.ones(n) if weights is None else weights
    best = (np.inf, ALPHA_GRID[0])
    for alpha in ALPHA_GRID:
        err = 0.0
        for i in range(n):
            keep = np.arange(n) != i
            coef, b = ridge(Z[keep], y[keep], alpha)
            err += w[i] * float(Z[i] @ coef + b - y[i]) ** 2
        if err < best[0] - 1e-12:
            best = (err, alpha)
    return best


# ---- groups ---------------------------------------------------------------------------------------------
def group_times(prior: KernelLatencyModel, arch_kernels: list[list[Kernel]]) -> np.ndarray:
    """Per network: the prior's calibrated time of each kernel group (GROUPS) and, last, the kernel count."""
    X = prior.network_features(arch_kernels)
    G = len(GROUPS)
    coef = prior.calibration_
    T = X[:, :G] * coef[:G] + X[:, G : 2 * G] * coef[G : 2 * G]
    return np.column_stack([T, X[:, G : 2 * G].sum(axis=1)])


def group_shares(prior: KernelLatencyModel, arch_kernels: list[list[Kernel]]) -> np.ndarray:
    """Per network: each group's share of the prior's predicted time (what the groups form can reweigh)."""
    T = np.maximum(group_times(prior, arch_kernels)[:, : len(GROUPS)], 0.0)
    return T / np.maximum(T.sum(axis=1, keepdims=True), 1e-12)


def _design(TN: np.ndarray) -> np.ndarray:
    """Columns [T_1..T_G, s (no data: only the penalty), kernels, 1]."""
    n = len(TN)
    return np.column_stack([TN[:, : len(GROUPS)], np.zeros(n), TN[:, len(GROUPS)], np.ones(n)])


def groups_fit(TN: np.ndarray, y_ms: np.ndarray, lam: float) -> np.ndarray:
    """The groups form's parameters [w_1..w_G, s, o, c] (see the module docstring)."""
    from scipy.optimize import lsq_linear

    G = len(GROUPS)
    A = _design(TN) / y_ms[:, None]
    penalty = np.zeros((G, A.shape[1]))
    penalty[np.arange(G), np.arange(G)] = 1.0
    penalty[:, G] = -1.0
    lower = np.full(A.shape[1], -np.inf)
    lower[: G + 1] = 0.0
    A2 = np.vstack([A, np.sqrt(lam) * penalty])
    b2 = np.concatenate([np.ones(len(y_ms)), np.zeros(G)])
    return lsq_linear(A2, b2, bounds=(lower, np.inf)).x


def groups_predict(TN: np.ndarray, params: np.ndarray) -> np.ndarray:
    # never below a quarter of the prior's own sum scaled by s (a negative overhead far outside the data)
    G = len(GROUPS)
    floor = 0.25 * params[G] * np.maximum(TN[:, :G].sum(axis=1), 0.0)
    return np.maximum(_design(TN) @ params, np.maximum(floor, 1e-6))


def groups_loo(TN: np.ndarray, y_ms: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """(leave-one-out squared log error, λ) of the LAMBDA_GRID strength with the smallest error, each
    network's error times its weight (default 1)."""
    n = len(y_ms)
    w = np.ones(n) if weights is None else weights
    best = (np.inf, LAMBDA_GRID[-1])
    for lam in LAMBDA_GRID:
        err = 0.0
        for i in range(n):
            keep = np.arange(n) != i
            pred = groups_predict(TN[i : i + 1], groups_fit(TN[keep], y_ms[keep], lam))[0]
            err += w[i] * float(np.log(pred / y_ms[i])) ** 2
        if err < best[0] - 1e-12:
            best = (err, lam)
    return best

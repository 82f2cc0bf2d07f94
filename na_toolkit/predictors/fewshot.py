"""Few-shot latency on a new device, with other devices' measurements as prior knowledge.

HELP (Lee et al., "HELP: hardware-adaptive efficient latency prediction for NAS via meta-learning", NeurIPS
2021) meta-learns across devices so that a handful of measurements on a new device suffice. This module
does the same with closed-form pieces:

1. **Kernel basis** (the time models' view of a network): `na_toolkit.timemodels.kernels.kernels_of` splits an
   architecture into the kernels an inference runtime executes (conv+BN+ReLU fused, adds, pools ...). A
   network's latency is close to additive over its kernels (nn-Meter, Zhang et al., MobiSys 2021), so the
   features of a network are the counts of each kernel configuration plus, per kernel kind, total count,
   FLOPs and bytes (these carry over to configurations no prior network had).
2. **Prior** (`LatencyPrior`, other devices' data only): for every prior device, an additive model
   latency ≈ b + Σ features·t fit by ridge on that device's measurements. Each prior device is a basis
   function: its predicted latency of any architecture (measured tables are not needed at prediction time, so
   new architectures work). The adaptation's regularisation is *meta-learned*: few-shot fits are simulated on
   every prior device (the others as basis) and the strength with the best mean rank correlation is kept.
3. **Adaptation** (`FewShotLatencyPredictor.fit(archs, y)` with the target device's few samples): a ridge
   regression of the target's latency on the prior devices' predicted latencies (normalised to the samples'
   mean), with the kernel features next to them at a smaller weight. Nothing of the target device is used
   beyond the samples given to `fit`.

Without a prior the predictor is a ridge on the kernel features alone (the baseline of the benchmark).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import ConfigDict, Field, field_validator

from .. import validation
from ..errors import DataError
from .base import Predictor, decode_array, encode_array
from .features import FeatureMatrix, kernel_features, kernel_matrix
from .targets import metric_target

#: bump when the latency features of an architecture change (saved priors and predictors check it)
LATENCY_FEATURES_VERSION = 1

__all__ = ["FewShotLatencyPredictor", "LatencyPrior", "kernel_features", "kernel_matrix"]
#: regularisation strengths the adaptation chooses from
ALPHA_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
#: weights of the kernel features next to the prior-device basis (0: basis only; a weight w divides that
#: column's penalty by w²)
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0)
#: architectures each simulated few-shot fit is scored on while meta-learning (a random subset: enough for a
#: stable rank correlation, and the meta-learning stays seconds on a 15,625-cell table)
META_SCORED = 2000
#: fewest samples for choosing (alpha, weight) by leave-one-out on the samples; fewer: the prior's meta-learned pair
MIN_LOO_SAMPLES = 6


def _ridge_fit(
    X: np.ndarray, y: np.ndarray, alpha: float, weights: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """scikit-learn's `Ridge` (unpenalised intercept), with per-column penalties: `weights` scale a column's
    penalty down to alpha / weight² (columns with a small weight are shrunk harder). Ridge takes one alpha
    for all columns, so the columns are multiplied by their weights and the coefficients by them again:
    alpha·Σ(c'_j)² with c_j = w_j·c'_j is the penalty alpha·Σ c_j² / w_j². The Cholesky solver is the
    closed form (the n x n dual form when there are more columns than samples)."""
    from sklearn.linear_model import Ridge

    w = np.ones(X.shape[1]) if weights is None else np.maximum(weights, 1e-12)
    model = Ridge(alpha=alpha, fit_intercept=True, solver="cholesky").fit(X * w, y)
    return model.coef_ * w, float(model.intercept_)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    r = spearmanr(a, b)[0]
    return float(r) if np.isfinite(r) else 0.0


class LatencyPrior:
    """Other devices' latency structure: one additive kernel model per prior device, and the adaptation
    strength meta-learned on them. Build it with `LatencyPrior.fit(archs, {device: latencies_ms})`."""

    def __init__(
        self,
        names: Sequence[str],
        devices: Sequence[str],
        coef: np.ndarray,
        intercept: np.ndarray,
        alpha: float,
        weight: float = 0.0,
        meta_scores: Mapping[str, float] | None = None,
    ):
        self.names = list(names)
        self.devices = list(devices)
        self.coef = np.asarray(coef, dtype=np.float64)  # [devices, features]
        self.intercept = np.asarray(intercept, dtype=np.float64)  # [devices]
        self.alpha = float(alpha)
        self.weight = float(weight)
        self.meta_scores = dict(meta_scores or {})

    @classmethod
    def fit(
        cls,
        archs: Sequence[Any],
        latencies_ms: Mapping[str, Any],
        shots: int = 20,
        meta_seeds: int = 3,
        fit_alpha: float = 1e-3,
        seed: int = 0,
    ) -> LatencyPrior:
        """Fit the per-device models on `archs` (every device's latencies for every architecture) and
        meta-learn the adaptation strength by simulating `shots`-sample fits on each prior device."""
        archs = list(archs)
        if len(latencies_ms) < 1:
            raise DataError("a latency prior needs at least one prior device")
        if len(archs) < 10:
            raise DataError(f"a latency prior needs measurements of at least 10 architectures, got {len(archs)}")
        names = sorted(set().union(*(kernel_features(a) for a in archs)))
        X = kernel_matrix(archs, names)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        devices, coefs, intercepts, Y = [], [], [], []
        for device, values in latencies_ms.items():
            y = np.asarray(values, dtype=np.float64)
            if y.shape != (len(archs),):
                raise DataError(
                    f"prior device {device!r}: {y.shape[0] if y.ndim else 0} latencies for {len(archs)} architectures"
                )
            if not np.all(np.isfinite(y)) or np.any(y <= 0):
                raise DataError(f"prior device {device!r}: latencies must be positive and finite")
            c, b = _ridge_fit(X / scale, y / y.mean(), fit_alpha)
            devices.append(str(device))
            coefs.append(c / scale * y.mean())
            intercepts.append(b * y.mean())
            Y.append(y)
        prior = cls(names, devices, np.stack(coefs), np.array(intercepts), alpha=1.0, weight=0.0)
        if len(devices) >= 2:
            (prior.alpha, prior.weight), prior.meta_scores = prior._meta_learn(
                X, np.stack(Y, axis=1), shots, meta_seeds, seed
            )
        return prior

    def _meta_learn(self, X: np.ndarray, Y: np.ndarray, shots: int, seeds: int, seed: int):
        """Leave-one-device-out: each prior device plays the new device, the others the basis; the
        (alpha, weight) with the best mean Spearman over devices and seeds wins."""
        basis_all = X @ self.coef.T + self.intercept  # [n, devices]
        n = X.shape[0]
        k = min(shots, n - 2)
        rng = np.random.default_rng(seed)
        splits = [rng.permutation(n) for _ in range(seeds)]
        grid = [(a, w) for a in ALPHA_GRID for w in WEIGHT_GRID]
        scores: dict[tuple[float, float], list[float]] = {g: [] for g in grid}
        for d in range(len(self.devices)):
            others = [j for j in range(len(self.devices)) if j != d]
            for perm in splits:
                tr, te = perm[:k], perm[k : k + META_SCORED]
                for a, w in grid:
                    pred = _adapt_predict(
                        basis_all[tr][:, others], X[tr], Y[tr, d], basis_all[te][:, others], X[te], a, w
                    )
                    scores[(a, w)].append(_spearman(pred, Y[te, d]))
        mean = {g: float(np.mean(v)) for g, v in scores.items()}
        best = max(mean, key=mean.get)
        return best, {f"alpha={a},weight={w}": v for (a, w), v in mean.items()}

    def basis(self, archs: Sequence[Any], X: np.ndarray | None = None) -> np.ndarray:
        """Predicted latency (ms) of each prior device for each architecture: [n, devices]."""
        if X is None:
            X = kernel_matrix(archs, self.names)
        return X @ self.coef.T + self.intercept

    def without(self, *devices: str) -> LatencyPrior:
        """The same prior with some devices removed (alpha kept)."""
        keep = [i for i, d in enumerate(self.devices) if d not in devices]
        return LatencyPrior(
            self.names,
            [self.devices[i] for i in keep],
            self.coef[keep],
            self.intercept[keep],
            self.alpha,
            self.weight,
            self.meta_scores,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "features_version": LATENCY_FEATURES_VERSION,
            "names": self.names,
            "devices": self.devices,
            "coef": encode_array(self.coef),
            "intercept": encode_array(self.intercept),
            "alpha": self.alpha,
            "weight": self.weight,
            "meta_scores": self.meta_scores,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> LatencyPrior:
        if doc.get("features_version") != LATENCY_FEATURES_VERSION:
            raise DataError(
                f"latency prior uses features version {doc.get('features_version')}, this na_toolkit computes "
                f"{LATENCY_FEATURES_VERSION}; rebuild it"
            )
        return cls(
            doc["names"],
            doc["devices"],
            decode_array(doc["coef"]),
            decode_array(doc["intercept"]),
            doc["alpha"],
            doc.get("weight", 0.0),
            doc.get("meta_scores"),
        )

    def __repr__(self) -> str:
        return (
            f"LatencyPrior(devices={self.devices}, features={len(self.names)}, alpha={self.alpha}, "
            f"weight={self.weight})"
        )


def _adapt_design(basis: np.ndarray, X: np.ndarray, ref: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Columns: prior devices' predicted latencies and kernel features, each divided by its mean over the
    training samples (`ref`), so one alpha fits devices of any speed."""
    bm, xm = ref
    return np.hstack([basis / bm, X / xm])


def _adapt_fit(basis, X, y, alpha, weight):
    bm = np.where(np.abs(basis.mean(axis=0)) > 1e-12, basis.mean(axis=0), 1.0)
    xm = X.mean(axis=0)
    xm = np.where(xm > 0, xm, 1.0)
    ref = (bm, xm)
    D = _adapt_design(basis, X, ref)
    weights = np.concatenate([np.ones(basis.shape[1]), np.full(X.shape[1], weight)])
    if basis.shape[1] == 0:
        weights = np.ones(X.shape[1])  # no prior: the kernel features are all there is
    ys = float(np.mean(y))
    coef, b = _ridge_fit(D, y / ys, alpha, weights)
    return ref, coef * ys, b * ys


def _adapt_predict(basis_tr, X_tr, y_tr, basis_te, X_te, alpha, weight):
    ref, coef, b = _adapt_fit(basis_tr, X_tr, y_tr, alpha, weight)
    return _adapt_design(basis_te, X_te, ref) @ coef + b


def _loo_select(basis: np.ndarray, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(alpha, weight) with the smallest leave-one-out squared relative error on the samples."""
    n = len(y)
    best: tuple[float, float, float] | None = None
    weights = WEIGHT_GRID if basis.shape[1] else (1.0,)
    for a in ALPHA_GRID:
        for w in weights:
            err = 0.0
            for i in range(n):
                m = np.arange(n) != i
                pred = _adapt_predict(basis[m], X[m], y[m], basis[i : i + 1], X[i : i + 1], a, w)[0]
                err += (pred / y[i] - 1.0) ** 2
            if best is None or err < best[0] - 1e-12:
                best = (err, a, w)
    assert best is not None
    return best[1], best[2]


def check_prior(prior: Any) -> None:
    """DataError unless `prior` is a `LatencyPrior` or None (a file name or a device name is not one)."""
    if prior is not None and not isinstance(prior, LatencyPrior):
        raise DataError(
            f"prior is {prior!r} ({type(prior).__name__}), not a LatencyPrior: build one in Python with "
            "LatencyPrior.fit(archs, {device: latencies_ms}) and pass the object (a saved fewshot-latency "
            "predictor keeps its own); for a new device's time model from other devices' profiles, use "
            "`na-toolkit profile --fewshot N --prior PROFILE`"
        )


class FewShotLatencyPredictor(Predictor):
    """Latency (ms) on a new device from a few of its measurements (`fit(archs, latencies_ms)`), with a
    `LatencyPrior` of other devices (`prior=`). The ridge strength `alpha` and the kernel features' weight
    are chosen by leave-one-out on the samples (from 6 samples on; fewer: the prior's meta-learned pair);
    give them to fix them."""

    name = "fewshot-latency"
    description = "few-shot latency on a new device: ridge on other devices' additive kernel models (HELP-style prior)"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        prior: Any = Field(
            None,
            description="a LatencyPrior of other devices (Python API)",
            json_schema_extra={"type_name": "LatencyPrior | none"},
        )
        alpha: float | None = Field(None, gt=0, description="ridge strength (default: chosen by leave-one-out)")
        weight: float | None = Field(None, ge=0, description="weight of the kernel features (default: chosen)")

        @field_validator("prior")
        @classmethod
        def _a_prior(cls, value: Any) -> Any:
            check_prior(value)
            return value

    min_samples = 3

    def __init__(self, prior: LatencyPrior | None = None, alpha: float | None = None, weight: float | None = None):
        self.prior = prior
        self.alpha = alpha
        self.weight = weight

    def _basis(self, archs: list, X: np.ndarray) -> np.ndarray:
        return self.prior.basis(archs, X) if self.prior is not None else np.zeros((len(X), 0))

    def _fit_matrix(self, X: np.ndarray, y: np.ndarray) -> None:
        basis = self._basis([], X)
        if self.alpha is not None and (self.weight is not None or self.prior is None):
            chosen = (float(self.alpha), float(self.weight or 0.0))
        elif len(y) >= MIN_LOO_SAMPLES:
            chosen = _loo_select(basis, X, y)
        elif self.prior is not None:
            chosen = (self.prior.alpha, self.prior.weight)
        else:
            chosen = (1.0, 1.0)
        if self.alpha is not None:
            chosen = (float(self.alpha), chosen[1])
        if self.weight is not None:
            chosen = (chosen[0], float(self.weight))
        self.alpha_, self.weight_ = chosen
        self.ref_, self.coef_, self.intercept_ = _adapt_fit(basis, X, y, self.alpha_, self.weight_)
        # the domain (`Predictor.domain_warnings`): the samples' kernel features, as the feature predictors'
        self.features_ = FeatureMatrix(self.names_, feature_set="kernels")
        self.X_train_, self.y_train_ = X, y

    def _fit(self, archs: list, y: np.ndarray, datasets: Any) -> None:
        check_prior(self.prior)
        if np.any(y <= 0):
            raise DataError("latencies must be positive")
        if self.prior is not None:
            self.names_ = list(self.prior.names)
        else:
            self.names_ = sorted(set().union(*(kernel_features(a) for a in archs)))
        self._fit_matrix(kernel_matrix(archs, self.names_), y)

    def _clip(self, mean: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
        """Clipped into the target's range (`for_target`), and without one into a latency's (ms, never negative):
        a ridge extrapolating below 0 is clipped and says so."""
        return (self.target or metric_target("latency_ms")).clip(mean)

    def _predict(self, archs: list, datasets: Any) -> np.ndarray:
        X = kernel_matrix(archs, self.names_)
        return _adapt_design(self._basis(archs, X), X, self.ref_) @ self.coef_ + self.intercept_

    def to_json(self) -> dict[str, Any]:
        doc = super().to_json()
        doc["params"] = {"alpha": self.alpha, "weight": self.weight}  # the prior is data: kept in the state
        return doc

    def _state_to_json(self) -> dict[str, Any]:
        return {
            "prior": None if self.prior is None else self.prior.to_json(),
            "features_version": LATENCY_FEATURES_VERSION,
            "names": self.names_,
            "X_train": encode_array(self.X_train_),
            "y_train": encode_array(self.y_train_),
        }

    def _state_from_json(self, state: dict[str, Any]) -> None:
        if state.get("features_version") != LATENCY_FEATURES_VERSION:
            raise DataError("saved few-shot latency predictor uses other latency features; refit it")
        from .saved_state import saved_training_rows

        self.prior = None if state["prior"] is None else LatencyPrior.from_json(state["prior"])
        self.names_ = list(state["names"])
        if self.prior is not None and self.names_ != self.prior.names:
            raise DataError("saved few-shot latency predictor's kernel features differ from its prior's; refit it")
        self._fit_matrix(*saved_training_rows(state, len(self.names_), positive=True))

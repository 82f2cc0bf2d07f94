"""Feature-based predictors: scikit-learn regressors on the IR features of `features.py`.

Each class names its model and the uncertainty it gives:
- `random-forest`: bagged trees; std = spread of the trees' predictions.
- `extra-trees`: extremely randomised trees (Geurts et al. 2006); std = spread of the trees.
- `gbm`: gradient boosting (Friedman 2001) on the same features; no uncertainty of its own.
- `bayesian-ridge`: a linear model on standardised features with a Bayesian posterior; std = predictive std.
- `kernel-ridge`: the same Bayesian ridge on the runtime kernels of the network (counts per fused-kernel
  configuration, per-kind FLOPs and bytes): times are close to additive over kernels (nn-Meter), so this is
  the model for training time and latency.
- `gp`: Gaussian process (Matern 5/2 + white noise, ARD off) on standardised features; std = posterior std.
- `ensemble` (the default): the mean of random-forest, extra-trees and gbm on the same standardised
  targets (mean 0, std 1); std combines the forests' spread with the disagreement between the members. Trees ensembles
  are the strongest feature-based predictors on NAS-Bench-201 at small sample sizes (White et al.,
  "How powerful are performance predictors in NAS?", NeurIPS 2021), and averaging unlike models cuts
  their variance.

The models (scikit-learn) are imported inside `fit`/`predict`. Persistence keeps the training feature
matrix and targets and refits on load (models are seeded, so the refit model predicts the same).

`feature_regressor.FeatureRegressor(predictor)` is a feature predictor's array half on its own: a plain
scikit-learn regressor on a feature matrix, on which scikit-learn's estimator checks run.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import AfterValidator, ConfigDict, Field

from .. import validation
from ..errors import DataError
from .base import Predictor, encode_array
from .features import FeatureMatrix


def _count_or_fraction(value: Any, names: tuple[str, ...] = (), none: bool = False) -> Any:
    """scikit-learn's "count or fraction" parameters: an int >= 1, a float in (0, 1], or a named rule."""
    if (none and value is None) or (isinstance(value, str) and value in names):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, float) and 0 < value <= 1:
        return value
    rules = "".join(f', "{n}"' for n in names) + (" or none" if none else "")
    raise ValueError(f"must be an int >= 1 or a float in (0, 1]{rules}")


#: options shared by the tree predictors (scikit-learn's own ranges, checked before anything is fitted)
MaxFeatures = Annotated[Any, AfterValidator(lambda v: _count_or_fraction(v, ("sqrt", "log2"), none=True))]
MinSamplesLeaf = Annotated[Any, AfterValidator(_count_or_fraction)]
_MAX_FEATURES = Field(
    0.3,
    description='features per split: a fraction, a count, "sqrt" or "log2"',
    json_schema_extra={"type_name": 'float | int | "sqrt" | "log2" | none'},
)
_LOG_TARGET = Field(False, description="fit the log of the target (positive targets: times, latencies)")
_RANDOM_STATE = Field(0, description="model seed (none: the search's random_seed, or predict fit's --seed)")


#: the most trees / boosting stages a predictor takes: past a few thousand a forest no longer improves, and a
#: saved predictor is refitted when loaded (n_estimators = 10**7 in a file ran for hours)
MAX_ESTIMATORS = 10_000


class FeaturePredictor(Predictor):
    """Shared machinery: features -> optional log target -> standardised target -> model(s)."""

    has_uncertainty = False
    #: which features (`features.FEATURE_SETS`): "ir" (structure, paths, cost) or "kernels" (additive
    #: runtime kernels, for times)
    feature_set: ClassVar[str] = "ir"

    def _make_model(self) -> Any:
        raise NotImplementedError

    # ---- target transform: log for positive quantities (times, latencies), then standardise --------------
    def _y_forward(self, y: np.ndarray) -> np.ndarray:
        if getattr(self, "log_target", False):
            if np.any(y <= 0):
                raise DataError("log_target=True needs positive targets")
            y = np.log(y)
        return (y - self.y_mean_) / self.y_scale_

    def _y_backward(self, z: np.ndarray, std: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        mean = z * self.y_scale_ + self.y_mean_
        s = None if std is None else std * self.y_scale_
        if getattr(self, "log_target", False):
            # delta method: sd of exp(m) ~ exp(m) * sd
            mean = np.exp(mean)
            s = None if s is None else mean * s
        return mean, s

    def _fit(self, archs: list, y: np.ndarray, datasets: Any) -> None:
        features = FeatureMatrix.fit(archs, datasets, self.feature_set)
        X = features.transform(archs, datasets)
        self._fit_matrix(features, X, y)

    def _fit_matrix(self, features: FeatureMatrix, X: np.ndarray, y: np.ndarray) -> None:
        t = np.log(y) if getattr(self, "log_target", False) and np.all(y > 0) else y
        self.y_mean_ = float(np.mean(t))
        self.y_scale_ = float(np.std(t)) or 1.0
        z = self._y_forward(y)
        model = self._make_model()
        model.fit(X, z)
        self.features_ = features
        self.X_train_ = X
        self.y_train_ = y
        self.model_ = model

    def _predict_z(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.model_.predict(X), None

    def _predict(self, archs: list, datasets: Any) -> np.ndarray:
        z, _ = self._predict_z(self.features_.transform(archs, datasets))
        return self._y_backward(z)[0]

    def _raw_predict_with_std(self, archs: Any, datasets: Any) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        archs = self._check_archs(archs)
        if not archs:
            return np.zeros(0), np.zeros(0)
        datasets = self._datasets(datasets)
        z, zs = self._predict_z(self.features_.transform(archs, datasets))
        mean, std = self._y_backward(z, zs if zs is not None else np.zeros_like(z))
        return self._to_target_scale(mean, std, datasets)

    # ---- persistence: training data + refit -----------------------------------------------------------------
    def _state_to_json(self) -> dict[str, Any]:
        return {
            "features": self.features_.to_json(),
            "X_train": encode_array(self.X_train_),
            "y_train": encode_array(self.y_train_),
        }

    def _state_from_json(self, state: dict[str, Any]) -> None:
        from .saved_state import saved_features, saved_training_rows

        features = saved_features(state["features"])
        self._fit_matrix(features, *saved_training_rows(state, features.n_features))


def _tree_spread(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    per_tree = np.stack([t.predict(X) for t in model.estimators_])
    return per_tree.mean(axis=0), per_tree.std(axis=0)


class RandomForestPredictor(FeaturePredictor):
    name = "random-forest"
    description = "random forest on IR features (DAG paths, per-type counts, cost); std = spread of the trees"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        n_estimators: int = Field(300, ge=1, le=MAX_ESTIMATORS, description="trees")
        max_features: MaxFeatures = _MAX_FEATURES
        min_samples_leaf: MinSamplesLeaf = Field(
            1, description="samples per leaf: a count, or a fraction", json_schema_extra={"type_name": "int | float"}
        )
        log_target: bool = _LOG_TARGET
        random_state: int | None = _RANDOM_STATE
        n_jobs: int | None = Field(None, description="parallel jobs (scikit-learn's n_jobs)")

    has_uncertainty = True

    def __init__(
        self,
        n_estimators: int = 300,
        max_features: float = 0.3,
        min_samples_leaf: int = 1,
        log_target: bool = False,
        random_state: int = 0,
        n_jobs: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.log_target = log_target
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _make_model(self):
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )

    def _predict_z(self, X):
        return _tree_spread(self.model_, X)


class ExtraTreesPredictor(RandomForestPredictor):
    name = "extra-trees"
    description = "extremely randomised trees on IR features; std = spread of the trees"

    def _make_model(self):
        from sklearn.ensemble import ExtraTreesRegressor

        return ExtraTreesRegressor(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )


class GradientBoostingPredictor(FeaturePredictor):
    name = "gbm"
    description = "gradient boosted trees on IR features"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        n_estimators: int = Field(300, ge=1, le=MAX_ESTIMATORS, description="boosting stages")
        learning_rate: float = Field(0.05, gt=0)
        max_depth: int | None = Field(3, ge=1, description="depth of each tree")
        subsample: float = Field(0.8, gt=0, le=1, description="fraction of samples per stage")
        log_target: bool = _LOG_TARGET
        random_state: int | None = _RANDOM_STATE

    def __init__(
        self,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        subsample: float = 0.8,
        log_target: bool = False,
        random_state: int = 0,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.log_target = log_target
        self.random_state = random_state

    def _make_model(self):
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            subsample=self.subsample,
            random_state=self.random_state,
        )


class _Standardised:
    """Standardise features (constant ones dropped) in front of a model; keeps `predict(X, return_std)`.
    Training rows that differ in no feature leave nothing to fit: one DataError, not scikit-learn's crash."""

    def __init__(self, model: Any):
        self.model = model

    def fit(self, X, y):
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.keep_ = scale > 1e-12
        if not self.keep_.any():
            raise DataError(
                f"the {X.shape[0]} training networks do not differ in any feature (all identical, as this "
                f"predictor sees them); fit on networks that differ"
            )
        self.scale_ = np.where(self.keep_, scale, 1.0)
        self.model.fit(self._t(X), y)
        return self

    def _t(self, X):
        return ((X - self.mean_) / self.scale_)[:, self.keep_]

    def predict(self, X, return_std: bool = False):
        return self.model.predict(self._t(X), return_std=return_std)


class BayesianRidgePredictor(FeaturePredictor):
    name = "bayesian-ridge"
    description = "Bayesian ridge regression on standardised IR features; std = predictive std"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        log_target: bool = _LOG_TARGET
        max_iter: int = Field(300, ge=1, description="iterations of the evidence maximisation")

    has_uncertainty = True

    def __init__(self, log_target: bool = False, max_iter: int = 300):
        self.log_target = log_target
        self.max_iter = max_iter

    def _make_model(self):
        from sklearn.linear_model import BayesianRidge

        return _Standardised(BayesianRidge(max_iter=self.max_iter))

    def _predict_z(self, X):
        return self.model_.predict(X, return_std=True)


class KernelRidgePredictor(BayesianRidgePredictor):
    name = "kernel-ridge"
    description = (
        "additive time model: Bayesian ridge on runtime-kernel counts (for training time, latency); "
        "std = predictive std"
    )
    feature_set = "kernels"


class GaussianProcessPredictor(FeaturePredictor):
    name = "gp"
    description = "Gaussian process (Matern 5/2 + white noise) on standardised IR features; std = posterior std"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        length_scale: float = Field(10.0, gt=0, description="initial Matern length scale (fitted)")
        noise: float = Field(0.1, gt=0, description="initial white-noise level (fitted)")
        log_target: bool = _LOG_TARGET
        n_restarts: int = Field(1, ge=0, description="restarts of the kernel optimizer")
        random_state: int | None = _RANDOM_STATE

    has_uncertainty = True

    def __init__(
        self,
        length_scale: float = 10.0,
        noise: float = 0.1,
        log_target: bool = False,
        n_restarts: int = 1,
        random_state: int = 0,
    ):
        self.length_scale = length_scale
        self.noise = noise
        self.log_target = log_target
        self.n_restarts = n_restarts
        self.random_state = random_state

    def _make_model(self):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(self.length_scale, (1e-1, 1e4), nu=2.5) + WhiteKernel(
            self.noise, (1e-8, 1e1)
        )
        return _Standardised(
            GaussianProcessRegressor(kernel, n_restarts_optimizer=self.n_restarts, random_state=self.random_state)
        )

    def _predict_z(self, X):
        return self.model_.predict(X, return_std=True)

    def _fit_matrix(self, features, X, y):
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        # a kernel hyperparameter at its bound (e.g. noise ~0 on noiseless targets) is a fine optimum here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            super()._fit_matrix(features, X, y)


class EnsemblePredictor(FeaturePredictor):
    name = "ensemble"
    description = (
        "default: mean of random forest, extra trees and gradient boosting on IR features; "
        "std = tree spread + member disagreement"
    )

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        n_estimators: int = Field(300, ge=1, le=MAX_ESTIMATORS, description="trees (boosting stages) of each member")
        max_features: MaxFeatures = _MAX_FEATURES
        log_target: bool = _LOG_TARGET
        random_state: int | None = _RANDOM_STATE

    has_uncertainty = True

    def __init__(
        self, n_estimators: int = 300, max_features: float = 0.3, log_target: bool = False, random_state: int = 0
    ):
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.log_target = log_target
        self.random_state = random_state

    def _members(self) -> list[FeaturePredictor]:
        kw = {"n_estimators": self.n_estimators, "random_state": self.random_state}
        return [
            RandomForestPredictor(max_features=self.max_features, **kw),
            ExtraTreesPredictor(max_features=self.max_features, **kw),
            GradientBoostingPredictor(**kw),
        ]

    def _make_model(self):
        return _MemberStack([m._make_model() for m in self._members()])

    def _predict_z(self, X):
        return self.model_.predict_with_std(X)


class _MemberStack:
    """Fits each member on the same standardised target; predicts their mean, std from spreads."""

    def __init__(self, models: list[Any]):
        self.models = models

    def fit(self, X, y):
        for m in self.models:
            m.fit(X, y)
        return self

    def predict(self, X):
        return self.predict_with_std(X)[0]

    def predict_with_std(self, X):
        from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

        means, variances = [], []
        for m in self.models:
            if isinstance(m, (RandomForestRegressor, ExtraTreesRegressor)):  # a forest: spread of its trees
                mu, sd = _tree_spread(m, X)
                variances.append(sd**2)
            else:
                mu = m.predict(X)
            means.append(mu)
        means = np.stack(means)
        mean = means.mean(axis=0)
        within = np.mean(variances, axis=0) if variances else np.zeros_like(mean)
        return mean, np.sqrt(within + means.var(axis=0))


FEATURE_PREDICTORS: tuple[type[FeaturePredictor], ...] = (
    EnsemblePredictor,
    RandomForestPredictor,
    ExtraTreesPredictor,
    GradientBoostingPredictor,
    BayesianRidgePredictor,
    KernelRidgePredictor,
    GaussianProcessPredictor,
)

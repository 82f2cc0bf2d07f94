"""A feature predictor's array half as a plain scikit-learn regressor.

`FeatureRegressor(predictor)` fits on a feature matrix X [samples, features] (columns named `x0`, `x1`, ...)
with the predictor's own target transform and model(s) (`FeaturePredictor._fit_matrix`, `_predict_z`): the
code `FeaturePredictor.fit` runs once the features of the architectures are computed. A `Predictor` takes
architectures, which scikit-learn's estimator checks cannot generate; they run in full on this regressor
(tests/test_predictors.py). It also serves anyone with a feature matrix of their own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone

from ..errors import DataError
from .features import FeatureMatrix
from .sklearn_predictors import EnsemblePredictor, FeaturePredictor


class FeatureRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """`predictor`'s target transform and model(s) on a feature matrix (default: the `ensemble`
    predictor's). `predict_with_std(X)` gives the predictor's uncertainty."""

    def __init__(self, predictor: FeaturePredictor | None = None):
        self.predictor = predictor

    def fit(self, X: Any, y: Any) -> FeatureRegressor:
        from sklearn.utils.validation import validate_data

        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        template = self.predictor if self.predictor is not None else EnsemblePredictor()
        if len(y) < template.min_samples:
            raise DataError(
                f"predictor {template.name!r} needs at least {template.min_samples} samples to fit, "
                f"got {len(y)} sample{'s' if len(y) != 1 else ''}"
            )
        fitted = clone(template)
        fitted._fit_matrix(FeatureMatrix([f"x{j}" for j in range(X.shape[1])]), X, y)
        self.predictor_ = fitted
        return self

    def predict_with_std(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.utils.validation import check_is_fitted, validate_data

        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        z, zs = self.predictor_._predict_z(X)
        mean, std = self.predictor_._y_backward(z, zs if zs is not None else np.zeros_like(z))
        return mean, std

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_with_std(X)[0]

"""The predictor protocol (scikit-learn conventions): `__init__` stores keyword parameters only, learned
state ends in `_`, `fit(archs, y)` returns self, `predict(archs)` returns an array."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class Predictor(BaseEstimator, RegressorMixin):
    """Base class of every registered predictor. Inputs are sequences of `Architecture` objects."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: True when `predict_with_std` gives a meaningful uncertainty
    has_uncertainty: ClassVar[bool] = False

    def fit(self, archs: Any, y: Any) -> Predictor:
        raise NotImplementedError

    def predict(self, archs: Any) -> np.ndarray:
        raise NotImplementedError

    def predict_with_std(self, archs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation; predictors without an uncertainty return zeros for the std."""
        mean = self.predict(archs)
        return mean, np.zeros_like(mean)

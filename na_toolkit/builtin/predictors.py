"""Built-in predictors plugin: feature-based scikit-learn regressors and the neural (LSTM embedding)
predictor. Registering imports no scikit-learn or torch: the classes import them when they fit."""

from __future__ import annotations

import na_toolkit
from na_toolkit.predictors.sklearn_predictors import FEATURE_PREDICTORS


@na_toolkit.hookimpl
def na_register_predictors(registry):
    for cls in FEATURE_PREDICTORS:
        registry.add(cls)

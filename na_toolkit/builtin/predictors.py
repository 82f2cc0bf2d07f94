"""Built-in predictors plugin: feature-based scikit-learn regressors, the neural (LSTM embedding) predictor
and the few-shot latency predictor. Registering imports no scikit-learn or torch: the classes import them
when they fit."""

from __future__ import annotations

import na_toolkit
from na_toolkit.predictors.fewshot import FewShotLatencyPredictor
from na_toolkit.predictors.neural import NeuralPredictor
from na_toolkit.predictors.sklearn_predictors import FEATURE_PREDICTORS


@na_toolkit.hookimpl
def na_register_predictors(registry):
    for cls in (*FEATURE_PREDICTORS, NeuralPredictor, FewShotLatencyPredictor):
        registry.add(cls)

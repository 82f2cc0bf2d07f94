"""Built-in predictors plugin: feature-based scikit-learn regressors, the neural (LSTM embedding) predictor
and the few-shot latency predictor. They are registered by import path (`registry.add_lazy`): a predictor is
a scikit-learn estimator, so importing one imports scikit-learn, which a command that uses no predictor
(`--help`, `runs`, `hw`, `arch`) should not pay for."""

from __future__ import annotations

import na_toolkit

_FEATURES = "na_toolkit.predictors.sklearn_predictors"

#: name -> where the class lives (each class's `name` is checked against it when it is first used)
BUILTIN_PREDICTORS = {
    "ensemble": f"{_FEATURES}:EnsemblePredictor",
    "random-forest": f"{_FEATURES}:RandomForestPredictor",
    "extra-trees": f"{_FEATURES}:ExtraTreesPredictor",
    "gbm": f"{_FEATURES}:GradientBoostingPredictor",
    "bayesian-ridge": f"{_FEATURES}:BayesianRidgePredictor",
    "kernel-ridge": f"{_FEATURES}:KernelRidgePredictor",
    "gp": f"{_FEATURES}:GaussianProcessPredictor",
    "neural": "na_toolkit.predictors.neural:NeuralPredictor",
    "fewshot-latency": "na_toolkit.predictors.fewshot:FewShotLatencyPredictor",
}


@na_toolkit.hookimpl
def na_register_predictors(registry):
    for name, path in BUILTIN_PREDICTORS.items():
        registry.add_lazy(name, path)

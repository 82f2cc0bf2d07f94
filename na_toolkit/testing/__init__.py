"""Conformance checks for plugin authors: a plugin's own tests call them on what it registers.

    from na_toolkit.plugins import load_toolkit
    from na_toolkit.testing import check_layer_type, check_move, check_strategy

    toolkit = load_toolkit(entry_points=False, extra_plugins=(my_plugin,))
    check_layer_type("my_layer", toolkit)
    check_move("insert_my_layer", toolkit)
    check_strategy("my-strategy", toolkit)

Each check raises AssertionError (`ConformanceError`) whose message names the component and what broke,
and returns what it found (dataclasses); part of a check that cannot run warns (`ConformanceWarning`). See
docs/testing.md. The names are imported on first use, each with its own module only (check_predictor's brings
scikit-learn, about 2 s): the fresh process `check_strategy` starts imports what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ._common import ConformanceError, ConformanceWarning
    from .datasets import DatasetResult, check_dataset
    from .evaluators import EvaluatorResult, check_evaluator
    from .executors import ExecutorResult, check_executor
    from .layers import LayerExampleResult, check_layer_type, default_examples
    from .moves import MoveSeedResult, check_move
    from .predictors import PredictorResult, check_predictor, example_data
    from .strategies import StrategyCheckContext, StrategyResult, check_strategy
    from .timemodels import (
        TimeModelResult,
        build_time_model,
        check_time_estimate,
        check_time_model,
        quick_measure_options,
    )

#: public name -> the module of this package that defines it
_LAZY = {
    "ConformanceError": "_common",
    "ConformanceWarning": "_common",
    "DatasetResult": "datasets",
    "EvaluatorResult": "evaluators",
    "ExecutorResult": "executors",
    "LayerExampleResult": "layers",
    "MoveSeedResult": "moves",
    "PredictorResult": "predictors",
    "StrategyCheckContext": "strategies",
    "StrategyResult": "strategies",
    "TimeModelResult": "timemodels",
    "build_time_model": "timemodels",
    "check_dataset": "datasets",
    "check_evaluator": "evaluators",
    "check_executor": "executors",
    "check_layer_type": "layers",
    "check_move": "moves",
    "check_predictor": "predictors",
    "check_strategy": "strategies",
    "check_time_estimate": "timemodels",
    "check_time_model": "timemodels",
    "default_examples": "layers",
    "example_data": "predictors",
    "quick_measure_options": "timemodels",
}

__all__ = [
    "ConformanceError",
    "ConformanceWarning",
    "DatasetResult",
    "EvaluatorResult",
    "ExecutorResult",
    "LayerExampleResult",
    "MoveSeedResult",
    "PredictorResult",
    "StrategyCheckContext",
    "StrategyResult",
    "TimeModelResult",
    "build_time_model",
    "check_dataset",
    "check_evaluator",
    "check_executor",
    "check_layer_type",
    "check_move",
    "check_predictor",
    "check_strategy",
    "check_time_estimate",
    "check_time_model",
    "default_examples",
    "example_data",
    "quick_measure_options",
]


def __dir__() -> list[str]:
    return sorted({*__all__, "__doc__", "__file__", "__name__", "__path__"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

"""Conformance checks for plugin authors: a plugin's own tests call them on what it registers.

    from na_toolkit.plugins import load_toolkit
    from na_toolkit.testing import check_layer_type, check_move, check_strategy

    toolkit = load_toolkit(entry_points=False, extra_plugins=(my_plugin,))
    check_layer_type("my_layer", toolkit)
    check_move("insert_my_layer", toolkit)
    check_strategy("my-strategy", toolkit)

Each check raises AssertionError (`ConformanceError`) whose message names the component and what broke,
and returns what it found (dataclasses). See docs/testing.md.
"""

from __future__ import annotations

from ._common import ConformanceError
from .datasets import DatasetResult, check_dataset
from .evaluators import EvaluatorResult, check_evaluator
from .executors import ExecutorResult, check_executor
from .layers import LayerExampleResult, check_layer_type, default_examples
from .moves import MoveSeedResult, check_move
from .predictors import PredictorResult, check_predictor, example_data
from .strategies import StrategyCheckContext, StrategyResult, check_strategy
from .timemodels import TimeModelResult, build_time_model, check_time_estimate, check_time_model, quick_measure_options

__all__ = [
    "ConformanceError",
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

"""A plugin for tests/test_search_parts.py: an evaluator that only this plugin registers, so a search (or a
worker) that evaluates with any other toolkit fails. Importable by name, so a worker process rebuilds it
from a toolkit's plugin selection."""

from __future__ import annotations

import na_toolkit
from na_toolkit.errors import ConfigError
from na_toolkit.evaluation.base import EvaluationResult, Evaluator
from na_toolkit.search.strategy import Strategy


class HashEvaluator(Evaluator):
    """Ground truth for free: an accuracy drawn from the architecture's hash (deterministic)."""

    name = "test-hash"
    description = "test evaluator: accuracy from the architecture hash"

    def evaluate(self, arch):
        valid = 0.5 + (int(arch.hash[:8], 16) % 4096) / 10000
        return EvaluationResult(arch.hash, valid, test_accuracy=valid - 0.01, train_time_s=0.0, evaluator=self.name)


@na_toolkit.hookimpl
def na_register_evaluators(registry):
    registry.add(HashEvaluator)


class RefusingStrategy(Strategy):
    """A strategy that refuses to be built on the loop's context (an error only its constructor finds)."""

    name = "test-refuses"
    description = "test strategy: its constructor always refuses"

    def __init__(self, context, **options):
        raise ConfigError("test-refuses never runs")


@na_toolkit.hookimpl
def na_register_strategies(registry):
    registry.add(RefusingStrategy)

"""The evaluator conformance check (`na_toolkit.testing.check_evaluator`, docs/testing.md): the built-in
`synthetic` evaluator and a plugin's pass it; one that answers in percent, one that draws from an unseeded
generator, one whose `extra` the run store cannot keep, one whose `check` refuses the seed network and one
that swallows unknown options are each named with what broke. Before, evaluators had no check: the first
was caught only inside a search, the second never (its runs were not reproducible)."""

from __future__ import annotations

import random
import sys

import pytest

import na_toolkit
from na_toolkit.errors import DataError
from na_toolkit.evaluation.base import EvaluationResult, Evaluator
from na_toolkit.plugins import load_toolkit
from na_toolkit.testing import ConformanceError, check_evaluator


class _BySize(Evaluator):
    """Keeps the contract: accuracy from the network's size (the broken ones below change one thing each)."""

    name = "by-size"
    description = "accuracy from log10(params) (wiring only)"

    def evaluate(self, arch):
        return EvaluationResult(arch.hash, valid_accuracy=min(0.99, 0.1 * len(str(arch.params))), evaluator=self.name)


class _Percent(_BySize):
    name = "percent"

    def evaluate(self, arch):
        return EvaluationResult(arch.hash, valid_accuracy=85.0, evaluator=self.name)


class _Unseeded(_BySize):
    name = "unseeded"

    def evaluate(self, arch):
        return EvaluationResult(arch.hash, valid_accuracy=random.random(), evaluator=self.name)


class _OddExtra(_BySize):
    name = "odd-extra"

    def evaluate(self, arch):
        return EvaluationResult(arch.hash, valid_accuracy=0.5, evaluator=self.name, extra={"model": object()})


class _RefusesTheSeed(_BySize):
    name = "refuses-the-seed"

    def check(self, seed_arch):
        raise DataError(f"input shape {tuple(seed_arch.input_shape)} is not (3, 32, 32)")


class _Swallows(_BySize):
    name = "swallows"

    def __init__(self, **options):  # any option, ignored
        super().__init__()


@na_toolkit.hookimpl
def na_register_evaluators(registry):
    for cls in (_BySize, _Percent, _Unseeded, _OddExtra, _RefusesTheSeed, _Swallows):
        registry.add(cls)


@pytest.fixture(scope="module")
def tk():
    return load_toolkit(entry_points=False, extra_plugins=(sys.modules[__name__],))


@pytest.mark.parametrize("name, options", [("synthetic", {"seed": 3}), ("by-size", {})])
def test_the_synthetic_evaluator_and_a_plugins_pass(tk, name, options):
    result = check_evaluator(name, tk, options=options, seeds=("simple-cnn", "resnet-cifar"))
    assert [r.arch_hash for r in result.results] == [tk.seed("simple-cnn").hash, tk.seed("resnet-cifar").hash]


@pytest.mark.parametrize(
    "name, message",
    [
        ("percent", r"evaluate\(\) answered what a search refuses: valid_accuracy=85.0 \(a fraction in \[0, 1\]\)"),
        ("unseeded", r"another instance answers otherwise \(differs in valid_accuracy\): .*seed every random draw"),
        ("odd-extra", r"the run store cannot keep its result .*`extra` holds JSON values or numpy arrays"),
        ("refuses-the-seed", r"check\(\) refuses 'simple-cnn': input shape \(1, 8, 8\) is not \(3, 32, 32\)"),
        ("swallows", "accepts the unknown option 'no_such_option_'"),
    ],
)
def test_a_broken_evaluator_is_named_with_what_broke(tk, name, message):
    with pytest.raises(ConformanceError, match=f"evaluator {name!r}.*: {message}"):
        check_evaluator(name, tk)

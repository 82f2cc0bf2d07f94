"""The evaluator conformance check (`na_toolkit.testing.check_evaluator`, docs/testing.md): the built-in
`synthetic` evaluator and a plugin's pass it; one that answers in percent, one that draws from an unseeded
generator, one whose `extra` the run store cannot keep, one whose `check` refuses the seed network and one
that swallows unknown options are each named with what broke. Before, evaluators had no check: the first
was caught only inside a search, the second never (its runs were not reproducible)."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest

import na_toolkit
from na_toolkit import validation
from na_toolkit.datasets import get_dataset
from na_toolkit.datasets.base import DatasetSource, LabeledArrays
from na_toolkit.errors import DataError
from na_toolkit.evaluation.base import EvaluationResult, Evaluator
from na_toolkit.plugins import load_toolkit
from na_toolkit.search import run_search
from na_toolkit.testing import ConformanceError, check_evaluator
from na_toolkit.validation import validate_options


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


class _OnTheDataset(_BySize):
    """Takes the config's `dataset` as docs/plugin_hooks.md says: an option, looked up in the toolkit's
    registry with `get_dataset`."""

    name = "on-the-dataset"

    class Options(validation.Options):
        dataset: str = "stripes"

    def __init__(self, datasets=None, **options):
        super().__init__(**validate_options(self.Options, options, "evaluator.options").model_dump())
        self.datasets = datasets

    @classmethod
    def from_toolkit(cls, toolkit, **options):
        return cls(datasets=toolkit.datasets, **options)

    def evaluate(self, arch):
        ds = get_dataset(self.options["dataset"], self.datasets)
        return EvaluationResult(arch.hash, valid_accuracy=1 / ds.classes, evaluator=self.name, dataset=ds.name)


def _stripes():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    return LabeledArrays(rng.normal(size=(60, 1, 8, 8)).astype(np.float32), y, ("plain", "striped"))


@na_toolkit.hookimpl
def na_register_evaluators(registry):
    for cls in (_BySize, _Percent, _Unseeded, _OddExtra, _RefusesTheSeed, _Swallows, _OnTheDataset):
        registry.add(cls)


@na_toolkit.hookimpl
def na_register_datasets(registry):
    registry.add(DatasetSource("stripes", "60 noise images, 2 classes", _stripes, origin="generated"))


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


def test_a_run_on_a_plugins_dataset_names_the_dataset_and_its_plugin(tk, tmp_path):
    """The config's `dataset` reaches a plugin's evaluator as its option, and the run's provenance names the
    dataset's plugin (it named every other component's, not the dataset's: a run could not tell which
    plugin version gave its data, and a resume without that plugin did not say it was missing)."""
    assert check_evaluator("on-the-dataset", tk).results[0].dataset == "stripes"
    doc = {
        "seed_network": "simple-cnn",
        "dataset": "stripes",
        "evaluations": 2,
        "output": str(tmp_path),
        "search": {"per_round": 2, "moves": ["scale"]},
        "strategy": "random",
        "evaluator": "on-the-dataset",
        "predictors": {"accuracy": {"name": "bayesian-ridge"}},
    }
    result = run_search(doc, toolkit=tk, progress=False, outputs=False)
    assert {e.result["valid_accuracy"] for e in result.evaluated} == {0.5}
    (event,) = result.provenance["events"]
    assert event["components"]["dataset"] == {"name": "stripes", "plugin": __name__, "dist": None, "version": None}

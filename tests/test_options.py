"""Component options: every built-in component declares an `Options` model (types, defaults, ranges) that
matches its keyword parameters; a component without one gets a model derived from its signature; the
models drive `na-toolkit plugins --options` and the generated docs/options.md."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import Field

from conftest import REPO_ROOT, default_toolkit
from na_toolkit.errors import ConfigError
from na_toolkit.evaluation.base import Evaluator
from na_toolkit.plugins import load_toolkit
from na_toolkit.predictors.base import Predictor
from na_toolkit.search import config_models, reward
from na_toolkit.search.executors import Executor
from na_toolkit.search.options import (
    OPTION_REGISTRIES,
    check_options,
    declared_options,
    derived_options_model,
    describe_options,
    options_markdown,
    options_model,
    takes_option,
)
from na_toolkit.search.strategy import Strategy
from na_toolkit.timemodels.base import TimeModel
from na_toolkit.validation import Options

OPTIONS_DOC = REPO_ROOT / "docs" / "options.md"


#: the built-in plugins only (installed plugins are not what this checks)
BUILTINS = load_toolkit(entry_points=False)


def _builtin_components() -> list[tuple[str, str, type]]:
    return [
        (attr, entry.name, entry.obj) for attr in OPTION_REGISTRIES for entry in BUILTINS.registries()[attr].entries()
    ]


BUILTIN = _builtin_components()
IDS = [f"{attr}:{name}" for attr, name, _ in BUILTIN]


def test_every_kind_of_built_in_component_is_covered():
    assert {attr for attr, _, _ in BUILTIN} == set(OPTION_REGISTRIES)
    names = {name for _, name, _ in BUILTIN}
    assert {
        "random",
        "evolution",
        "neural-architect",
        "torch",
        "local",
        "ray",
        "ensemble",
        "gp",
        "roofline",
        "onnxruntime",
        "learned",
    } <= names


@pytest.mark.parametrize("attr, name, cls", BUILTIN, ids=IDS)
def test_built_in_components_declare_options_matching_their_signature(attr, name, cls):
    model = declared_options(cls)
    assert model is not None, f"{name} declares no Options model"
    assert issubclass(model, Options) and model.model_config.get("extra") == "forbid"
    model()  # the defaults satisfy the model's own ranges
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if issubclass(cls, Strategy):
        params = params[1:]  # the loop's context
    for p in params:
        # keyword-only parameters are dependencies the toolkit passes (registries), not options
        if p.kind is not p.POSITIONAL_OR_KEYWORD:
            continue
        assert p.name in model.model_fields, f"{name}: parameter {p.name} is not in its Options model"
        if p.default is not p.empty:
            assert model.model_fields[p.name].default == p.default, f"{name}: default of {p.name} differs"
    # a component that keeps its defaults in a dict (`OPTIONS`, `DEFAULTS`) keeps the model's
    for table in ("OPTIONS",):
        for key, value in getattr(cls, table, {}).items():
            assert model.model_fields[key].default == value, f"{name}: {table}[{key!r}] differs from the model"


def test_torch_evaluator_defaults_are_the_models():
    from na_toolkit.evaluation import torch_trainer

    assert torch_trainer.DEFAULTS == {
        k: f.default for k, f in torch_trainer.TorchEvaluator.Options.model_fields.items()
    }
    assert torch_trainer.OPTIMIZERS == ("sgd", "adam", "adamw") and torch_trainer.SCHEDULES == ("cosine", "constant")


@pytest.mark.parametrize(
    "kind, name, options, fragment",
    [
        (
            "predictors",
            "random-forest",
            {"n_estimators": -5},
            "predictors.accuracy.options.n_estimators: Input should be greater than or equal to 1 (got -5)",
        ),
        (
            "predictors",
            "gbm",
            {"subsample": 1.5},
            "predictors.accuracy.options.subsample: Input should be less than or equal to 1",
        ),
        ("predictors", "ensemble", {"n_estimator": 5}, "Did you mean 'predictors.accuracy.options.n_estimators'"),
        (
            "predictors",
            "neural",
            {"epochs": "60"},
            "predictors.accuracy.options.epochs: Input should be a valid integer",
        ),
        ("time_models", "onnxruntime", {"graph_optimization": "max"}, "predictors.accuracy.options.graph_optimization"),
        ("time_models", "learned", {"boost": 1}, "predictors.accuracy.options.boost: Input should be a valid boolean"),
        ("executors", "ray", {"cpus_per_task": -1}, "predictors.accuracy.options.cpus_per_task"),
        ("strategies", "random", {"max_moves": 0}, "predictors.accuracy.options.max_moves"),
        ("evaluators", "torch", {"lr": 0}, "predictors.accuracy.options.lr: Input should be greater than 0"),
    ],
)
def test_bad_values_name_their_path(kind, name, options, fragment):
    cls = BUILTINS.registries()[kind].get(name)
    with pytest.raises(ConfigError) as info:
        check_options(cls, options, "predictors.accuracy.options")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_good_values_pass_and_keep_what_was_given():
    cls = BUILTINS.predictors.get("random-forest")
    checked = check_options(cls, {"n_estimators": 50, "max_features": "sqrt", "min_samples_leaf": 0.1}, "o")
    assert (
        checked.n_estimators == 50
        and checked.max_features == "sqrt"
        and checked.model_fields_set == {"n_estimators", "max_features", "min_samples_leaf"}
    )


def test_components_validate_when_built_directly():
    from na_toolkit.evaluation.torch_trainer import TorchEvaluator
    from na_toolkit.search.executor_local import LocalExecutor

    with pytest.raises(ConfigError, match=r"executor\.options\.workers"):
        LocalExecutor(workers=0)
    with pytest.raises(ConfigError, match=r"evaluator\.options\.epoch: unknown key\. Did you mean"):
        TorchEvaluator(epoch=3)
    import numpy as np

    assert TorchEvaluator(seed=np.int64(3)).options["seed"] == 3  # a seed drawn from a numpy RNG
    # a described place ("predictor 'ensemble' params") is not a key path: the suggestions are the keys alone
    from na_toolkit.predictors import make_predictor

    with pytest.raises(ConfigError) as err:
        make_predictor("ensemble", {"n_estimator": 5}, default_toolkit())
    assert str(err.value) == (
        "predictor 'ensemble' params.n_estimator: unknown key. Did you mean 'n_estimators', 'random_state'?"
    )


# ---- a plugin's component without an Options model ---------------------------------------------------
class _PluginStrategy(Strategy):
    name = "plugin-strategy"

    def __init__(self, context: Any, depth: int = 2, rate: float = 0.5, label: str | None = None):
        super().__init__(context, depth=depth, rate=rate, label=label)


class _OpenEvaluator:
    def __init__(self, table: str, scale: float = 1.0, *, registry: Any, **extra: Any):
        pass


class _Declared(Strategy):
    class Options(Options):
        width: int = 1

    def __init__(self, context: Any, width: int = 1):
        super().__init__(context, width=width)


class _Redefined(_Declared):
    def __init__(self, context: Any, height: int = 3):
        super().__init__(context)


def test_derived_model_from_the_signature():
    model = options_model(_PluginStrategy)
    assert declared_options(_PluginStrategy) is None
    info = {o.name: o for o in describe_options(model)}
    assert list(info) == ["depth", "rate", "label"]  # the context is not an option
    assert info["depth"].type == "int" and info["depth"].default == 2 and info["label"].type == "str | none"
    with pytest.raises(
        ConfigError, match=r"strategy\.options\.dpeth: unknown key\. Did you mean 'strategy\.options\.depth'"
    ):
        check_options(_PluginStrategy, {"dpeth": 3}, "strategy.options")
    with pytest.raises(ConfigError, match=r"strategy\.options\.rate: Input should be a valid number"):
        check_options(_PluginStrategy, {"rate": "fast"}, "strategy.options")


_TWO = np.float64(2)


class _UnannotatedStrategy(Strategy):
    name = "unannotated"

    def __init__(self, context, shrink=0.0, steps=3, verbose=False, label="x", table=None, scale=_TWO):
        super().__init__(context, shrink=shrink, steps=steps, verbose=verbose, label=label, table=table)


def test_an_unannotated_parameter_takes_its_type_from_its_default():
    info = {o.name: o for o in describe_options(options_model(_UnannotatedStrategy))}
    assert {name: o.type for name, o in info.items()} == {
        "shrink": "float",
        "steps": "int",
        "verbose": "bool",
        "label": "str",
        "table": "any",  # None says nothing about the type
        "scale": "any",  # nor does a value of another type
    }
    with pytest.raises(ConfigError) as bad:
        check_options(_UnannotatedStrategy, {"shrink": "abc"}, "strategy.options")
    assert str(bad.value) == (
        "strategy.options.shrink: Input should be a valid number, unable to parse string as a number (got 'abc')"
    )
    with pytest.raises(ConfigError, match=r"^strategy\.options\.steps: Input should be a valid integer"):
        check_options(_UnannotatedStrategy, {"steps": 2.5}, "strategy.options")
    checked = check_options(_UnannotatedStrategy, {"shrink": 1, "steps": 4, "table": {"a": 1}}, "strategy.options")
    assert checked.shrink == 1.0 and checked.steps == 4  # an int where the default is a float is accepted


def test_derived_model_with_kwargs_lets_unknown_keys_through_keeps_required_ones_and_skips_dependencies():
    model = derived_options_model(_OpenEvaluator)
    check_options(_OpenEvaluator, {"table": "t.csv", "anything": 1}, "evaluator.options")
    with pytest.raises(ConfigError, match=r"evaluator\.options\.table: missing"):
        check_options(_OpenEvaluator, {}, "evaluator.options")
    assert {o.name: o.required for o in describe_options(model)} == {"table": True, "scale": False}


def test_an_inherited_model_is_used_only_for_the_init_it_describes():
    assert options_model(_Declared) is _Declared.Options
    assert declared_options(_Redefined) is None
    assert list(options_model(_Redefined).model_fields) == ["height"]


# ---- components written like the docs' examples: no Options model, no __init__ of their own -------------
class _BareStrategy(Strategy):
    name = "bare-strategy"


class _BareExecutor(Executor):
    name = "bare-executor"


class _BareEvaluator(Evaluator):
    name = "bare-evaluator"


class _BarePredictor(Predictor):
    name = "bare-predictor"


class _BareTimeModel(TimeModel):
    name = "bare-time-model"


class _KwargsEvaluator(Evaluator):
    """Its own __init__ takes **kwargs: it really passes them on, so they stay unchecked."""

    name = "kwargs-evaluator"

    def __init__(self, scale: float = 1.0, **extra: Any):
        super().__init__(scale=scale, **extra)


@pytest.mark.parametrize(
    "cls, where",
    [
        (_BareStrategy, "strategy.options"),
        (_BareExecutor, "executor.options"),
        (_BareEvaluator, "evaluator.options"),
        (_BarePredictor, "predictors.accuracy.options"),
    ],
)
def test_a_component_that_declares_no_options_refuses_every_option(cls, where):
    # the base class's generic **options declares nothing: a misspelt (or any) option is an error
    model = options_model(cls)
    assert describe_options(model) == [] and not takes_option(cls, "dataset")
    with pytest.raises(ConfigError) as info:
        check_options(cls, {"workerz": 2}, where)
    assert str(info.value) == f"{where}.workerz: unknown key. It takes no options: leave them out."
    check_options(cls, {}, where)


def test_a_time_model_without_an_init_of_its_own_takes_only_the_bases_device():
    assert [o.name for o in describe_options(options_model(_BareTimeModel))] == ["device"]
    check_options(_BareTimeModel, {"device": "x86-cpu"}, "devices.cpu.time_model.options")
    with pytest.raises(
        ConfigError, match=r"^devices\.cpu\.time_model\.options\.devic: unknown key\. Did you mean '.*\.device'\?$"
    ):
        check_options(_BareTimeModel, {"devic": "x86-cpu"}, "devices.cpu.time_model.options")


class _DeclaredEvaluator(Evaluator):
    """Declares its options and reads them from self.options: no __init__ of its own."""

    name = "declared-evaluator"

    class Options(Options):
        scale: float = 1.0


def test_a_component_built_in_code_with_its_bases_init_is_checked_as_a_config_is():
    # built directly (not through a config), the base's generic **options used to keep any misspelling
    cases = [
        (lambda: _BareStrategy(None, workerz=2), "strategy 'bare-strategy' options.workerz: unknown key. It takes"),
        (lambda: _BareExecutor(workerz=2), "executor 'bare-executor' options.workerz: unknown key. It takes"),
        (lambda: _BareEvaluator(epochs=3), "evaluator 'bare-evaluator' options.epochs: unknown key. It takes"),
        (lambda: _BareTimeModel(rate=2), "time model 'bare-time-model' options.rate: unknown key. Known keys: device"),
        (
            lambda: _DeclaredEvaluator(scael=2),
            "evaluator 'declared-evaluator' options.scael: unknown key. Did you mean",
        ),
        (lambda: _DeclaredEvaluator(scale="big"), "evaluator 'declared-evaluator' options.scale: Input should be a"),
    ]
    for build, message in cases:
        with pytest.raises(ConfigError) as info:
            build()
        assert str(info.value).startswith(message)
    # what they do take is kept as given
    assert _DeclaredEvaluator(scale=2).options == {"scale": 2}
    assert _BareTimeModel(device="cuda:1").device == "cuda:1" and _BareTimeModel().options == {}
    assert _KwargsEvaluator(scale=2, anything=1).options == {"scale": 2, "anything": 1}


def test_an_init_that_takes_kwargs_of_its_own_still_passes_them_through():
    assert takes_option(_KwargsEvaluator, "dataset")
    assert check_options(_KwargsEvaluator, {"scale": 2, "dataset": "digits"}, "evaluator.options").scale == 2.0
    with pytest.raises(ConfigError, match=r"evaluator\.options\.scale: Input should be a valid number"):
        check_options(_KwargsEvaluator, {"scale": "big"}, "evaluator.options")


def test_cli_options_of_a_bare_component_says_it_takes_none(capsys):
    import types

    import na_toolkit
    from na_toolkit.cli.main import build_parser
    from na_toolkit.search.options import component_options_json

    plugin = types.ModuleType("bare_plugin")
    plugin.na_register_executors = na_toolkit.hookimpl(lambda registry: registry.add(_BareExecutor))
    plugin.na_register_evaluators = na_toolkit.hookimpl(lambda registry: registry.add(_KwargsEvaluator))
    toolkit = load_toolkit(entry_points=False, extra_plugins=(plugin,))
    doc = component_options_json(toolkit, "executors", "bare-executor")
    assert doc["options"] == [] and not doc["unknown_options_allowed"]
    args = build_parser(toolkit).parse_args(["plugins", "--options", "bare-executor"])
    assert args._run(args) == 0
    out = capsys.readouterr().out
    assert "(no options)" in out and "unchecked" not in out
    args = build_parser(toolkit).parse_args(["plugins", "--options", "kwargs-evaluator"])
    assert args._run(args) == 0
    assert "other keyword options are passed through unchecked" in capsys.readouterr().out


# ---- the search document models against the reward module ------------------------------------------
def test_document_models_use_the_reward_modules_names_and_defaults():
    assert typing.get_args(config_models.GlobalMetric) == reward.GLOBAL_METRICS
    assert typing.get_args(config_models.DeviceMetric) == reward.DEVICE_METRICS
    assert typing.get_args(config_models.RewardForm) == reward.FORMS
    assert tuple(config_models.GlobalBudgetsDoc.model_fields) == reward.GLOBAL_METRICS
    assert tuple(config_models.DeviceBudgetsDoc.model_fields) == reward.DEVICE_METRICS
    assert config_models.RewardDoc().objectives() == reward.Objectives()


class _LengthOptions(Options):
    path: str | None = Field(None, min_length=1)
    names: list[str] = Field(default_factory=lambda: ["a"], min_length=2, max_length=5)


def test_length_constraints_are_shown_for_strings_and_lists():
    # a string's min_length=1 was shown as "at least 1 item" (docs/options.md, neural's `pretrained`)
    info = {o.name: o.constraints for o in describe_options(_LengthOptions)}
    assert info == {"path": "non-empty", "names": "length >= 2, length <= 5"}


# ---- shown: docs/options.md and the CLI --------------------------------------------------------------
def test_options_doc_is_up_to_date():
    expected = options_markdown(BUILTINS)
    assert OPTIONS_DOC.read_text() == expected, (
        "docs/options.md is out of date: regenerate it with `na-toolkit plugins --options-docs > docs/options.md`"
    )


def test_cli_prints_a_components_options(run_cli):
    doc = run_cli("plugins", "--options", "predictor:gp", "--json").json()
    assert doc["kind"] == "predictor" and doc["name"] == "gp" and doc["declared"]
    by_name = {o["name"]: o for o in doc["options"]}
    assert by_name["length_scale"] == {
        "name": "length_scale",
        "type": "float",
        "default": 10.0,
        "required": False,
        "constraints": "> 0",
        "description": "initial Matern length scale (fitted)",
    }
    text = run_cli("plugins", "--options", "evolution")
    assert text.returncode == 0 and "strategy evolution" in text.stdout
    assert any(line.split()[:4] == ["population", "int", "10", ">="] for line in text.stdout.splitlines())


def test_cli_options_of_an_ambiguous_or_unknown_name_is_one_line(run_cli):
    line = run_cli("plugins", "--options", "torch").error_line()
    assert "evaluator:torch, time-model:torch" in line
    line = run_cli("plugins", "--options", "predictor:gpp").error_line()
    assert "unknown predictor 'gpp'. Did you mean 'gp'" in line


def test_cli_options_docs_prints_the_doc(run_cli):
    res = run_cli("plugins", "--options-docs")
    assert res.returncode == 0 and res.stdout == Path(OPTIONS_DOC).read_text()

"""The hook specifications of na_toolkit. Every hook is collect-all and hands over a typed registry.

A plugin implements some of them with `@na_toolkit.hookimpl` and registers components with
`registry.add(obj)`. Every hook and its signature is documented in docs/plugin_hooks.md (a test checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # the registries import the component classes; hookspecs stays importable alone
    from .ir.layers import LayerTypeRegistry
    from .toolkit import (
        BenchmarkRegistry,
        CommandRegistry,
        DatasetRegistry,
        EvaluatorRegistry,
        ExecutorRegistry,
        HardwareRegistry,
        MoveRegistry,
        PredictorRegistry,
        SeedRegistry,
        StrategyRegistry,
        TimeModelRegistry,
    )

PROJECT_NAME = "na_toolkit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def na_register_layer_types(registry: LayerTypeRegistry) -> None:
    """Register layer types (`na_toolkit.ir.layers.LayerType` instances): attribute schema, shape inference,
    cost, torch module builder, ONNX emitter and import mapping, embedding features."""


@hookspec
def na_register_moves(registry: MoveRegistry) -> None:
    """Register moves (`na_toolkit.moves.MoveType` instances): a parameter space, a validity mask and a pure
    `apply(arch, **params) -> Architecture`."""


@hookspec
def na_register_seeds(registry: SeedRegistry) -> None:
    """Register seed networks (`na_toolkit.ir.seeds.Seed`): a name, a description and a builder returning an
    `Architecture`. Searches start from a seed."""


@hookspec
def na_register_predictors(registry: PredictorRegistry) -> None:
    """Register predictor classes (subclasses of `na_toolkit.predictors.base.Predictor`, scikit-learn style:
    `__init__` stores keyword parameters, `fit(archs, y)` returns self, `predict(archs)`). A predictor
    module imports scikit-learn; `registry.add_lazy(name, "package.module:Class")` defers that import to the
    predictor's first use."""


@hookspec
def na_register_time_models(registry: TimeModelRegistry) -> None:
    """Register time-model classes (subclasses of `na_toolkit.timemodels.base.TimeModel`) that estimate
    latency, training time, peak memory and energy of an architecture on a device."""


@hookspec
def na_register_hardware(registry: HardwareRegistry) -> None:
    """Register hardware models (analytic, TOML) and device profiles (measured, JSON), one by one with
    `registry.add(source)` or a whole folder with `registry.add_folder(path)`. An unknown kind, a missing file
    and a missing or empty folder are refused (PluginError)."""


@hookspec
def na_register_evaluators(registry: EvaluatorRegistry) -> None:
    """Register evaluator classes (subclasses of `na_toolkit.evaluation.base.Evaluator`) that give the ground
    truth of a candidate: accuracy and training time."""


@hookspec
def na_register_datasets(registry: DatasetRegistry) -> None:
    """Register datasets (`na_toolkit.datasets.base.DatasetSource`): a loader and a descriptor (size, classes,
    input shape, class balance, per-channel statistics)."""


@hookspec
def na_register_strategies(registry: StrategyRegistry) -> None:
    """Register search strategy classes (subclasses of `na_toolkit.search.strategy.Strategy`)."""


@hookspec
def na_register_executors(registry: ExecutorRegistry) -> None:
    """Register executor classes (subclasses of `na_toolkit.search.executors.Executor`) that run ground-truth
    evaluations and measurements."""


@hookspec
def na_register_commands(registry: CommandRegistry) -> None:
    """Register CLI subcommands (`na_toolkit.cli.command.Command` instances)."""


@hookspec
def na_register_benchmarks(registry: BenchmarkRegistry) -> None:
    """Register benchmarks (`na_toolkit.bench.base.Benchmark` instances) that `na-toolkit bench NAME`
    runs: a name, a help line, `configure(parser)` for its arguments and `run(args, toolkit) -> figures`
    (one JSON object, figures at the top level; the command adds "params" and "machine")."""

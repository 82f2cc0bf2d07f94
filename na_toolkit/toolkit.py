"""The typed `Toolkit`: one registry per hook, filled by the plugin manager (`plugins.load_toolkit`).

A `Toolkit` is built at the entry points (the CLI's `main`, `run_search`, `bench`) and passed down
explicitly; nothing below them reaches a process-wide plugin manager. It remembers the plugin selection
that built it (`Toolkit.selection`), so a worker process rebuilds the same registries for a task.

This module imports the item classes the registries hold, so it sits above every package whose
components it registers; those packages name `Toolkit` only under `TYPE_CHECKING`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .bench.base import Benchmark
from .cli.command import Command
from .datasets.base import DatasetSource
from .errors import PluginError
from .evaluation.base import Evaluator
from .ir.layers import LayerTypeRegistry
from .ir.seeds import Seed
from .moves import MoveType
from .registry import Registry
from .search.executors import Executor
from .search.strategy import Strategy
from .timemodels.base import TimeModel
from .timemodels.hardware import HardwareSource, folder_problem, source_problem, sources_in_folder

if TYPE_CHECKING:
    from .ir.architecture import Architecture
    from .plugins import PluginInfo


class MoveRegistry(Registry[MoveType]):
    kind = "move"
    item_type = MoveType


class SeedRegistry(Registry[Seed]):
    kind = "seed network"
    item_type = Seed


class PredictorRegistry(Registry[type]):
    kind = "predictor"
    holds_classes = True

    @classmethod
    def expected_type(cls) -> type:
        # imported when the first predictor is checked: `Predictor` is a scikit-learn estimator, and importing
        # scikit-learn would otherwise be most of every command's start-up time
        from .predictors.base import Predictor

        return Predictor


class TimeModelRegistry(Registry[type]):
    kind = "time model"
    item_type = TimeModel
    holds_classes = True


class HardwareRegistry(Registry[HardwareSource]):
    """Hardware models (analytic) and device profiles (measured). Plugins add single models or folders."""

    kind = "hardware model"
    item_type = HardwareSource

    def _check_type(self, obj: Any) -> None:
        super()._check_type(obj)
        problem = source_problem(obj)
        if problem is not None:
            raise PluginError(self.current_plugin, problem)

    def add_folder(self, path: str | Path) -> None:
        """Register every `*.toml` hardware model and `*.json` profile in `path`; a missing folder, or one
        holding neither, is a PluginError (a misspelt path or data missing from a wheel is never silent)."""
        sources = sources_in_folder(path)
        problem = folder_problem(path, sources)
        if problem is not None:
            raise PluginError(self.current_plugin, problem)
        for source in sources:
            self.add(source)


class EvaluatorRegistry(Registry[type]):
    kind = "evaluator"
    item_type = Evaluator
    holds_classes = True


class DatasetRegistry(Registry[DatasetSource]):
    kind = "dataset"
    item_type = DatasetSource


class StrategyRegistry(Registry[type]):
    kind = "strategy"
    item_type = Strategy
    holds_classes = True


class ExecutorRegistry(Registry[type]):
    kind = "executor"
    item_type = Executor
    holds_classes = True


class CommandRegistry(Registry[Command]):
    kind = "command"
    item_type = Command


class BenchmarkRegistry(Registry[Benchmark]):
    kind = "benchmark"
    item_type = Benchmark


# hook name -> (attribute on Toolkit, registry class); the order is the order registration runs in
# (layer types first: moves and seeds may refer to them).
REGISTRIES: dict[str, tuple[str, type[Registry[Any]]]] = {
    "na_register_layer_types": ("layer_types", LayerTypeRegistry),
    "na_register_moves": ("moves", MoveRegistry),
    "na_register_seeds": ("seeds", SeedRegistry),
    "na_register_hardware": ("hardware", HardwareRegistry),
    "na_register_time_models": ("time_models", TimeModelRegistry),
    "na_register_datasets": ("datasets", DatasetRegistry),
    "na_register_evaluators": ("evaluators", EvaluatorRegistry),
    "na_register_predictors": ("predictors", PredictorRegistry),
    "na_register_strategies": ("strategies", StrategyRegistry),
    "na_register_executors": ("executors", ExecutorRegistry),
    "na_register_commands": ("commands", CommandRegistry),
    "na_register_benchmarks": ("benchmarks", BenchmarkRegistry),
}


@dataclass(frozen=True)
class PluginSelection:
    """Which plugins a toolkit was built from: enough for another process to rebuild the same one.

    `extra_modules` names the importable modules passed as `extra_plugins` (objects that are not modules
    cannot travel to another process: a toolkit built with one has `portable == False`)."""

    entry_points: bool = True
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    extra_modules: tuple[str, ...] = ()
    strict: bool = True
    portable: bool = True

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PluginSelection:
        allow = doc.get("allow")
        return cls(
            entry_points=bool(doc.get("entry_points", True)),
            allow=tuple(allow) if allow is not None else None,
            deny=tuple(doc.get("deny", ())),
            extra_modules=tuple(doc.get("extra_modules", ())),
            strict=bool(doc.get("strict", True)),
            portable=bool(doc.get("portable", True)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_points": self.entry_points,
            "allow": list(self.allow) if self.allow is not None else None,
            "deny": list(self.deny),
            "extra_modules": list(self.extra_modules),
            "strict": self.strict,
            "portable": self.portable,
        }


class Toolkit:
    """What the plugins registered: one typed registry per hook, plus what each plugin did.

    `plugins` maps plugin name -> PluginInfo (failed ones included, with `error` set); `errors` holds every
    PluginError met while loading, in order; `selection` is how it was built."""

    layer_types: LayerTypeRegistry
    moves: MoveRegistry
    seeds: SeedRegistry
    hardware: HardwareRegistry
    time_models: TimeModelRegistry
    datasets: DatasetRegistry
    evaluators: EvaluatorRegistry
    predictors: PredictorRegistry
    strategies: StrategyRegistry
    executors: ExecutorRegistry
    commands: CommandRegistry
    benchmarks: BenchmarkRegistry

    def __init__(self, selection: PluginSelection | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.errors: list[PluginError] = []
        self.selection = selection or PluginSelection()
        for attr, cls in REGISTRIES.values():
            setattr(self, attr, cls())

    def registry(self, hook_name: str) -> Registry[Any]:
        registry: Registry[Any] = getattr(self, REGISTRIES[hook_name][0])
        return registry

    def registries(self) -> dict[str, Registry[Any]]:
        """Toolkit attribute -> registry, in registration order."""
        return {attr: getattr(self, attr) for attr, _cls in REGISTRIES.values()}

    def seed(self, name: str) -> Architecture:
        """The seed network `name`, built with this toolkit's layer types."""
        return self.seeds.get(name).build(self.layer_types)

    def __repr__(self) -> str:
        ok = sum(1 for p in self.plugins.values() if not p.error)
        return f"<Toolkit {ok} plugins, {len(self.errors)} errors>"

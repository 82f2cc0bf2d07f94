"""Typed registries handed to the `na_register_*` hooks (in the manner of tox's `ToxEnvRegister`).

`registry.add(obj)` checks the object's type and refuses a duplicate name, naming both plugins. The plugin
manager sets `current_plugin` while it calls one plugin's hook, so every entry knows who registered it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import DuplicateComponentError, PluginError, UnknownComponentError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Name → component. Subclasses set `kind` (for messages), `item_type` ("module:Class") and
    `holds_classes` (True when plugins register classes that the toolkit instantiates with options)."""

    kind = "component"
    item_type = "builtins:object"
    holds_classes = False

    def __init__(self) -> None:
        self._entries: dict[str, Entry[T]] = {}
        self.current_plugin = "<direct>"

    @classmethod
    def expected_type(cls) -> type:
        module, _, attr = cls.item_type.partition(":")
        return getattr(importlib.import_module(module), attr)

    def _check_type(self, obj: Any) -> None:
        expected = self.expected_type()
        ok = (isinstance(obj, type) and issubclass(obj, expected)) if self.holds_classes else isinstance(obj, expected)
        if not ok:
            want = f"a subclass of {expected.__name__}" if self.holds_classes else f"an instance of {expected.__name__}"
            raise PluginError(self.current_plugin, f"registered {obj!r} as a {self.kind}, expected {want}")

    def add(self, obj: T, name: str | None = None) -> T:
        """Register `obj` under `name` (default: its `name` attribute). Returns `obj` (usable as decorator)."""
        self._check_type(obj)
        name = name if name is not None else getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(self.current_plugin, f"a {self.kind} must have a non-empty string `name`, got {name!r}")
        if name in self._entries:
            first = self._entries[name].plugin
            raise DuplicateComponentError(
                self.current_plugin, f"{self.kind} {name!r} is already registered by plugin {first}"
            )
        self._entries[name] = Entry(name, obj, self.current_plugin)
        return obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name].obj
        except KeyError:
            raise UnknownComponentError(self.kind, name, self._entries) from None

    def plugin_of(self, name: str) -> str:
        self.get(name)
        return self._entries[name].plugin

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(e.name, e.obj) for e in self._entries.values()]

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def remove_plugin(self, plugin: str) -> None:
        """Drop what one plugin registered (used when its hook fails half-way)."""
        self._entries = {k: e for k, e in self._entries.items() if e.plugin != plugin}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {sorted(self._entries)}>"


class LayerTypeRegistry(Registry["LayerType"]):
    kind = "layer type"
    item_type = "na_toolkit.ir.layers:LayerType"


class OperationRegistry(Registry["Operation"]):
    kind = "operation"
    item_type = "na_toolkit.moves:Operation"


class SeedRegistry(Registry["Seed"]):
    kind = "seed network"
    item_type = "na_toolkit.ir.seeds:Seed"


class PredictorRegistry(Registry[type]):
    kind = "predictor"
    item_type = "na_toolkit.predictors.base:Predictor"
    holds_classes = True


class TimeModelRegistry(Registry[type]):
    kind = "time model"
    item_type = "na_toolkit.timemodels.base:TimeModel"
    holds_classes = True


class HardwareRegistry(Registry["HardwareSource"]):
    """Hardware models (analytic) and device profiles (measured). Plugins add single models or folders."""

    kind = "hardware model"
    item_type = "na_toolkit.timemodels.hardware:HardwareSource"

    def add_folder(self, path: Any) -> None:
        """Register every `*.toml` hardware model and `*.json` profile in `path`."""
        from .timemodels.hardware import sources_in_folder

        for source in sources_in_folder(path):
            self.add(source)


class EvaluatorRegistry(Registry[type]):
    kind = "evaluator"
    item_type = "na_toolkit.evaluation.base:Evaluator"
    holds_classes = True


class DatasetRegistry(Registry["Dataset"]):
    kind = "dataset"
    item_type = "na_toolkit.datasets.base:DatasetSource"


class StrategyRegistry(Registry[type]):
    kind = "strategy"
    item_type = "na_toolkit.search.strategy:Strategy"
    holds_classes = True


class ExecutorRegistry(Registry[type]):
    kind = "executor"
    item_type = "na_toolkit.search.executors:Executor"
    holds_classes = True


class CommandRegistry(Registry["Command"]):
    kind = "command"
    item_type = "na_toolkit.cli.command:Command"

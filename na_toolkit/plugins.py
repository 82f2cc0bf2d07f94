"""The plugin manager: built-ins and third-party packages register through the same hooks.

Built-in plugins are listed in `DEFAULT_PLUGINS` (pytest's `default_plugins`, llm's `DEFAULT_PLUGINS`);
third-party ones come from the entry-point group `na_toolkit`. Environment variables:

- `NA_TOOLKIT_PLUGINS`: comma-separated allow list of entry-point plugins to load (set but empty: none).
- `NA_TOOLKIT_DISABLE_PLUGINS`: comma-separated deny list, by plugin name (built-ins included).

A plugin that fails (import error, raising hook, duplicate component name, wrong object type) is reported as
`plugin NAME (dist VERSION): error`. The library raises `PluginError` (strict, the default); the CLI warns and
carries on unless `--strict-plugins`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import (
    CommandRegistry,
    DatasetRegistry,
    EvaluatorRegistry,
    ExecutorRegistry,
    HardwareRegistry,
    LayerTypeRegistry,
    OperationRegistry,
    PredictorRegistry,
    Registry,
    SeedRegistry,
    StrategyRegistry,
    TimeModelRegistry,
)

ENTRY_POINT_GROUP = "na_toolkit"
ALLOW_ENV = "NA_TOOLKIT_PLUGINS"
DENY_ENV = "NA_TOOLKIT_DISABLE_PLUGINS"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "na_toolkit.builtin.layers",
    "na_toolkit.builtin.moves",
    "na_toolkit.builtin.seeds",
    "na_toolkit.builtin.hardware",
    "na_toolkit.builtin.time_models",
    "na_toolkit.builtin.datasets",
    "na_toolkit.builtin.evaluators",
    "na_toolkit.builtin.predictors",
    "na_toolkit.builtin.strategies",
    "na_toolkit.builtin.executors",
    "na_toolkit.builtin.commands",
)

# hook name -> (attribute on Toolkit, registry class); the order is the order registration runs in.
REGISTRIES: dict[str, tuple[str, type[Registry]]] = {
    "na_register_layer_types": ("layer_types", LayerTypeRegistry),
    "na_register_operations": ("operations", OperationRegistry),
    "na_register_seeds": ("seeds", SeedRegistry),
    "na_register_hardware": ("hardware", HardwareRegistry),
    "na_register_time_models": ("time_models", TimeModelRegistry),
    "na_register_datasets": ("datasets", DatasetRegistry),
    "na_register_evaluators": ("evaluators", EvaluatorRegistry),
    "na_register_predictors": ("predictors", PredictorRegistry),
    "na_register_strategies": ("strategies", StrategyRegistry),
    "na_register_executors": ("executors", ExecutorRegistry),
    "na_register_commands": ("commands", CommandRegistry),
}


@dataclass
class PluginInfo:
    name: str
    version: str
    dist: str
    builtin: bool
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "dist": self.dist,
            "builtin": self.builtin,
            "registered": self.registered,
            "error": self.error,
        }


class Toolkit:
    """What the plugins registered: one typed registry per hook, plus what each plugin did."""

    layer_types: LayerTypeRegistry
    operations: OperationRegistry
    seeds: SeedRegistry
    hardware: HardwareRegistry
    time_models: TimeModelRegistry
    datasets: DatasetRegistry
    evaluators: EvaluatorRegistry
    predictors: PredictorRegistry
    strategies: StrategyRegistry
    executors: ExecutorRegistry
    commands: CommandRegistry

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.errors: list[PluginError] = []
        for attr, cls in REGISTRIES.values():
            setattr(self, attr, cls())

    def registry(self, hook_name: str) -> Registry:
        return getattr(self, REGISTRIES[hook_name][0])


def _names_from_env(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


def _dist_version(module_name: str) -> tuple[str, str]:
    from . import __version__

    return "na-toolkit", __version__


def load_toolkit(
    strict: bool = True,
    entry_points: bool = True,
    extra_plugins: tuple[ModuleType | Any, ...] = (),
) -> Toolkit:
    """Build a fresh `Toolkit`: register the built-ins, the entry-point plugins and `extra_plugins`
    (modules or objects with hookimpls; tests use this), then run every registration hook.

    strict=True raises the first `PluginError`; strict=False warns, records it in `toolkit.errors` and
    carries on without the broken plugin."""
    tk = Toolkit()
    deny = _names_from_env(DENY_ENV) or set()
    allow = _names_from_env(ALLOW_ENV)
    order: list[str] = []

    def fail(info: PluginInfo, err: PluginError) -> None:
        info.error = str(err)
        tk.errors.append(err)
        if strict:
            raise err
        warnings.warn(str(err), RuntimeWarning, stacklevel=3)

    dist, version = _dist_version("na_toolkit")
    for module_name in DEFAULT_PLUGINS:
        if module_name in deny:
            continue
        info = PluginInfo(module_name, version, dist, builtin=True)
        tk.plugins[module_name] = info
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # a broken built-in is a bug, but report it the same way
            fail(info, PluginError(f"{module_name} ({dist} {version})", f"import failed: {exc!r}"))
            continue
        tk.pm.register(module, name=module_name)
        order.append(module_name)

    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in deny or (allow is not None and ep.name not in allow) or ep.name in tk.plugins:
                continue
            ep_dist = ep.dist.name if ep.dist else "?"
            ep_version = ep.dist.version if ep.dist else "?"
            info = PluginInfo(ep.name, ep_version, ep_dist, builtin=False)
            tk.plugins[ep.name] = info
            label = f"{ep.name} ({ep_dist} {ep_version})"
            try:
                plugin = ep.load()
                tk.pm.register(plugin, name=ep.name)
            except Exception as exc:
                fail(info, PluginError(label, f"import failed: {exc!r}"))
                continue
            order.append(ep.name)

    for i, plugin in enumerate(extra_plugins):
        name = getattr(plugin, "__name__", None) or f"extra-{i}"
        if name in deny:
            continue
        info = PluginInfo(name, getattr(plugin, "__version__", "0"), "(registered directly)", builtin=False)
        tk.plugins[name] = info
        try:
            tk.pm.register(plugin, name=name)
        except Exception as exc:
            fail(info, PluginError(name, f"registration failed: {exc!r}"))
            continue
        order.append(name)

    for hook_name, (attr, _cls) in REGISTRIES.items():
        registry: Registry = getattr(tk, attr)
        impls = {tk.pm.get_name(impl.plugin): impl for impl in getattr(tk.pm.hook, hook_name).get_hookimpls()}
        for plugin_name in order:
            impl = impls.get(plugin_name)
            info = tk.plugins[plugin_name]
            if impl is None or info.error:
                continue
            label = f"{plugin_name} ({info.dist} {info.version})"
            registry.current_plugin = label
            before = set(registry.names())
            try:
                impl.function(registry=registry)
            except Exception as exc:
                registry.remove_plugin(label)
                err = exc if isinstance(exc, PluginError) else PluginError(label, f"{hook_name} raised {exc!r}")
                fail(info, err)
                continue
            finally:
                registry.current_plugin = "<direct>"
            added = [n for n in registry.names() if n not in before]
            if added:
                info.registered[registry.kind] = added
    # A plugin that failed in a later hook keeps nothing it registered in earlier ones.
    for info in tk.plugins.values():
        if info.error:
            label = f"{info.name} ({info.dist} {info.version})"
            for attr, _cls in REGISTRIES.values():
                getattr(tk, attr).remove_plugin(label)
            info.registered = {}
    return tk


_toolkit: Toolkit | None = None


def get_toolkit() -> Toolkit:
    """The process-wide toolkit, loaded once on first use (strict: a broken plugin raises)."""
    global _toolkit
    if _toolkit is None:
        _toolkit = load_toolkit(strict=_strict_default)
    return _toolkit


_strict_default = True


def set_toolkit(toolkit: Toolkit | None) -> None:
    """Replace the process-wide toolkit (the CLI loads a non-strict one; tests install fresh ones)."""
    global _toolkit
    _toolkit = toolkit

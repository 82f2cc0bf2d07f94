"""The plugin manager: built-ins and third-party packages register through the same hooks.

Built-in plugins are listed in `DEFAULT_PLUGINS` (pytest's `default_plugins`, llm's `DEFAULT_PLUGINS`);
third-party ones come from the entry-point group `na_toolkit`. Environment variables:

- `NA_TOOLKIT_PLUGINS`: comma-separated allow list of entry-point plugins to load (set but empty: none).
  Built-ins and plugins passed to `load_toolkit(extra_plugins=...)` are not affected.
- `NA_TOOLKIT_DISABLE_PLUGINS`: comma-separated deny list by plugin name: an entry-point name, a built-in's
  module name (e.g. `na_toolkit.builtin.predictors`) or an extra plugin's `__name__`.

A plugin that fails (import error, invalid hook implementation, raising hook, duplicate component name,
wrong object type) is reported as `plugin NAME (DIST VERSION): error`, and everything it registered is
withdrawn, so a half-registered plugin never lingers. The library raises `PluginError` (strict, the
default); the CLI warns and carries on unless `--strict-plugins`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import pluggy

from . import __version__, hookspecs
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
BUILTIN_DIST = "na-toolkit"
HOOK_PREFIX = "na_"

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

# hook name -> (attribute on Toolkit, registry class); the order is the order registration runs in
# (layer types first: moves and seeds may refer to them).
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


class PluginWarning(RuntimeWarning):
    """A plugin was skipped because it is broken (non-strict loading)."""


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: where it comes from and what it registered."""

    name: str
    version: str
    #: distribution that provides it ("" for a plugin handed to `load_toolkit(extra_plugins=...)`)
    dist: str
    builtin: bool
    #: Toolkit attribute (e.g. "layer_types") -> names registered there, in registration order
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def label(self) -> str:
        """How messages name the plugin: `name (dist version)`."""
        return f"{self.name} ({self.dist} {self.version})" if self.dist else self.name

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Toolkit:
    """What the plugins registered: one typed registry per hook, plus what each plugin did.

    `plugins` maps plugin name -> PluginInfo (failed ones included, with `error` set); `errors` holds every
    PluginError met while loading, in order."""

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

    def registries(self) -> dict[str, Registry]:
        """Toolkit attribute -> registry, in registration order."""
        return {attr: getattr(self, attr) for attr, _cls in REGISTRIES.values()}

    def __repr__(self) -> str:
        ok = sum(1 for p in self.plugins.values() if not p.error)
        return f"<Toolkit {ok} plugins, {len(self.errors)} errors>"


def _names_from_env(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


class _Loader:
    """One `load_toolkit` call: registers plugins with the pluggy manager, then runs the hooks plugin by
    plugin so that each failure is pinned on its plugin."""

    def __init__(self, tk: Toolkit, strict: bool):
        self.tk = tk
        self.strict = strict
        self.order: list[str] = []  # successfully registered plugins, in load order

    def fail(self, info: PluginInfo | None, label: str, message: str, cause: BaseException | None = None) -> None:
        # A PluginError from a registry (duplicate name, wrong type) already names the plugin.
        err = cause if isinstance(cause, PluginError) else PluginError(label, message)
        if cause is not None and err is not cause:
            err.__cause__ = cause
        if info is not None:
            info.error = str(err)
            self.withdraw(info)
        self.tk.errors.append(err)
        if self.strict:
            raise err
        warnings.warn(str(err), PluginWarning, stacklevel=4)

    def withdraw(self, info: PluginInfo) -> None:
        """Forget everything a failed plugin registered, in every registry and in the hook manager."""
        for registry in self.tk.registries().values():
            registry.remove_plugin(info.label)
        info.registered = {}
        if self.tk.pm.has_plugin(info.name):
            self.tk.pm.unregister(name=info.name)
        if info.name in self.order:
            self.order.remove(info.name)

    def add(self, info: PluginInfo, load: Callable[[], Any]) -> None:
        existing = self.tk.plugins.get(info.name)
        if existing is not None:
            # Two distributions claiming one plugin name: loading either silently would hide the other.
            self.fail(
                None,
                info.label,
                f"a plugin named {info.name!r} is already loaded from {existing.label}; uninstall one of them "
                f"or disable one with {DENY_ENV}",
            )
            return
        self.tk.plugins[info.name] = info
        try:
            plugin = load()
        except Exception as exc:
            self.fail(info, info.label, f"import failed: {_one_line(exc)}", exc)
            return
        if self.tk.pm.is_registered(plugin):
            # e.g. a test passing an installed plugin in extra_plugins while entry points are loaded too
            other = self.tk.pm.get_name(plugin)
            self.fail(info, info.label, f"the same module is already loaded as plugin {other!r}; load it once "
                      "(load_toolkit(entry_points=False) in tests)")
            return
        try:
            _check_plugin_object(plugin)
            self.tk.pm.register(plugin, name=info.name)
            _check_hookimpls(self.tk.pm, plugin)
        except Exception as exc:
            self.fail(info, info.label, f"invalid plugin: {' '.join(str(exc).split())}", exc)
            return
        self.order.append(info.name)

    def run_hooks(self) -> None:
        for hook_name, (attr, _cls) in REGISTRIES.items():
            registry: Registry = getattr(self.tk, attr)
            impls: dict[str, list[Any]] = {}
            for impl in getattr(self.tk.pm.hook, hook_name).get_hookimpls():
                impls.setdefault(impl.plugin_name, []).append(impl)
            for plugin_name in list(self.order):
                info = self.tk.plugins[plugin_name]
                for impl in impls.get(plugin_name, ()):
                    if not self.call(info, hook_name, registry, impl):
                        break

    def call(self, info: PluginInfo, hook_name: str, registry: Registry, impl: Any) -> bool:
        # Each implementation is called on its own (not through pluggy's collect-all call) so that an
        # exception is attributed to the plugin that raised it.
        registry.current_plugin = info.label
        before = set(registry.names())
        try:
            impl.function(**{arg: registry for arg in impl.argnames})
        except Exception as exc:
            self.fail(info, info.label, f"{hook_name} raised {_one_line(exc)}", exc)
            return False
        finally:
            registry.current_plugin = "<direct>"
        added = [n for n in registry.names() if n not in before]
        if added:
            attr = REGISTRIES[hook_name][0]
            info.registered.setdefault(attr, []).extend(added)
        return True


def _one_line(exc: BaseException) -> str:
    """`Type: message` on one line (the CLI prints one line per error; pluggy's messages span several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _check_plugin_object(plugin: Any) -> None:
    """Catch the commonest plugin mistake: a `na_register_*` function without `@na_toolkit.hookimpl`
    (pluggy would silently ignore it)."""
    marker = f"{hookspecs.PROJECT_NAME}_impl"
    for attr in dir(plugin):
        if attr.startswith(HOOK_PREFIX + "register_"):
            fn = getattr(plugin, attr, None)
            if callable(fn) and not hasattr(fn, marker):
                raise ValueError(f"{attr} is not decorated with @na_toolkit.hookimpl, so it would never be called")


def _check_hookimpls(pm: pluggy.PluginManager, plugin: Any) -> None:
    """Refuse hook implementations that match no hook spec (a typo) and wrappers (hooks are collect-all
    registrations called plugin by plugin; a wrapper would never run)."""
    for caller in pm.get_hookcallers(plugin) or []:
        if not caller.has_spec():
            known = [n for n in dir(hookspecs) if n.startswith(HOOK_PREFIX + "register_")]
            close = difflib.get_close_matches(caller.name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known hooks: {', '.join(known)}"
            raise ValueError(f"implements unknown hook {caller.name!r}.{hint}")
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper):
                raise ValueError(f"{caller.name}: hook wrappers are not supported")


def _entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    # Sorted by name so the load order (and thus which of two clashing plugins is blamed) is stable.
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def load_toolkit(
    strict: bool = True,
    entry_points: bool = True,
    extra_plugins: tuple[Any, ...] = (),
) -> Toolkit:
    """Build a fresh `Toolkit`: register the built-ins, the entry-point plugins and `extra_plugins`
    (modules or objects with `@na_toolkit.hookimpl` functions, named by their `__name__`; tests use this),
    then run every registration hook, plugin by plugin.

    strict=True raises the first `PluginError`; strict=False warns (`PluginWarning`), records the error in
    `toolkit.errors` and `toolkit.plugins[name].error`, and carries on without the broken plugin."""
    tk = Toolkit()
    loader = _Loader(tk, strict)
    deny = _names_from_env(DENY_ENV) or set()
    allow = _names_from_env(ALLOW_ENV)

    for module_name in DEFAULT_PLUGINS:
        if module_name in deny:
            continue
        info = PluginInfo(module_name, __version__, BUILTIN_DIST, builtin=True)
        loader.add(info, lambda m=module_name: importlib.import_module(m))

    if entry_points:
        for ep in _entry_points():
            if ep.name in deny or (allow is not None and ep.name not in allow):
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown-dist"
            version = ep.dist.version if ep.dist is not None else "?"
            loader.add(PluginInfo(ep.name, version, dist, builtin=False), ep.load)

    for i, plugin in enumerate(extra_plugins):
        name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{i}"
        if name in deny:
            continue
        version = str(getattr(plugin, "__version__", ""))
        loader.add(PluginInfo(name, version, "", builtin=False), lambda p=plugin: p)

    loader.run_hooks()
    return tk


_toolkit: Toolkit | None = None


def get_toolkit() -> Toolkit:
    """The process-wide toolkit, loaded once on first use (strict: a broken plugin raises PluginError).
    The CLI installs a non-strict one with `set_toolkit` before anything asks for it."""
    global _toolkit
    if _toolkit is None:
        _toolkit = load_toolkit(strict=True)
    return _toolkit


def set_toolkit(toolkit: Toolkit | None) -> None:
    """Replace the process-wide toolkit (None: load afresh on next use). Tests install fresh ones."""
    global _toolkit
    _toolkit = toolkit


@contextmanager
def use_toolkit(toolkit: Toolkit) -> Iterator[Toolkit]:
    """Make `toolkit` the process-wide one inside a `with` block, then restore the previous one (tests and
    plugin tests: architectures built without an explicit registry use the process-wide toolkit)."""
    global _toolkit
    previous = _toolkit
    _toolkit = toolkit
    try:
        yield toolkit
    finally:
        _toolkit = previous


def nb201_plugin(needed_by: str):
    """The first-party NAS-Bench-201 plugin module (`na_toolkit_nb201`), imported on use, for the commands
    and benchmarks built on its table; a ConfigError saying how to install it when it is absent."""
    try:
        import na_toolkit_nb201
    except ImportError:
        from .errors import ConfigError

        raise ConfigError(f"{needed_by} needs the NAS-Bench-201 plugin: pip install -e plugins/na_toolkit_nb201") from None
    return na_toolkit_nb201

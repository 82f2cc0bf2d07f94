"""The plugin manager: built-ins and third-party packages register through the same hooks.

Built-in plugins are listed in `DEFAULT_PLUGINS` (pytest's `default_plugins`, llm's `DEFAULT_PLUGINS`);
third-party ones come from the entry-point group `na_toolkit`. Environment variables:

- `NA_TOOLKIT_PLUGINS`: comma-separated allow list of entry-point plugins to load (set but empty: none).
  Built-ins and plugins passed to `load_toolkit(extra_plugins=...)` are not affected.
- `NA_TOOLKIT_DISABLE_PLUGINS`: comma-separated deny list by plugin name: an entry-point name, a built-in's
  module name (e.g. `na_toolkit.builtin.predictors`) or an extra plugin's `__name__`.

A name in either list that no plugin has (a typo) is reported like a broken plugin, with the close matches.

A plugin that fails (import error, invalid hook implementation, raising hook, SystemExit included, a hook
returning a value instead of calling `registry.add`, duplicate component name, wrong object type) is
reported as `plugin NAME (DIST VERSION): error`, and everything it registered is withdrawn, so a
half-registered plugin never lingers. The library raises `PluginError` (strict, the
default); the CLI warns and carries on unless `--strict-plugins`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import os
import re
import types
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pluggy

from . import __version__, hookspecs
from .errors import NAToolkitWarning, PluginError, describe, did_you_mean, raise_interrupt, with_article
from .registry import DIRECT, PLUGIN_FAILURES, Registry
from .toolkit import REGISTRIES, PluginSelection, Toolkit

__all__ = [
    "DEFAULT_PLUGINS",
    "REGISTRIES",
    "PluginInfo",
    "PluginSelection",
    "PluginWarning",
    "Toolkit",
    "extend_toolkit",
    "get_toolkit",
    "load_toolkit",
    "load_toolkit_from_selection",
    "set_toolkit",
]

ENTRY_POINT_GROUP = "na_toolkit"
ALLOW_ENV = "NA_TOOLKIT_PLUGINS"
DENY_ENV = "NA_TOOLKIT_DISABLE_PLUGINS"
BUILTIN_DIST = "na-toolkit"
HOOK_PREFIX = "na_"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "na_toolkit.builtin.layers",
    "na_toolkit.builtin.layers_mobile",
    "na_toolkit.builtin.layers_activations",
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
    "na_toolkit.builtin.benchmarks",
)

#: hooks renamed since a release: a plugin still implementing the old name gets an error naming the new one
RENAMED_HOOKS: dict[str, str] = {"na_register_operations": "na_register_moves"}


class PluginWarning(NAToolkitWarning, RuntimeWarning):
    """A plugin was skipped because it is broken (non-strict loading). A RuntimeWarning too, as it was."""


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

    def add(self, info: PluginInfo, load: Callable[[], Any], registers: bool = False) -> None:
        """Load one plugin and register it. `registers=True`: `load()` registers the plugin with the hook
        manager itself (pluggy's entry-point loader) and returns it."""
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
        except PLUGIN_FAILURES as exc:
            raise_interrupt(exc)  # Ctrl-C while the plugin imported a C extension: the user's, not the plugin's
            # pluggy's entry-point loader registers the module too: a hook it refuses is no import failure
            hookimpl = _hookimpl_error(exc)
            self.fail(
                info, info.label, f"invalid plugin: {hookimpl}" if hookimpl else f"import failed: {describe(exc)}", exc
            )
            return
        if not registers and self.tk.pm.is_registered(plugin):
            # e.g. a test passing an installed plugin in extra_plugins while entry points are loaded too
            other = self.tk.pm.get_name(plugin)
            self.fail(
                info,
                info.label,
                f"the same module is already loaded as plugin {other!r}; load it once "
                "(load_toolkit(entry_points=False) in tests)",
            )
            return
        try:
            _check_plugin_object(plugin)
            if not registers:
                self.tk.pm.register(plugin, name=info.name)
            _check_hookimpls(self.tk.pm, plugin)
        except Exception as exc:
            self.fail(info, info.label, f"invalid plugin: {_hookimpl_error(exc) or ' '.join(str(exc).split())}", exc)
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
            returned = impl.function(**dict.fromkeys(impl.argnames, registry))
        except PLUGIN_FAILURES as exc:
            raise_interrupt(exc)
            self.fail(info, info.label, f"{hook_name} raised {describe(exc)}", exc)
            return False
        finally:
            registry.current_plugin = DIRECT
        added = [n for n in registry.names() if n not in before]
        if returned is not None and not _is_registered(returned, registry, added):
            # pluggy would collect the value and nothing would read it: the components would silently vanish
            what = with_article(type(returned).__name__)
            self.fail(info, info.label, f"hooks call registry.add(...) and return nothing; {hook_name} returned {what}")
            return False
        if added:
            attr = REGISTRIES[hook_name][0]
            info.registered.setdefault(attr, []).extend(added)
        return True


def _is_registered(returned: Any, registry: Registry, added: list[str]) -> bool:
    """Is the value a hook returned one of the objects it has just registered? (`registry.add` returns its
    argument, so `lambda registry: registry.add(obj)` registers `obj` and returns it.)"""
    return any(registry.is_loaded(n) and registry.get(n) is returned for n in added)


def _hookimpl_error(exc: BaseException) -> str | None:
    """pluggy's refusal of a hook function whose arguments are not the hook's, said with what to write
    instead (every hook takes one argument, `registry`); None for any other exception."""
    text = " ".join(str(exc).split())
    found = re.search(r"for hook '(\w+)' hookimpl definition: (\w+\(.*?\)) Argument", text)
    if not isinstance(exc, pluggy.PluginValidationError) or found is None:
        return None
    hook, definition = found.groups()
    return f"{definition}: a hook takes one argument, named `registry`; define it as def {hook}(registry)"


def _check_not_namespace(plugin: Any) -> None:
    """Refuse a plugin module imported as a namespace package: a folder of its name without `__init__.py`
    (the checkout folder holding the package, in the current directory that `python -m` puts first on
    sys.path) found before the installed package, whose hooks would then silently never run."""
    if (
        isinstance(plugin, types.ModuleType)
        and getattr(plugin, "__file__", None) is None
        and hasattr(plugin, "__path__")
    ):
        folders = ", ".join(str(f) for f in plugin.__path__)
        raise ValueError(
            f"module {plugin.__name__!r} was imported as a namespace package from {folders} (a folder without "
            "__init__.py, on sys.path before the installed package: the current directory, or PYTHONPATH), so "
            "none of its hooks would run; run from another directory or take that folder off PYTHONPATH"
        )


def _check_plugin_object(plugin: Any) -> None:
    """Catch the commonest plugin mistakes: a `na_register_*` function without `@na_toolkit.hookimpl`
    (pluggy would silently ignore it), and a package shadowed by a folder of its name."""
    _check_not_namespace(plugin)
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
            renamed = RENAMED_HOOKS.get(caller.name)
            if renamed is not None:
                raise ValueError(f"implements {caller.name!r}, which is now called {renamed!r}: rename the function")
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
    `toolkit.errors` and `toolkit.plugins[name].error`, and carries on without the broken plugin.
    The allow/deny environment variables are read here, once; the toolkit's `selection` records the result
    so that a worker process rebuilds the same toolkit (`load_toolkit_from_selection`)."""
    extra_plugins = _given_plugins(extra_plugins, "load_toolkit(extra_plugins=...)")
    deny = _names_from_env(DENY_ENV) or set()
    allow = _names_from_env(ALLOW_ENV)
    modules = tuple(p.__name__ for p in extra_plugins if isinstance(p, types.ModuleType))
    selection = PluginSelection(
        entry_points=entry_points,
        allow=tuple(sorted(allow)) if allow is not None else None,
        deny=tuple(sorted(deny)),
        extra_modules=modules,
        strict=strict,
        portable=len(modules) == len(extra_plugins),
    )
    return _build(selection, extra_plugins)


def load_toolkit_from_selection(selection: PluginSelection) -> Toolkit:
    """Rebuild the toolkit another process built (a worker running a task): the same built-ins, the same
    entry-point allow/deny lists and the same extra plugin modules, imported by name."""
    if not selection.portable:
        raise PluginError(
            "<selection>",
            "the toolkit was built with extra plugin objects that are not importable modules; a worker process "
            "cannot rebuild it (pass modules to load_toolkit(extra_plugins=...), or use an in-process executor)",
        )
    extra = tuple(importlib.import_module(name) for name in selection.extra_modules)
    return _build(selection, extra)


def extend_toolkit(toolkit: Toolkit, *plugins: Any) -> Toolkit:
    """A new toolkit of the same plugin selection as `toolkit`, plus `plugins` (modules or objects with
    `@na_toolkit.hookimpl` functions), e.g. a benchmark adding a baseline strategy of its own."""
    plugins = _given_plugins(plugins, "extend_toolkit(toolkit, *plugins)")
    selection = toolkit.selection
    extra = tuple(importlib.import_module(name) for name in selection.extra_modules) + plugins
    added = tuple(p.__name__ for p in plugins if isinstance(p, types.ModuleType))
    selection = dataclasses.replace(
        selection,
        extra_modules=selection.extra_modules + added,
        portable=selection.portable and len(added) == len(plugins),
    )
    return _build(selection, extra)


def _given_plugins(plugins: Any, where: str) -> tuple[Any, ...]:
    """The plugins a caller hands over, as a tuple. One module or object not in a tuple was "'module' object is
    not iterable", a name ("my_plugin") was read as the plugins 'm', 'y', ..., and a name in the tuple was
    taken as a plugin that registers nothing: each is a TypeError saying what to pass."""
    if isinstance(plugins, types.ModuleType) or not isinstance(plugins, Iterable | str):
        one = plugins.__name__ if isinstance(plugins, types.ModuleType) else repr(plugins)
        raise TypeError(f"{where}: a tuple of plugin modules or objects, got {type(plugins).__name__}: ({one},)")
    given = (plugins,) if isinstance(plugins, str) else tuple(plugins)
    for plugin in given:
        if isinstance(plugin, str | bytes):
            raise TypeError(
                f"{where}: {plugin!r} is a name, not a plugin: import the module and pass it (extra_plugins=(module,))"
            )
    return given


def _build(selection: PluginSelection, extra_plugins: tuple[Any, ...]) -> Toolkit:
    tk = Toolkit(selection)
    loader = _Loader(tk, selection.strict)
    _check_selected_names(loader, selection, [_extra_name(p, i) for i, p in enumerate(extra_plugins)])
    for name in selection.deny:  # pluggy's block list: a blocked name is never registered
        tk.pm.set_blocked(name)

    for module_name in DEFAULT_PLUGINS:
        if tk.pm.is_blocked(module_name):
            continue
        info = PluginInfo(module_name, __version__, BUILTIN_DIST, builtin=True)
        loader.add(info, functools.partial(importlib.import_module, module_name))

    if selection.entry_points:
        for ep in _entry_points():
            if tk.pm.is_blocked(ep.name) or (selection.allow is not None and ep.name not in selection.allow):
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown-dist"
            version = ep.dist.version if ep.dist is not None else "?"
            info = PluginInfo(ep.name, version, dist, builtin=False)
            if ep.name in tk.plugins:  # a second distribution with the same plugin name: reported by add()
                loader.add(info, ep.load)
                continue
            loader.add(info, functools.partial(_load_entry_point, tk, ep.name), registers=True)

    for i, plugin in enumerate(extra_plugins):
        name = _extra_name(plugin, i)
        if tk.pm.is_blocked(name):
            continue
        version = str(getattr(plugin, "__version__", ""))
        loader.add(PluginInfo(name, version, "", builtin=False), functools.partial(_given, plugin))

    loader.run_hooks()
    return tk


def _extra_name(plugin: Any, index: int) -> str:
    """The plugin name of an extra plugin: its `__name__` (a module's is its dotted name)."""
    return getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{index}"


def _check_selected_names(loader: _Loader, selection: PluginSelection, extra_names: list[str]) -> None:
    """A name in the allow or deny list that no plugin has is reported (a misspelt `myplgu` would otherwise
    leave `myplug` loaded without a word). Every installed entry point counts, loaded or not (tests load
    with `entry_points=False` under the user's deny list)."""
    if not selection.deny and not selection.allow:
        return
    installed = sorted({ep.name for ep in _entry_points()})
    known = {DENY_ENV: [*DEFAULT_PLUGINS, *installed, *extra_names], ALLOW_ENV: installed}
    for var, names in ((DENY_ENV, selection.deny), (ALLOW_ENV, selection.allow or ())):
        action = "disabled" if var == DENY_ENV else "enabled"
        for name in names:
            if name in known[var]:
                continue
            if name in DEFAULT_PLUGINS:  # in the allow list
                why = f"a built-in plugin, always loaded ({var} selects entry-point plugins; {DENY_ENV} skips one)"
            else:
                listed = ", ".join(sorted({*installed, *extra_names})) or "none"
                why = (
                    f"no plugin has this name, so nothing was {action} by it.{did_you_mean(name, known[var])} "
                    f"Installed plugins: {listed} (`na-toolkit plugins` lists the built-ins too)"
                )
            loader.fail(None, name, f"named in {var}: {why}")


def _given(plugin: Any) -> Any:
    """The loader of an extra plugin: the caller handed over the object itself."""
    return plugin


def _load_entry_point(tk: Toolkit, name: str) -> Any:
    """pluggy's entry-point loader for the one plugin `name` (so a failure is pinned on that plugin)."""
    tk.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    plugin = tk.pm.get_plugin(name)
    if plugin is None:  # pragma: no cover - the entry point was listed a moment ago
        raise ImportError(f"entry point {name!r} of group {ENTRY_POINT_GROUP!r} vanished while loading")
    return plugin


_toolkit: Toolkit | None = None


def get_toolkit() -> Toolkit:
    """The default toolkit of the library API's entry points (`run_search`, `run_demo` called without a
    toolkit), loaded once on first use (strict: a broken plugin raises PluginError). Only entry points
    call it: everything below them receives its toolkit explicitly. The CLI installs the one it built."""
    global _toolkit
    if _toolkit is None:
        _toolkit = load_toolkit(strict=True)
    return _toolkit


def toolkit_or_default(toolkit: Any, where: str) -> Toolkit:
    """The toolkit a library entry point (`where`: `run_search`, `open_run`) works with: the one it was given,
    or the process's default (`get_toolkit`) for None. Anything else is a TypeError naming the entry point,
    not an AttributeError from deep inside the search (a registry instead of the toolkit, a name)."""
    if toolkit is None:
        return get_toolkit()
    if not isinstance(toolkit, Toolkit):
        raise TypeError(
            f"{where}: toolkit must be a Toolkit (na_toolkit.plugins.load_toolkit()), got {type(toolkit).__name__}"
        )
    return toolkit


def installed_toolkit() -> Toolkit | None:
    """The process-wide toolkit if one is installed (None: `get_toolkit` would load one), loading nothing."""
    return _toolkit


def set_toolkit(toolkit: Toolkit | None) -> None:
    """Replace the process-wide toolkit (None: load afresh on next use). Tests install fresh ones."""
    global _toolkit
    _toolkit = toolkit

"""The generic registry handed to the `na_register_*` hooks (in the manner of tox's `ToxEnvRegister`).

`registry.add(obj)` checks the object's type and refuses a duplicate name, naming both plugins. The plugin
manager sets `current_plugin` while it calls one plugin's hook, so every entry knows who registered it.

`registry.add_lazy(name, "package.module:attribute")` registers a component by where it lives: the registry
imports it the first time it is used (`get`, `items`, `entries`) and checks it then. Listing names, `--help`
and every command that does not use the component then cost no import of it (the built-in predictors come
this way: their base class is scikit-learn's `BaseEstimator`, and importing scikit-learn takes longer than
all the rest of the CLI's start).

The typed registries (one per hook) live beside the item class they hold (`ir.layers.LayerTypeRegistry`)
or in `na_toolkit.toolkit`; this module sits at the bottom of the layering and imports nothing above
`errors`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from .errors import (
    DuplicateComponentError,
    PluginError,
    UnknownComponentError,
    describe,
    raise_interrupt,
    with_article,
)

T = TypeVar("T")

#: what plugin code (its import, a hook, a lazy component's import) may raise and be reported for, naming the
#: plugin: a `sys.exit()` there is the plugin's failure, not a request to end the command (every command loads
#: every plugin). KeyboardInterrupt is not among them: Ctrl-C still interrupts.
PLUGIN_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit)


#: what an unknown name with no close registered one adds: it may be a missing plugin's
PLUGIN_HINT = "If a plugin provides it, install that plugin here (`na-toolkit plugins` lists what is loaded)"


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str


#: "package.module:attribute" (dotted module path, then one attribute name)
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


@dataclass(frozen=True)
class LazyComponent:
    """A component registered by import path (`Registry.add_lazy`), imported on first use."""

    path: str

    def load(self) -> Any:
        module_name, _, attribute = self.path.partition(":")
        return getattr(importlib.import_module(module_name), attribute)


def require_registry(registry: Any, attr: str) -> Any:
    """`registry` when it is a Registry (or None); else a TypeError saying to pass `toolkit.<attr>` (giving the
    Toolkit itself is the usual slip, which failed later as "'Toolkit' object has no attribute 'names'")."""
    if registry is None or isinstance(registry, Registry):
        return registry
    got = "the Toolkit itself" if hasattr(registry, attr) else f"a {type(registry).__name__}"
    raise TypeError(f"{attr} must be the toolkit's registry, got {got}: pass toolkit.{attr}")


#: the plugin of a component added to a registry directly (`toolkit.evaluators.add(...)` outside any hook)
DIRECT = "<direct>"


class Registry(Generic[T]):
    """Name → component. Subclasses set `kind` (for messages), `item_type` (the class of the items) and
    `holds_classes` (True when plugins register classes that the toolkit instantiates with options)."""

    kind: ClassVar[str] = "component"
    item_type: ClassVar[type] = object
    holds_classes: ClassVar[bool] = False

    def __init__(self) -> None:
        self._entries: dict[str, Entry[T]] = {}
        self.current_plugin = DIRECT

    @classmethod
    def expected_type(cls) -> type:
        """The class items must be (or subclass); a registry whose item class is costly to import overrides
        this to import it when the first item is checked."""
        return cls.item_type

    def _check_type(self, obj: Any) -> None:
        expected = self.expected_type()
        ok = (isinstance(obj, type) and issubclass(obj, expected)) if self.holds_classes else isinstance(obj, expected)
        if not ok:
            want = f"a subclass of {expected.__name__}" if self.holds_classes else f"an instance of {expected.__name__}"
            hint = ""
            if self.holds_classes and isinstance(obj, expected):  # an instance of the right class
                hint = f": register the class itself, registry.add({type(obj).__name__})"
            elif not self.holds_classes and isinstance(obj, type) and issubclass(obj, expected):
                hint = f": register an instance, registry.add({obj.__name__}(...))"
            raise PluginError(
                self.current_plugin, f"registered {obj!r} as {with_article(self.kind)}, expected {want}{hint}"
            )

    def add(self, obj: T, name: str | None = None) -> T:
        """Register `obj` under `name` (default: its `name` attribute, which `name` must then equal, as for
        `add_lazy`: the toolkit finds a component again by the name it gives itself, in a move's record or a
        time estimate). An item that can be renamed (a `renamed(name)` method: a dataset source, named after
        its file by `dataset_from_npz`) is registered under another name as its copy of that name, so what it
        reports (a loaded dataset's name) is the name it is listed and found under. Returns what was
        registered: `obj` (usable as decorator), or that copy."""
        self._check_type(obj)
        declared = getattr(obj, "name", None)
        rename = getattr(obj, "renamed", None)
        if name is not None and declared is not None and declared != name:
            if isinstance(obj, type) or not callable(rename):
                raise PluginError(
                    self.current_plugin,
                    f"{self.kind} registered as {name!r} calls itself {declared!r}: register it under its own name",
                )
            obj = rename(name)
        self._claim(name if name is not None else declared, obj)
        return obj

    def add_lazy(self, name: str, path: str) -> None:
        """Register the component at `path` ("package.module:attribute") under `name` without importing it.
        It is imported and checked (its type, and its `name` attribute where it has one) on first use; a
        failure then is a `PluginError` naming the plugin that registered it."""
        if not isinstance(path, str) or not _IMPORT_PATH.match(path):
            raise PluginError(
                self.current_plugin,
                f"registered {self.kind} {name!r} lazily at {path!r}: expected 'package.module:attribute'",
            )
        self._claim(name, LazyComponent(path))

    def _claim(self, name: Any, obj: Any) -> None:
        if not isinstance(name, str) or not name:
            what = with_article(self.kind)
            raise PluginError(self.current_plugin, f"{what} must have a non-empty string `name`, got {name!r}")
        if name in self._entries:
            first = self._entries[name].plugin
            raise DuplicateComponentError(
                self.current_plugin, f"{self.kind} {name!r} is already registered by plugin {first}"
            )
        self._entries[name] = Entry(name, obj, self.current_plugin)

    def _resolved(self, entry: Entry[T]) -> Entry[T]:
        lazy = entry.obj
        if not isinstance(lazy, LazyComponent):
            return entry
        previous, self.current_plugin = self.current_plugin, entry.plugin
        try:
            try:
                obj = lazy.load()
            except PLUGIN_FAILURES as exc:
                raise_interrupt(exc)  # Ctrl-C during the import (a C extension's): the user's, not the plugin's
                raise PluginError(
                    entry.plugin,
                    f"{self.kind} {entry.name!r} could not be imported from {lazy.path}: {describe(exc)}",
                ) from exc
            self._check_type(obj)
            declared = getattr(obj, "name", entry.name)
            if declared != entry.name:
                raise PluginError(
                    entry.plugin,
                    f"{self.kind} registered as {entry.name!r} at {lazy.path} calls itself {declared!r}",
                )
        finally:
            self.current_plugin = previous
        resolved = Entry(entry.name, obj, entry.plugin)
        self._entries[entry.name] = resolved
        return resolved

    def is_loaded(self, name: str) -> bool:
        """Has the component registered as `name` been imported (False only for a lazy one not used yet)?"""
        return not isinstance(self._entries[name].obj, LazyComponent)

    def get(self, name: str) -> T:
        try:
            entry = self._entries[name]
        except KeyError:
            from .errors import did_you_mean

            # no close registered name: it may be a plugin's that is not installed here (or not allowed)
            more = "" if did_you_mean(name, list(self._entries)) else PLUGIN_HINT
            raise UnknownComponentError(self.kind, name, self._entries, more) from None
        return self._resolved(entry).obj

    def plugin_of(self, name: str) -> str:
        if name not in self._entries:
            raise UnknownComponentError(self.kind, name, self._entries)
        return self._entries[name].plugin

    def names(self) -> list[str]:
        return list(self._entries)

    def direct_names(self) -> list[str]:
        """The components added directly, outside any plugin's hook: a worker process that rebuilds the
        toolkit from its plugins (`load_toolkit_from_selection`) does not have them."""
        return [name for name, e in self._entries.items() if e.plugin == DIRECT]

    def items(self) -> list[tuple[str, T]]:
        return [(e.name, e.obj) for e in self.entries()]

    def entries(self) -> list[Entry[T]]:
        return [self._resolved(e) for e in list(self._entries.values())]

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

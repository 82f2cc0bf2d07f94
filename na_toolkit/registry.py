"""The generic registry handed to the `na_register_*` hooks (in the manner of tox's `ToxEnvRegister`).

`registry.add(obj)` checks the object's type and refuses a duplicate name, naming both plugins. The plugin
manager sets `current_plugin` while it calls one plugin's hook, so every entry knows who registered it.
The typed registries (one per hook) live beside the item class they hold (`ir.layers.LayerTypeRegistry`)
or in `na_toolkit.toolkit`; this module sits at the bottom of the layering and imports nothing above
`errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from .errors import DuplicateComponentError, PluginError, UnknownComponentError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Name → component. Subclasses set `kind` (for messages), `item_type` (the class of the items) and
    `holds_classes` (True when plugins register classes that the toolkit instantiates with options)."""

    kind: ClassVar[str] = "component"
    item_type: ClassVar[type] = object
    holds_classes: ClassVar[bool] = False

    def __init__(self) -> None:
        self._entries: dict[str, Entry[T]] = {}
        self.current_plugin = "<direct>"

    def _check_type(self, obj: Any) -> None:
        expected = self.item_type
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

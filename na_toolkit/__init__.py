"""na_toolkit: hardware-aware neural architecture search (Neural Architect) built of pluggy plugins.

Importing the package is cheap: it imports nothing, and `hookimpl` (what a plugin writes,
`@na_toolkit.hookimpl`), the error base class, `Architecture`, `load_toolkit` and the rest load on first use.
(The command line starts here: it catches a Ctrl-C once `na_toolkit.__main__.run` runs, so nothing
before that may take long.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.8.1"

if TYPE_CHECKING:
    from .errors import NAToolkitError
    from .hookspecs import hookimpl  # what a plugin writes: @na_toolkit.hookimpl
    from .ir.architecture import Architecture, Attrs, Node
    from .plugins import get_toolkit, load_toolkit
    from .toolkit import Toolkit

_LAZY = {
    "NAToolkitError": "na_toolkit.errors",
    "hookimpl": "na_toolkit.hookspecs",
    "Architecture": "na_toolkit.ir.architecture",
    "Attrs": "na_toolkit.ir.architecture",
    "Node": "na_toolkit.ir.architecture",
    "Toolkit": "na_toolkit.toolkit",
    "get_toolkit": "na_toolkit.plugins",
    "load_toolkit": "na_toolkit.plugins",
}

__all__ = ["__version__", *_LAZY]


def __dir__() -> list[str]:  # what a notebook's completion offers: the public names (lazy ones too), submodules
    from types import ModuleType

    modules = [k for k, v in globals().items() if isinstance(v, ModuleType)]
    return sorted({*__all__, *modules, "__doc__", "__file__", "__name__", "__path__"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'na_toolkit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

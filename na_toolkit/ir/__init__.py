"""The architecture IR (`architecture`, `builder`, `layers`, `edit`, ...). `na_toolkit.ir.from_torch` imports a
torch module (`na_toolkit.ir.torch_import`, loaded on first use: reading architectures never imports torch)."""

from __future__ import annotations

from typing import Any

__all__ = ["from_torch"]


def __getattr__(name: str) -> Any:
    if name == "from_torch":
        from .torch_import import from_torch

        return from_torch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

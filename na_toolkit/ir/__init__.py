"""The architecture IR (`architecture`, `builder`, `layers`, `edit`, ...). `na_toolkit.ir.from_torch` imports a
torch module and `na_toolkit.ir.from_onnx` an ONNX file (`torch_import`, `onnx_import`, loaded on first use:
reading architectures imports neither torch nor onnx)."""

from __future__ import annotations

from typing import Any

__all__ = ["from_onnx", "from_torch"]


def __getattr__(name: str) -> Any:
    if name == "from_torch":
        from .torch_import import from_torch

        return from_torch
    if name == "from_onnx":
        from .onnx_import import from_onnx

        return from_onnx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

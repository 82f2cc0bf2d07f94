"""Time models: estimate latency, training time, peak memory and energy of an architecture on a device.

`get_time_model(name, device=..., **options)` builds a registered time model (`na-toolkit plugins` lists
them): `onnxruntime` and `torch` measure on a local device ("cpu", "cuda:N"), `roofline` reads a hardware
model, `learned` fits a device profile.
"""

from __future__ import annotations

from typing import Any

from .base import TimeEstimate, TimeModel


def get_time_model(name: str, device: Any = None, toolkit: Any = None, **options: Any) -> TimeModel:
    """An instance of the time model registered as `name`, for `device` (the model's default if None).
    An unknown name raises UnknownComponentError listing the close matches and the registered ones."""
    from ..plugins import get_toolkit

    cls = (toolkit or get_toolkit()).time_models.get(name)
    return cls(**options) if device is None else cls(device=device, **options)


__all__ = ["TimeEstimate", "TimeModel", "get_time_model"]

"""Time models: estimate latency, training time, peak memory and energy of an architecture on a device.

`get_time_model(name, toolkit, device=..., **options)` builds a time model registered in `toolkit`
(`na-toolkit plugins` lists them): `onnxruntime` and `torch` measure on a local device ("cpu", "cuda:N"),
`roofline` reads a hardware model, `learned` fits a device profile. The toolkit is explicit: it holds the
registries the models resolve names in (`toolkit.hardware` for hardware models and profiles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import TimeEstimate, TimeModel

if TYPE_CHECKING:
    from ..toolkit import Toolkit


def get_time_model(name: str, toolkit: Toolkit, device: Any = None, **options: Any) -> TimeModel:
    """An instance of the time model registered as `name` in `toolkit`, for `device` (the model's default
    if None). An unknown name raises UnknownComponentError listing the close matches and the registered
    ones."""
    if not hasattr(toolkit, "time_models"):
        raise TypeError(
            f"get_time_model({name!r}, toolkit, ...): the second argument must be a Toolkit "
            f"(na_toolkit.plugins.load_toolkit()), got {type(toolkit).__name__}"
        )
    cls: type[TimeModel] = toolkit.time_models.get(name)
    model: TimeModel = (
        cls.from_toolkit(toolkit, **options) if device is None else cls.from_toolkit(toolkit, device=device, **options)
    )
    return model


__all__ = ["TimeEstimate", "TimeModel", "get_time_model"]

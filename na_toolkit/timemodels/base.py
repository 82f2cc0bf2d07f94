"""The time-model protocol: estimate latency, training time, peak memory and energy of an architecture on
a device at a batch size. Results are dataclasses with units in their names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..ir.architecture import Architecture

if TYPE_CHECKING:
    from typing import Self

    from ..toolkit import Toolkit


@dataclass(frozen=True)
class TimeEstimate:
    """What a time model says of one architecture on one device at one batch size."""

    time_model: str
    device: str
    batch_size: int
    latency_ms: float
    train_step_ms: float | None = None
    peak_memory_bytes: int | None = None
    energy_mj: float | None = None
    #: measured: spread of repeated runs; analytic/learned: None
    latency_p10_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_iqr_ms: float | None = None
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def training_time_s(self, steps: int) -> float | None:
        """Training time for `steps` optimizer steps, from the per-step time."""
        return None if self.train_step_ms is None else self.train_step_ms * steps / 1000.0


class TimeModel:
    """Base class of every registered time model. Construct with the device (and options); `estimate`
    gives a `TimeEstimate`. Code that holds a toolkit builds one with `from_toolkit` (or
    `get_time_model`), which hands over the registries a model needs to resolve names."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: True when estimating runs the network on the device (slow, noisy); False for analytic/learned/table
    measures: ClassVar[bool] = False

    def __init__(self, device: str = "cpu", **options: Any):
        self.device = device
        self.options = options

    @classmethod
    def from_toolkit(cls, toolkit: Toolkit, **options: Any) -> Self:
        """This time model built with what `toolkit` registered (hardware models, device profiles, layer
        types). The default passes the options through; a model that resolves names (roofline: hardware
        model names; learned: profile names and the layer types of the profile's networks) overrides it."""
        return cls(**options)

    def estimate(self, arch: Architecture, batch_size: int = 1) -> TimeEstimate:
        raise NotImplementedError

    def latency_ms(self, arch: Architecture, batch_size: int = 1) -> float:
        return self.estimate(arch, batch_size).latency_ms

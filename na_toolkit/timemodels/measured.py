"""What the measured time models (onnxruntime, torch) share: option checking, the result cache, the local
device (parsed by `devices.parse_device`), an analytic peak-memory figure for CPUs."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from .. import validation
from ..errors import TimeModelError
from ..ir.architecture import Architecture
from .base import FigureSource, TimeEstimate, TimeModel
from .cache import CacheKey, TimeEstimateCache
from .devices import LocalDevice, describe_device, parse_device
from .measure import MeasureSettings


def take_options(model: str, options: dict[str, Any], allowed: dict[str, Any]) -> dict[str, Any]:
    """`allowed` holds the defaults; an unknown option is a TimeModelError listing the known ones."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TimeModelError(
            f"time model {model!r} has no option(s) {unknown}.{validation.did_you_mean(unknown, allowed)} "
            f"Known: {sorted(allowed)}"
        )
    return {**allowed, **options}


def settings_from(value: Any) -> MeasureSettings:
    if value is None:
        return MeasureSettings()
    if isinstance(value, MeasureSettings):
        return value
    if isinstance(value, dict):
        return MeasureSettings.from_json(value)
    raise TimeModelError(f"measure settings must be a MeasureSettings or a dict, got {value!r}")


#: what `latency_ms` reports of the samples: the median (the protocol's, the default), the 10th
#: percentile, or the minimum, the lower envelope that is least sensitive to other processes on a shared
#: machine ("the lowest value gives a lower bound for how fast your machine can run the given code
#: snippet; higher values ... are typically ... caused by ... other processes interfering", Python's
#: timeit documentation). All three are always recorded in the measurement.
STATISTICS = ("median", "p10", "min")


def check_statistic(statistic: str) -> str:
    if statistic not in STATISTICS:
        raise TimeModelError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    return statistic


def analytic_peak_memory_bytes(arch: Architecture, batch_size: int) -> int:
    """Weights plus the largest set of live activations of a forward pass: what a runtime must hold at
    least (used where the runtime offers no allocator statistics, e.g. ONNX Runtime on a CPU)."""
    return int(arch.cost.weight_bytes + arch.peak_activation_bytes * batch_size)


class MeasuredTimeModel(TimeModel):
    """Base of time models that run the network: a result cache, the local device, the options every
    measured model has (subclasses extend `OPTIONS`)."""

    measures = True
    runtime = ""
    #: does the runtime report its allocator's peak on a GPU (torch: yes; ONNX Runtime: no, analytic everywhere)
    measures_gpu_memory: ClassVar[bool] = False
    #: option -> default; an unknown option is a TimeModelError listing these
    OPTIONS: dict[str, Any] = {
        "settings": None,
        "seed": 0,
        "clock": "auto",
        "statistic": "median",
        "intra_op_threads": 1,
    }

    class Options(validation.Options):
        """The options every measured time model has (a subclass's model extends these)."""

        model_config = ConfigDict(strict=True)

        device: str = Field("cpu", description='the local device: "cpu", "cuda" or "cuda:N"')
        cache: str | None = Field(None, description="file of the measurement cache (default: in memory)")
        settings: dict[str, Any] | None = Field(None, description="measurement protocol (MeasureSettings fields)")
        seed: int = Field(0, description="seed of the random inputs")
        clock: str = Field("auto", description="the timer")
        statistic: Literal["median", "p10", "min"] = Field("median", description="what latency_ms reports")
        intra_op_threads: int = Field(1, ge=0, le=1_024, description="threads inside an operator")

    def __init__(self, device: str = "cpu", cache: TimeEstimateCache | str | None = None, **options: Any):
        opts = take_options(self.name, options, self.OPTIONS)
        super().__init__(device=device, **opts)
        self.settings: MeasureSettings = settings_from(opts["settings"])
        self.statistic = check_statistic(opts["statistic"])
        self.seed = opts["seed"]
        self.spec: LocalDevice = parse_device(device)
        if cache is None or isinstance(cache, TimeEstimateCache):
            self.cache = cache if cache is not None else TimeEstimateCache()
        else:
            self.cache = TimeEstimateCache(cache)
        self._description: str | None = None

    def gives(self, figure: str) -> bool | None:
        """Peak memory always (measured on a GPU where the runtime reports it, else analytic); energy only from a
        GPU's NVML counter, so never on a CPU, and on a GPU as its first measurement finds it."""
        if figure == "peak_memory_bytes":
            return True
        if figure == "energy_mj":
            return None if self.spec.is_cuda else False
        return super().gives(figure)

    def figure_source(self, figure: str) -> FigureSource | None:
        """Latency: measured. Peak memory: measured only from a GPU allocator's statistics (torch on CUDA), else
        the analytic figure (weights + peak live activations), an estimate. Energy: NVML's counter on a GPU."""
        gpu = bool(getattr(self, "on_gpu", self.spec.is_cuda))  # ONNX Runtime's CPU fallback for cuda: False
        if figure == "peak_memory_bytes" and not (gpu and self.measures_gpu_memory):
            return FigureSource("estimated", f"analytic: weights + peak live activations; {self.runtime} reports none")
        if figure == "energy_mj":
            return FigureSource("measured", "NVML energy counter") if gpu else None
        if figure == "peak_memory_bytes":
            return FigureSource("measured", f"{self.runtime} CUDA allocator peak")
        if figure == "latency_ms":
            where = self.spec if gpu or not self.spec.is_cuda else f"the CPU, not {self.spec} (allow_fallback)"
            return FigureSource(
                "measured", f"{self.name} on {where}, {self.statistic} of the timed runs", self.statistic
            )
        return super().figure_source(figure)

    def why_not_given(self, figure: str) -> str | None:
        if figure == "energy_mj" and not self.spec.is_cuda:
            return "energy is read from an NVIDIA GPU's NVML counter, and this device is a CPU"
        return None

    @property
    def device_description(self) -> str:
        if self._description is None:
            self._description = describe_device(self.spec)
        return self._description

    def cache_settings(self) -> dict[str, Any]:
        """Everything besides architecture, device and batch that changes a measurement."""
        raise NotImplementedError

    def _measure(self, arch: Architecture, batch_size: int) -> TimeEstimate:
        raise NotImplementedError

    def estimate(self, arch: Architecture, batch_size: int = 1) -> TimeEstimate:
        self.check_request(arch, batch_size)
        key = CacheKey.make(
            arch.hash, f"{self.spec} ({self.device_description})", self.runtime, batch_size, self.cache_settings()
        )
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        return self.measure_again(arch, batch_size, key)

    def measure_again(self, arch: Architecture, batch_size: int = 1, key: CacheKey | None = None) -> TimeEstimate:
        """Measure now, whatever the cache holds, and store the result (a repeat measurement)."""
        if key is None:
            key = CacheKey.make(
                arch.hash, f"{self.spec} ({self.device_description})", self.runtime, batch_size, self.cache_settings()
            )
        est = self._measure(arch, batch_size)
        self.cache.put(key, est)
        return est

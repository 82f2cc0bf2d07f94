"""NVML telemetry (module `pynvml` of nvidia-ml-py) attached to every GPU measurement.

Only read-only NVML queries are used: this module never changes clocks, power limits, persistence or any
other GPU setting (docs/architecture.md). Every query that a GPU or driver does not support is recorded as missing
(None) instead of failing the measurement. Where NVML itself is missing (no driver: `nvmlInit` raises
`NVMLError_LibraryNotFound`), `NvmlUnavailable.reason` says so and measurements record
"nvml unavailable: <reason>".

Energy comes from `nvmlDeviceGetTotalEnergyConsumption` (millijoules since the driver was loaded; Volta and
newer, NVML API reference), read before and after the timed runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GpuTelemetry:
    """One snapshot of a GPU's state. None: the query is not supported on this GPU/driver."""

    index: int
    name: str
    uuid: str | None
    driver_version: str | None
    sm_clock_mhz: int | None
    memory_clock_mhz: int | None
    temperature_c: int | None
    power_w: float | None
    power_limit_w: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    utilization_gpu_pct: int | None
    #: active clock-event ("throttle") reasons, by name, and the raw bit mask
    throttle_reasons: tuple[str, ...]
    throttle_mask: int | None
    #: NVML's total-energy counter (mJ since driver load), None where unsupported
    total_energy_mj: int | None
    time_s: float

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["throttle_reasons"] = list(self.throttle_reasons)
        return doc


@dataclass(frozen=True)
class NvmlUnavailable:
    reason: str

    def __str__(self) -> str:
        return f"nvml unavailable: {self.reason}"


def _pynvml():
    try:
        import pynvml
    except ImportError as exc:  # nvidia-ml-py is a dependency, but a trimmed environment may lack it
        raise _Unavailable(f"module pynvml not importable ({exc}); install nvidia-ml-py") from None
    return pynvml


class _Unavailable(Exception):
    pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # NVMLError_NotSupported, NoPermission, ... : record as missing
        return None


def _throttle_names(pynvml: Any, mask: int | None) -> tuple[str, ...]:
    if not mask:
        return ()
    names = []
    for attr in dir(pynvml):
        prefix = "nvmlClocksThrottleReason"
        if attr.startswith(prefix) and attr not in (prefix + "All", prefix + "None"):
            bit = getattr(pynvml, attr)
            if isinstance(bit, int) and bit and mask & bit == bit:
                names.append(attr[len(prefix) :])
    return tuple(sorted(set(names)))


class Nvml:
    """A context manager around nvmlInit/nvmlShutdown. `available` is False (and `unavailable.reason`
    explains) where NVML cannot start; snapshots are then None."""

    def __init__(self) -> None:
        self.unavailable: NvmlUnavailable | None = None
        self._pynvml: Any = None

    def __enter__(self) -> Nvml:
        try:
            pynvml = _pynvml()
            pynvml.nvmlInit()
            self._pynvml = pynvml
        except _Unavailable as exc:
            self.unavailable = NvmlUnavailable(str(exc))
        except Exception as exc:  # NVMLError_LibraryNotFound (no driver), DriverNotLoaded, ...
            self.unavailable = NvmlUnavailable(str(exc) or type(exc).__name__)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pynvml is not None:
            _try(self._pynvml.nvmlShutdown)
            self._pynvml = None

    @property
    def available(self) -> bool:
        return self._pynvml is not None

    def status(self) -> str:
        return "ok" if self.available else str(self.unavailable)

    def device_count(self) -> int:
        return int(self._pynvml.nvmlDeviceGetCount()) if self.available else 0

    def _handle(self, index: int, uuid: str | None = None) -> Any:
        p = self._pynvml
        if uuid:
            handle = _try(lambda: p.nvmlDeviceGetHandleByUUID(uuid))
            if handle is not None:
                return handle
        return p.nvmlDeviceGetHandleByIndex(index)

    def snapshot(self, index: int = 0, uuid: str | None = None) -> GpuTelemetry | None:
        """Telemetry of the GPU with NVML index `index` (or the given UUID, which survives
        CUDA_VISIBLE_DEVICES renumbering). None where NVML is unavailable."""
        if not self.available:
            return None
        p = self._pynvml
        try:
            h = self._handle(index, uuid)
        except Exception:
            return None
        power_mw = _try(lambda: p.nvmlDeviceGetPowerUsage(h))
        limit_mw = _try(lambda: p.nvmlDeviceGetEnforcedPowerLimit(h))
        mem = _try(lambda: p.nvmlDeviceGetMemoryInfo(h))
        util = _try(lambda: p.nvmlDeviceGetUtilizationRates(h))
        reasons_fn = (
            getattr(p, "nvmlDeviceGetCurrentClocksEventReasons", None) or p.nvmlDeviceGetCurrentClocksThrottleReasons
        )
        mask = _try(lambda: reasons_fn(h))
        return GpuTelemetry(
            index=index,
            name=_text(_try(lambda: p.nvmlDeviceGetName(h)) or "unknown"),
            uuid=_try(lambda: _text(p.nvmlDeviceGetUUID(h))),
            driver_version=_try(lambda: _text(p.nvmlSystemGetDriverVersion())),
            sm_clock_mhz=_try(lambda: p.nvmlDeviceGetClockInfo(h, p.NVML_CLOCK_SM)),
            memory_clock_mhz=_try(lambda: p.nvmlDeviceGetClockInfo(h, p.NVML_CLOCK_MEM)),
            temperature_c=_try(lambda: p.nvmlDeviceGetTemperature(h, p.NVML_TEMPERATURE_GPU)),
            power_w=None if power_mw is None else power_mw / 1000.0,
            power_limit_w=None if limit_mw is None else limit_mw / 1000.0,
            memory_used_bytes=None if mem is None else int(mem.used),
            memory_total_bytes=None if mem is None else int(mem.total),
            utilization_gpu_pct=None if util is None else int(util.gpu),
            throttle_reasons=_throttle_names(p, mask),
            throttle_mask=None if mask is None else int(mask),
            total_energy_mj=_try(lambda: int(p.nvmlDeviceGetTotalEnergyConsumption(h))),
            time_s=time.time(),
        )


def nvml_status() -> str:
    """ "ok" where NVML starts, else "nvml unavailable: <reason>"."""
    with Nvml() as nv:
        return nv.status()


@dataclass(frozen=True)
class TelemetryRecord:
    """Telemetry around one GPU measurement: snapshots before/after and the energy of the timed part."""

    status: str
    before: GpuTelemetry | None = None
    after: GpuTelemetry | None = None
    #: energy the counter recorded between the two snapshots (None where unsupported)
    energy_mj: float | None = None
    energy_calls: int = 0
    #: the measured latency of one call (the measurement's median)
    call_ms: float | None = None

    @property
    def window_s(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        dt = self.after.time_s - self.before.time_s
        return dt if dt > 0 else None

    @property
    def mean_power_w(self) -> float | None:
        w = self.window_s
        return None if self.energy_mj is None or w is None else self.energy_mj / 1000.0 / w

    @property
    def energy_per_call_mj(self) -> float | None:
        """Mean board power over the window x one call's latency. The window also holds the warm-up runs
        and the synchronisation between timed runs, so its energy over the timed calls would overcount
        (several-fold for sub-millisecond calls); without a window or latency, that upper bound."""
        power = self.mean_power_w
        if power is not None and self.call_ms is not None:
            return power * self.call_ms  # W x ms = mJ
        if self.energy_mj is None or self.energy_calls <= 0:
            return None
        return self.energy_mj / self.energy_calls

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "before": None if self.before is None else self.before.to_json(),
            "after": None if self.after is None else self.after.to_json(),
            "energy_mj": self.energy_mj,
            "energy_calls": self.energy_calls,
            "window_s": self.window_s,
            "mean_power_w": self.mean_power_w,
            "energy_per_call_mj": self.energy_per_call_mj,
        }


def energy_between(before: GpuTelemetry | None, after: GpuTelemetry | None) -> float | None:
    if before is None or after is None or before.total_energy_mj is None or after.total_energy_mj is None:
        return None
    delta = after.total_energy_mj - before.total_energy_mj
    return float(delta) if delta >= 0 else None  # a driver reload resets the counter

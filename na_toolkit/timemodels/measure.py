"""The measurement protocol (docs/architecture.md) as one reusable function over a callable.

    warm-up: at least `warmup_runs` calls AND at least `warmup_s` seconds (caches, allocator, lazy
             initialisation of the runtime, CPU frequency ramp)
    repeat:  timed samples until at least `min_runs` were taken and the median is stable, or a cap is hit
    report:  median, p10, p90, IQR, mean, min/max, a robust coefficient of variation

Why these choices (the machines we measure on are shared, 2-core VMs where neighbours steal time slices):

- Robust statistics. Interference only ever adds time, so the distribution of one network's latency is a
  tight mode plus a heavy right tail. The median and the IQR ignore the tail; the mean and the standard
  deviation do not. `cv` is therefore the normalised IQR over the median (IQR/1.349 estimates sigma for a
  normal distribution); the classic std/mean is kept as `cv_classic` for comparison.
- Batches of calls. A sample times `calls_per_run` consecutive calls and divides: for a 50 us network a
  single call is dominated by timer and scheduling jitter, while ~1 ms of calls is not. The batch is chosen
  from the warm-up so that a sample lasts about `target_sample_s` (1 call for networks slower than that).
- Stability. After `min_runs` samples we stop once the median of all samples and the median of the first
  half differ by less than `rel_tolerance`, and the standard error of the median (~1.2533 sigma/sqrt(n))
  is below `rel_tolerance` of it; otherwise we keep sampling up to `max_runs` / `max_time_s` and say so
  (`stable=False`).

- Which clock. A `timer(fn, calls) -> seconds` abstracts how a batch is timed: the wall clock
  (`perf_counter_ns`), the calling thread's CPU time (`thread_time_ns`), CUDA events on a GPU (torch_tm).
  On a CPU with one intra-op thread the network runs on the calling thread, so its thread CPU time is its
  latency minus the time slices the scheduler gave to other processes: on an idle machine the two agree,
  on a shared one the wall clock measures the neighbours. The measured time models use the thread clock
  there by default and record the wall-clock median next to it (`wall_median_ms`).
"""

from __future__ import annotations

import gc
import importlib.metadata
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from ..errors import TimeModelError
from .measure_noise import machine_load

#: times `calls` consecutive calls of `fn`, returns seconds
Timer = Callable[[Callable[[], Any], int], float]

# normal distribution: IQR = 1.349 sigma; standard error of the median = sqrt(pi/2) sigma / sqrt(n)
_IQR_PER_SIGMA = 1.349
_MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)


def wall_timer(fn: Callable[[], Any], calls: int) -> float:
    """Wall-clock time of `calls` consecutive calls (for runtimes whose call returns when the work is done)."""
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - t0) * 1e-9


def thread_cpu_timer(fn: Callable[[], Any], calls: int) -> float:
    """CPU time of the calling thread over `calls` calls. Valid only when the runtime computes on the calling
    thread (ONNX Runtime / torch with one intra-op thread): then it is the latency the network has when it
    owns its core, without the time slices a busy machine gives to other processes (see the docstring)."""
    t0 = time.thread_time_ns()
    for _ in range(calls):
        fn()
    return (time.thread_time_ns() - t0) * 1e-9


TIMERS: dict[str, Timer] = {"wall": wall_timer, "thread_cpu": thread_cpu_timer}


@dataclass(frozen=True)
class MeasureSettings:
    """How hard to measure. The defaults are the protocol's; tests and profiling pass smaller
    minimums explicitly (profiling: the process is already warm, only the session's first runs matter)."""

    warmup_runs: int = 10
    warmup_s: float = 0.5
    min_runs: int = 50
    max_runs: int = 2000
    #: cap on the repeat phase (not counting warm-up); reaching it gives stable=False unless already stable
    max_time_s: float = 5.0
    rel_tolerance: float = 0.01
    #: calls per timed sample: 0 = choose from the warm-up so that a sample lasts ~target_sample_s
    calls_per_run: int = 0
    target_sample_s: float = 0.001
    #: collect garbage before timing and keep the collector off while timing (its pauses are noise)
    disable_gc: bool = True

    def __post_init__(self) -> None:
        checks = {
            "warmup_runs": self.warmup_runs >= 0,
            "warmup_s": self.warmup_s >= 0,
            "min_runs": self.min_runs >= 3,
            "max_runs": self.max_runs >= self.min_runs,
            "max_time_s": self.max_time_s > 0,
            "rel_tolerance": 0 < self.rel_tolerance < 1,
            "calls_per_run": self.calls_per_run >= 0,
            "target_sample_s": self.target_sample_s > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise TimeModelError(
                f"bad measurement settings {bad} in {self}: need warmup >= 0, min_runs >= 3, max_runs >= min_runs, "
                "0 < rel_tolerance < 1, positive times"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MeasureSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})

    @classmethod
    def quick(cls, **changes: Any) -> MeasureSettings:
        """Small minimums for tests and smoke runs (still the same protocol)."""
        base = cls(warmup_runs=3, warmup_s=0.02, min_runs=10, max_runs=200, max_time_s=1.0, rel_tolerance=0.05)
        return replace(base, **changes)


@dataclass(frozen=True)
class Measurement:
    """The timing of one callable under the protocol. Times are per call, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    iqr_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    #: robust coefficient of variation: (IQR / 1.349) / median
    cv: float
    #: classic std / mean of the samples (sensitive to interference spikes)
    cv_classic: float
    #: number of timed samples and calls per sample
    runs: int
    calls_per_run: int
    warmup_runs: int
    warmup_s: float
    measure_s: float
    #: the median met the stability criterion (see the module docstring)
    stable: bool
    timer: str = "wall"
    #: wall-clock median per call over the same samples (equals median_ms when timer == "wall")
    wall_median_ms: float | None = None
    #: wall-clock mean per call over the same samples: mean_ms / wall_mean_ms is the share of the time the
    #: measuring thread ran when timer == "thread_cpu" (measure_noise.contention_warning)
    wall_mean_ms: float | None = None
    #: what was measured under which conditions: runtime, provider, device, batch size, threads, versions
    context: dict[str, Any] = field(default_factory=dict)
    samples_ms: tuple[float, ...] = ()

    @property
    def median_s(self) -> float:
        return self.median_ms / 1000.0

    def to_json(self, samples: bool = False) -> dict[str, Any]:
        doc = asdict(self)
        doc["samples_ms"] = list(self.samples_ms) if samples else []
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Measurement:
        names = {f.name for f in fields(cls)}
        data = {k: v for k, v in doc.items() if k in names}
        data["samples_ms"] = tuple(data.get("samples_ms") or ())
        return cls(**data)

    def with_context(self, **context: Any) -> Measurement:
        return replace(self, context={**self.context, **context})


def summarize(samples_ms: np.ndarray) -> dict[str, float]:
    """Robust summary of per-call times (ms): median, p10, p90, IQR, mean, min, max, cv, cv_classic."""
    x = np.asarray(samples_ms, dtype=float)
    if x.size == 0:
        raise TimeModelError("no samples to summarise")
    p10, p25, med, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    mean = float(x.mean())
    iqr = float(p75 - p25)
    return {
        "median_ms": float(med),
        "p10_ms": float(p10),
        "p90_ms": float(p90),
        "iqr_ms": iqr,
        "mean_ms": mean,
        "min_ms": float(x.min()),
        "max_ms": float(x.max()),
        "cv": float(iqr / _IQR_PER_SIGMA / med) if med > 0 else 0.0,
        "cv_classic": float(x.std() / mean) if mean > 0 else 0.0,
    }


def median_is_stable(samples_ms: list[float], rel_tolerance: float) -> bool:
    """True when the median no longer moves: the first half's median agrees with the whole's, and the
    standard error of the median (from the IQR) is within the tolerance."""
    n = len(samples_ms)
    if n < 6:
        return False
    x = np.asarray(samples_ms)
    med = float(np.median(x))
    if med <= 0:
        return True
    first_half = float(np.median(x[: n // 2]))
    p25, p75 = np.percentile(x, [25, 75])
    se = _MEDIAN_SE_FACTOR * (p75 - p25) / _IQR_PER_SIGMA / math.sqrt(n)
    return bool(abs(first_half - med) <= rel_tolerance * med and se <= rel_tolerance * med)


def library_versions(*dists: str) -> dict[str, str]:
    out = {}
    for d in dists:
        try:
            out[d] = importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def measure(
    fn: Callable[[], Any],
    settings: MeasureSettings | None = None,
    timer: Timer = wall_timer,
    timer_name: str = "wall",
    context: dict[str, Any] | None = None,
) -> Measurement:
    """Time `fn` (one inference, one training step...) under the protocol; see the module docstring."""
    s = settings or MeasureSettings()
    load_before = machine_load()
    gc.collect()
    gc_was_enabled = gc.isenabled()
    if s.disable_gc:
        gc.disable()
    try:
        # warm-up: >= warmup_runs calls and >= warmup_s seconds; the last calls estimate one call's time
        t_start = time.perf_counter()
        warm_times: list[float] = []
        while len(warm_times) < s.warmup_runs or time.perf_counter() - t_start < s.warmup_s:
            warm_times.append(timer(fn, 1))
        warmup_s = time.perf_counter() - t_start
        per_call_s = float(np.median(warm_times[-10:])) if warm_times else timer(fn, 1)
        calls = s.calls_per_run or max(1, min(10_000, int(round(s.target_sample_s / max(per_call_s, 1e-9)))))

        samples: list[float] = []
        wall: list[float] = []
        t0 = time.perf_counter()
        stable = False
        while len(samples) < s.max_runs:
            w0 = time.perf_counter_ns()
            samples.append(timer(fn, calls) / calls * 1000.0)
            wall.append((time.perf_counter_ns() - w0) * 1e-6 / calls)
            n = len(samples)
            if n >= s.min_runs and (n % 5 == 0 or n == s.min_runs):
                stable = median_is_stable(samples, s.rel_tolerance)
                if stable:
                    break
            if n >= s.min_runs and time.perf_counter() - t0 > s.max_time_s:
                break
        measure_s = time.perf_counter() - t0
    finally:
        if s.disable_gc and gc_was_enabled:
            gc.enable()
    stats = summarize(np.asarray(samples))
    context = dict(context or {})
    load_after = machine_load()
    if load_before is not None and load_after is not None:  # the load each measured figure was taken under
        context["load_average_1min"] = {
            "before": load_before["load_average_1min"],
            "after": load_after["load_average_1min"],
            "cores": load_after["cores"],
        }
    return Measurement(
        **stats,
        runs=len(samples),
        calls_per_run=calls,
        warmup_runs=len(warm_times),
        warmup_s=warmup_s,
        measure_s=measure_s,
        stable=stable,
        timer=timer_name,
        wall_median_ms=float(np.median(wall)),
        wall_mean_ms=float(np.mean(wall)),
        context=context,
        samples_ms=tuple(samples),
    )

"""What a measurement can tell about the machine it ran on: the load around it, and whether other processes
took the measuring thread's core while it was timed.

- `machine_load()`: the 1-minute load average and the core count, recorded before and after the timed runs
  in every measurement's context (`details["measurement"]["context"]["load_average_1min"]`), so each measured
  figure carries the load it was taken under, also where it is read back from a cache.
- `contention_warning(m)`: with the thread-CPU clock (the default with one thread on the CPU) a measurement
  excludes the time slices the scheduler gave to other processes, so it stays "stable" while the wall clock
  runs far slower; their interference in the shared caches and on the sibling hyperthread still inflates it.
  Three processes measuring resnet-cifar at once on a 2-core machine read 0.55 ms (thread CPU) against 0.48 ms
  alone, with a wall-clock median of 1.7 ms, and no warning (2026-12-04, not committed). When the wall-clock
  mean exceeds the thread-CPU mean by more than `CONTENDED_WALL_RATIO`, the estimate says so. Means over all
  samples, not medians: a preemption lasts a few milliseconds, longer than a ~1 ms sample, so most samples see
  none and the medians agree even while the thread ran half of the time (three busy processes beside it on 2
  cores: wall and thread-CPU medians within 2%).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .measure import Measurement

#: wall-clock mean / thread-CPU mean above which the measuring thread shared its core (idle: about 1.0)
CONTENDED_WALL_RATIO = 1.25


def machine_load() -> dict[str, Any] | None:
    """{"load_average_1min", "cores"} of this machine now; None where the platform has no load average."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
    return {"load_average_1min": round(load, 2), "cores": os.cpu_count()}


def contention_warning(m: Measurement) -> str | None:
    """A warning when a thread-CPU measurement's wall clock ran much slower than its thread's CPU time: other
    processes or threads ran on the measuring thread's core (None: no sign of that, or another clock)."""
    if m.timer != "thread_cpu" or not m.wall_mean_ms or m.mean_ms <= 0:
        return None
    # means, not medians: the scheduler takes the core for a few milliseconds at a time, so with ~1 ms samples
    # most samples see no preemption and the medians agree while the thread ran half of the time
    ratio = m.wall_mean_ms / m.mean_ms
    if ratio <= CONTENDED_WALL_RATIO:
        return None
    load = m.context.get("load_average_1min") or {}
    seen = ""
    if load.get("after") is not None:
        seen = f"; 1-minute load average {load['before']:g} -> {load['after']:g} on {load.get('cores')} cores"
    return (
        f"the measuring thread had its core {1 / ratio:.0%} of the time (wall-clock mean {m.wall_mean_ms:.4g} ms, "
        f"thread CPU mean {m.mean_ms:.4g} ms{seen}): other processes or threads competed for the CPU while it "
        "was measured; the thread CPU time leaves out their time slices but not their interference in the shared "
        "caches, so this latency may read high: measure on a quiet machine"
    )

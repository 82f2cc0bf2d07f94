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
- `contention(m)`: that rule alone, on a `Measurement` or its JSON (`Measurement.to_json`): whether the thread
  shared its core, and the ratio. A device profile stores it per item (`contention_record`, in the item's
  `measurement` as `"contended"` and `"wall_thread_ratio"`); `contention_counts` counts a profile's items,
  those of a profile written before it as unknown.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
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


def contention(m: Measurement | Mapping[str, Any]) -> tuple[bool, float] | None:
    """(contended, wall-clock mean / thread-CPU mean) of a thread-CPU measurement (a `Measurement` or its
    JSON): contended when the ratio exceeds CONTENDED_WALL_RATIO. None where the rule cannot tell: another
    clock, or no wall-clock mean recorded."""
    doc: Mapping[str, Any] = m if isinstance(m, Mapping) else vars(m)
    timer, mean, wall = doc.get("timer"), doc.get("mean_ms"), doc.get("wall_mean_ms")
    if timer != "thread_cpu" or not wall or not isinstance(mean, (int, float)) or mean <= 0:
        return None
    # means, not medians: the scheduler takes the core for a few milliseconds at a time, so with ~1 ms samples
    # most samples see no preemption and the medians agree while the thread ran half of the time
    ratio = float(wall) / float(mean)
    return ratio > CONTENDED_WALL_RATIO, ratio


def contention_record(m: Measurement | Mapping[str, Any]) -> dict[str, Any]:
    """What a profile stores of `contention(m)` in an item's measurement summary: {"contended": bool,
    "wall_thread_ratio": float}, or {} where the rule cannot tell (a wall-clock measurement)."""
    found = contention(m)
    if found is None:
        return {}
    return {"contended": found[0], "wall_thread_ratio": round(found[1], 4)}


def contention_counts(summaries: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """{"contended", "not_contended", "unknown"}: how many of a profile's item measurement summaries were
    measured while the thread shared its core, were not, or do not say (a wall clock, an older profile)."""
    counts = {"contended": 0, "not_contended": 0, "unknown": 0}
    for summary in summaries:
        flag = summary.get("contended")
        counts["unknown" if not isinstance(flag, bool) else "contended" if flag else "not_contended"] += 1
    return counts


def contention_warning(m: Measurement) -> str | None:
    """A warning when a thread-CPU measurement's wall clock ran much slower than its thread's CPU time: other
    processes or threads ran on the measuring thread's core (None: no sign of that, or another clock)."""
    found = contention(m)
    if found is None or not found[0]:
        return None
    ratio = found[1]
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

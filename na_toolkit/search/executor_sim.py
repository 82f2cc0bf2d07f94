"""The `simulated` executor: a fleet of any size on a virtual clock, for questions of scale.

Each task is run here, at once, but takes simulated time: an evaluation by the `synthetic` evaluator takes
the time it would have slept (`train_time_s`), on the first of `workers` virtual workers that is free. The
clock moves by the driver's real CPU time between two calls to the executor (proposing, storing, refitting
in line: what the driver really costs per evaluation; its thread's CPU time, so other load on the machine
does not count) and jumps to the next task's end when the driver waits. So a
search on it shows what a fleet of 64 or 1,000 workers would do with the real loop, store and predictors,
without 1,000 processes: the share of worker time busy, the wall time, and the driver's share of it.

`busy_share` = (the workers' busy seconds) / (workers x the clock at the end). Measurements (exclusive
tasks) take their own real time on the clock, with every worker idle, as the loop asks of them.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from pydantic import ConfigDict, Field

from .. import validation
from ..validation import validate_options
from .executors import Executor, Task, TaskResult, run_task

__all__ = ["SimulatedExecutor", "SimulationStats"]


@dataclass(frozen=True)
class SimulationStats:
    """Where a simulated run's time went (seconds on the virtual clock)."""

    workers: int
    tasks: int
    clock_s: float
    busy_s: float
    driver_s: float

    @property
    def busy_share(self) -> float:
        return self.busy_s / (self.workers * self.clock_s) if self.clock_s > 0 else 0.0


class SimulatedExecutor(Executor):
    """`workers` virtual workers on a simulated clock; evaluations take the time the `synthetic` evaluator
    draws for them (any other evaluator: its real time). For scale simulations (docs/scale.md)."""

    name = "simulated"
    description = "a virtual fleet of any size on a simulated clock (with the synthetic evaluator: docs/scale.md)"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        workers: int = Field(64, ge=1, le=1_000_000, description="virtual workers")

    def __init__(self, workers: int = 64):
        validate_options(self.Options, {"workers": workers}, "executor.options")
        super().__init__(workers=workers)
        self.workers = workers
        self.clock_s = 0.0
        self.busy_s = 0.0
        self.driver_s = 0.0
        self.tasks = 0
        #: when each virtual worker is next free (a heap)
        self._free_at = [0.0] * workers
        #: (end time, ticket, result) of each task still running, a heap
        self._ends: list[tuple[float, int, TaskResult]] = []
        self._last_return = time.thread_time()

    def _advance_by_driver(self) -> None:
        """Move the clock by the driver's real time since the executor last returned."""
        now = time.thread_time()
        spent = now - self._last_return
        self.clock_s += spent
        self.driver_s += spent
        self._last_return = now

    def _start(self, ticket: int, task: Task) -> None:
        self._advance_by_driver()
        if task.kind == "evaluate" and task.component == "synthetic":
            task = replace(task, options={**task.options, "sleep": False})
        result = run_task(task, self.toolkit)
        duration = float((result.value or {}).get("train_time_s") or result.elapsed_s)
        free_at = heapq.heappop(self._free_at)
        end = max(free_at, self.clock_s) + duration
        heapq.heappush(self._free_at, end)
        heapq.heappush(self._ends, (end, ticket, replace(result, elapsed_s=duration, worker="simulated")))
        self.busy_s += duration
        self.tasks += 1
        self._last_return = time.thread_time()

    def _running(self) -> int:
        return len(self._ends)

    def _collect(self, block: bool) -> None:
        self._advance_by_driver()
        if block and self._ends and self._ends[0][0] > self.clock_s:
            self.clock_s = self._ends[0][0]  # the driver waits for the next task to end
        while self._ends and self._ends[0][0] <= self.clock_s:
            _, ticket, result = heapq.heappop(self._ends)
            self._finished[ticket] = result
        self._last_return = time.thread_time()

    def _run_exclusive(self, task: Task) -> TaskResult:
        result = super()._run_exclusive(task)  # real time, every worker idle (drained first)
        self._advance_by_driver()
        self._free_at = [max(f, self.clock_s) for f in self._free_at]
        heapq.heapify(self._free_at)
        return result

    def simulation(self) -> SimulationStats:
        """Where the simulated time went so far."""
        end = max([self.clock_s, *[e for e, _, _ in self._ends]])
        return SimulationStats(self.workers, self.tasks, end, self.busy_s, self.driver_s)

    def stats(self) -> dict[str, Any]:
        sim = self.simulation()
        return {**super().stats(), **asdict(sim), "busy_share": sim.busy_share}

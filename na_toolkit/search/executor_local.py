"""The `local` executor: a process pool on this machine; with one worker, tasks run in the driver's process.

A worker that dies (the out-of-memory killer, kill -9, an evaluator that exits the process) breaks CPython's
process pool: every future of the pool fails and the pool ends its other workers. Each task in flight then
runs again on a fresh pool. Only the task the dead worker was running is charged a retry (each worker notes
the ticket it starts in a file of its own, so the driver knows which one it was); the others the pool's end
interrupted run again uncharged. A task charged more than `max_retries` times is recorded as failed. A pool
found broken when a task is submitted (a worker that died idle, while the driver measured) is replaced the
same way, instead of the submit's error ending the search.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from .. import validation
from ..errors import ConfigError
from ..validation import validate_options
from .diagnostics import dead_workers, warn_worker_died, worker_exit
from .executors import Executor, Task, TaskResult
from .worker_processes import (
    WORKER_EXIT_S,
    WORKER_WATCH_S,
    end_processes,
    init_worker,
    run_noted_task,
    signal_processes,
    starting_workers,
)

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor
    from multiprocessing.process import BaseProcess

    from ..toolkit import Toolkit


#: the registries a worker's evaluation uses from the toolkit it rebuilds (`check_toolkit_travels`)
_WORKER_REGISTRIES = ("evaluators", "datasets", "layer_types")


def cannot_travel(runs_where: str, remedy: str) -> str:
    """Why a toolkit built with plugin objects that are not importable modules cannot reach a worker."""
    return (
        f"{runs_where}, which rebuilds the toolkit from its plugins, and this toolkit was built with extra plugin "
        "objects that are not importable modules: pass the plugin's module to load_toolkit(extra_plugins=...), "
        f"install it with an entry point, or {remedy}"
    )


def check_toolkit_travels(toolkit: Toolkit, runs_where: str, remedy: str) -> None:
    """Refuse (a ConfigError) a toolkit a worker process cannot rebuild: plugin objects that are not importable
    modules, or evaluators, datasets or layer types added to it directly (registry.add outside a plugin's hook),
    with which each evaluation would fail in the worker ("unknown evaluator"), spending the budget.
    `runs_where`: the executor's words for where tasks run; `remedy`: its way to run them in this process."""
    if not toolkit.selection.portable:
        raise ConfigError(cannot_travel(runs_where, remedy))
    direct = [f"{attr} {n!r}" for attr in _WORKER_REGISTRIES for n in getattr(toolkit, attr).direct_names()]
    if direct:
        raise ConfigError(
            f"{runs_where}, which rebuilds the toolkit from its plugins, and {', '.join(direct)} were added to this "
            "toolkit directly (registry.add outside a plugin's hook), so no worker has them: register them in a "
            f"plugin module's hook and pass the module to load_toolkit(extra_plugins=...), or {remedy}"
        )


class LocalExecutor(Executor):
    """A process pool on this machine; with one worker, tasks run in this process (no start-up cost).

    Options: workers (default 1), threads_per_worker (default: cores / workers), max_retries (a task whose
    worker died is resubmitted to a fresh pool this many times, default 1)."""

    name = "local"
    description = "process pool on this machine (one worker: in-process); results in task order"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        workers: int = Field(1, ge=1, le=1_024, description="worker processes (1: tasks run in this process)")
        threads_per_worker: int | None = Field(
            None, ge=1, le=1_024, description="CPU threads per worker (default: cores/workers)"
        )
        max_retries: int = Field(1, ge=0, description="resubmissions of a task whose worker died")
        task_timeout_s: float | None = Field(
            None,
            gt=0,
            description="an evaluation running longer is ended (its worker killed) and recorded as failed, never "
            "retried (default: none; with workers = 1 the tasks then run in one worker process)",
        )

    def __init__(
        self,
        workers: int = 1,
        threads_per_worker: int | None = None,
        max_retries: int = 1,
        task_timeout_s: float | None = None,
    ):
        options = {"workers": workers, "threads_per_worker": threads_per_worker, "max_retries": max_retries}
        validate_options(self.Options, {**options, "task_timeout_s": task_timeout_s}, "executor.options")
        super().__init__(**options, task_timeout_s=task_timeout_s)
        self.workers = workers
        self.threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
        self.max_retries = max_retries
        self.task_timeout_s = task_timeout_s
        #: ticket -> seconds it had run when it was ended for running past `task_timeout_s`
        self._timed_out: dict[int, float] = {}
        #: what a search should keep in its warnings (a worker that died), taken by `GroundTruth.record`
        self.warnings: list[str] = []
        self._pool: ProcessPoolExecutor | None = None
        #: the worker processes of the pool (`_submit` sees them start) and of pools discarded before it
        self._workers: list[BaseProcess] = []
        self._retired: list[BaseProcess] = []
        self.retries = 0  # tasks resubmitted because their own worker died
        self.resubmitted = 0  # tasks run again because another worker's death ended the pool
        #: ticket -> (future, task, attempts so far) of each task in the pool
        self._futures: dict[int, tuple[Future[TaskResult], Task, int]] = {}
        #: where each worker notes the ticket it runs (a file named by its pid), made with the first pool
        self._notes: Path | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            if self._notes is None:
                self._notes = Path(tempfile.mkdtemp(prefix="na-toolkit-workers-"))
            # spawn, not fork: a forked copy of a process that already runs torch threads can deadlock
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(self.threads, os.getpid(), str(self._notes)),
            )
        return self._pool

    def _in_process(self) -> bool:
        return self.workers == 1 and self.task_timeout_s is None  # nothing could end a task: no worker needed

    def check_toolkit(self, toolkit: Toolkit) -> None:
        if self._in_process():
            return
        check_toolkit_travels(toolkit, self._runs_where(), "set workers = 1 (tasks then run in this process)")

    def _runs_where(self) -> str:
        return (
            f"executor 'local' with workers = {self.workers}"
            + (f" and task_timeout_s = {self.task_timeout_s:g}" if self.task_timeout_s is not None else "")
            + " runs each task in a worker process"
        )

    def _cannot_travel(self) -> str:
        return cannot_travel(self._runs_where(), "set workers = 1 (tasks then run in this process)")

    def _start(self, ticket: int, task: Task, attempts: int = 0) -> None:
        from concurrent.futures.process import BrokenProcessPool

        if self._in_process():
            super()._start(ticket, task)
            return
        if task.selection is not None and not task.selection.get("portable", True):
            raise ConfigError(self._cannot_travel())
        try:
            future = self._submit_tracked(run_noted_task, ticket, task)
        except BrokenProcessPool:  # a worker died while the pool had nothing of this task yet (idle)
            self._pool_broke()
            future = self._submit_tracked(run_noted_task, ticket, task)
        self._futures[ticket] = (future, task, attempts)

    def _submit_tracked(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Submit `fn(*args)` to the pool, noting the worker processes the submit starts (a pool starts its
        workers as its submits need them, in the submitting thread): `close` ends them, and a broken pool's
        dead one says how it died."""
        import multiprocessing

        pool = self._get_pool()
        before = set(multiprocessing.active_children())
        with starting_workers():
            future = pool.submit(fn, *args)
        self._workers += [p for p in multiprocessing.active_children() if p not in before]
        return future

    def _running(self) -> int:
        return len(self._futures) + super()._running()  # workers = 1: the base class's queue in this process

    def _collect(self, block: bool) -> None:
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as wait_futures
        from concurrent.futures.process import BrokenProcessPool

        if not self._futures:
            super()._collect(block)
            return
        futures = {fut: ticket for ticket, (fut, _, _) in self._futures.items()}
        while True:
            done, _ = wait_futures(list(futures), timeout=WORKER_WATCH_S if block else 0, return_when=FIRST_COMPLETED)
            self._end_overdue()
            if done or not block:
                break
            self._wake_on_dead_worker()
        broken = False
        for fut in done:
            ticket = futures[fut]
            try:
                result = fut.result()
            except BrokenProcessPool:  # a worker died (killed, out of memory): the whole pool is gone
                broken = True
                continue
            self._futures.pop(ticket)
            self._finished[ticket] = result
        if broken:
            self._pool_broke()

    def _pool_broke(self) -> None:
        """The pool is broken (a worker died): the tasks it held run again on a fresh pool, the one the dead
        worker ran charged a retry (failed for good past `max_retries`), the others not charged."""
        from concurrent.futures.process import BrokenProcessPool

        held = sorted(self._futures.items())
        dead = dead_workers(self._workers)  # waits up to a second for the pool to reap them: once
        overdue = [t for t, _ in held if t in self._timed_out]
        how = (
            f"killed by the executor: a task ran past task_timeout_s = {self.task_timeout_s:g}"
            if overdue
            else worker_exit(self._workers, dead)
        )
        culprits = self._tickets_of(dead)
        self._futures = {}
        again: list[tuple[int, Task, int]] = []
        for ticket, (fut, task, attempts) in held:
            if fut.done() and not fut.cancelled() and not isinstance(fut.exception(), BrokenProcessPool):
                self._finished[ticket] = fut.result()  # it finished before the pool broke
                continue
            if ticket in self._timed_out:  # ended for running too long: failed, never run again
                ran = self._timed_out.pop(ticket)
                self._finished[ticket] = TaskResult(
                    None,
                    f"timed out: ended after {ran:.0f} s, over executor.options.task_timeout_s = "
                    f"{self.task_timeout_s:g} (its worker was killed)",
                    elapsed_s=ran,
                )
                continue
            # charged: the dead worker's task, or every one when no note says which that was
            charged = ticket in culprits or not culprits
            if charged and attempts + 1 > self.max_retries:
                died = f"worker process died {attempts + 1} times running this task (last: {how})"
                self._finished[ticket] = TaskResult(None, died)
                continue
            again.append((ticket, task, attempts + 1 if charged else attempts))
            self.retries += charged
            self.resubmitted += not charged
        retried = [a for t, _, a in again if t in culprits or not culprits]
        self.warnings.append(warn_worker_died(how, len(retried), max(retried, default=0), len(again) - len(retried)))
        self._discard_pool()
        for ticket, task, attempts in again:
            self._start(ticket, task, attempts)

    def _end_overdue(self) -> None:
        """Kill the worker of each task that has run longer than `task_timeout_s` (from its note's time): the
        pool breaks, and `_pool_broke` records the task as timed out and runs the others again."""
        if self.task_timeout_s is None or self._notes is None:
            return
        import signal
        import time

        now = time.time()
        for p in self._workers:
            note = self._notes / str(p.pid)
            try:
                ticket, started = int(note.read_text()), note.stat().st_mtime
            except (OSError, ValueError):
                continue
            fut = self._futures.get(ticket, (None,))[0]
            if fut is None or fut.done() or ticket in self._timed_out or now - started <= self.task_timeout_s:
                continue
            self._timed_out[ticket] = now - started
            try:
                os.kill(int(p.pid or 0), signal.SIGKILL)
            except ProcessLookupError:  # it ended by itself just now
                self._timed_out.pop(ticket)

    def _tickets_of(self, pids: list[int]) -> set[int]:
        """The tickets the worker processes `pids` last noted they run (`run_noted_task`)."""
        out: set[int] = set()
        if self._notes is None:  # no pool was made: no worker noted anything
            return out
        for pid in pids:
            try:
                out.add(int((self._notes / str(pid)).read_text()))
            except (OSError, ValueError):
                continue  # it died before it noted any task: it ran none
        return out

    def _wake_on_dead_worker(self) -> None:
        """A worker of the pool has died while nothing else happens: wake the pool so that it sees it.
        CPython's pool watches the workers it had when something last woke it, so the death of the worker a
        submit started last goes unnoticed until the pool's next event; with no other task to finish, a
        search waiting on that worker's task would wait forever. A no-op task is that event."""
        if self._pool is None or not any(p.exitcode is not None for p in self._workers):
            return
        from concurrent.futures.process import BrokenProcessPool

        try:
            self._submit_tracked(os.getpid)
        except (BrokenProcessPool, RuntimeError):  # it has seen it already
            pass

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "workers": self.workers, "retries": self.retries, "resubmitted": self.resubmitted}

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)  # broken: it ends its workers itself
            self._pool = None
        self._retired += self._workers
        self._workers = []

    def close(self) -> None:
        # tasks still running when the executor closes are abandoned (Ctrl-C, an error of the search): their
        # workers are ended rather than waited for, since they ignore Ctrl-C and a training can take minutes
        abandoned = any(not fut.done() for fut, _, _ in self._futures.values())
        self._futures.clear()
        pool, self._pool = self._pool, None
        workers, self._workers, self._retired = self._workers + self._retired, [], []
        notes, self._notes = self._notes, None
        if pool is not None or workers:
            if abandoned:
                signal_processes(workers, "terminate")
            if pool is not None:  # idle workers are sent their way out; no task is left to wait for
                pool.shutdown(wait=False, cancel_futures=True)
            end_processes(workers, WORKER_EXIT_S, terminated=abandoned)
        if notes is not None:
            shutil.rmtree(notes, ignore_errors=True)

"""Executors: where ground-truth evaluations and measurements run.

A `Task` is plain data (the architecture's JSON, a registered component's name and options, and the plugin
selection of the search's toolkit), so it travels to a worker process or a Ray node unchanged; a worker
rebuilds the same toolkit from the selection, once per process, and the component from it (`run_task`). A
task run in the driver's process uses the search's own toolkit (`Executor.toolkit`, set by `make_executor`).
Results come back in task order whatever order they finish in, and `on_result` is called as each one
finishes, so the driver stores every result in its own transaction the moment it exists (the driver keeps
the single run store; workers never write to it).

Measurements (`exclusive=True`) run one at a time and never beside training, since a latency measured while
another process trains on the same cores measures the contention, not the network.
"""

from __future__ import annotations

import json
import os
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ConfigDict, Field

from .. import validation
from ..caches import register_cache
from ..errors import ComponentError, ConfigError, NAToolkitError, raise_interrupt
from ..store.faultpoint import kill_point
from ..validation import check_inherited_init, validate_options
from .diagnostics import warn_worker_died, worker_exit
from .task_answer import check_answer
from .task_arch import ATTACHED, task_architecture
from .worker_processes import (
    WORKER_EXIT_S,
    WORKER_WATCH_S,
    end_processes,
    init_worker,
    signal_processes,
    starting_workers,
)

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor
    from multiprocessing.process import BaseProcess

    from ..evaluation.inherit import ParentWeights
    from ..toolkit import Toolkit

TASK_KINDS = ("evaluate", "measure")


@dataclass(frozen=True)
class Task:
    """One unit of work: evaluate `arch_json` with evaluator `component`, or measure it with time model
    `component` at `batch_size`. `gpus` is the GPU share a cluster scheduler should reserve. `selection` is
    the plugin selection (`PluginSelection.to_json()`) of the toolkit that names `component`: a worker
    process rebuilds that toolkit from it (None: the default toolkit, every installed plugin)."""

    kind: str
    arch_json: dict[str, Any]
    component: str
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 1
    gpus: float = 0.0
    #: evaluate: also return the trained weights, from evaluators that offer `evaluate_with_weights`
    keep_weights: bool = False
    selection: dict[str, Any] | None = None
    #: evaluate: start from a parent's weights mapped through the moves where they preserve the function
    #: (`na_toolkit.evaluation.inherit`; None: train from scratch, as always)
    inherit: ParentWeights | None = None
    #: custom cluster resources the task needs, e.g. {"device:jetson-orin-nano": 1} routes a measurement to
    #: the node that advertises that device (executors without such resources run it here)
    resources: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind must be one of {TASK_KINDS}, got {self.kind!r}")

    def __getstate__(self) -> dict[str, Any]:  # what travels: the fields, not the network task_for attached
        return {k: v for k, v in self.__dict__.items() if k != ATTACHED}


@dataclass(frozen=True)
class TaskResult:
    """What a task gave: `value` (an EvaluationResult or TimeEstimate as a dict) or `error` (one line, with
    the traceback in `details`)."""

    value: dict[str, Any] | None
    error: str | None = None
    elapsed_s: float = 0.0
    worker: str = ""
    details: str = ""
    #: the trained weights (a state dict of tensors) when the task asked for them and the evaluator gives them
    weights: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# ---- running one task (in whatever process) ------------------------------------------------------------
@lru_cache(maxsize=4)
def _worker_toolkit(selection_json: str | None) -> Toolkit:
    """The toolkit of a plugin selection, built once per process (a worker serves many tasks)."""
    from ..plugins import load_toolkit, load_toolkit_from_selection

    if selection_json is None:
        return load_toolkit()
    from ..toolkit import PluginSelection

    return load_toolkit_from_selection(PluginSelection.from_json(json.loads(selection_json)))


register_cache("search.executors.worker_toolkit", _worker_toolkit.cache_clear)

#: toolkit -> (kind, name, options) -> component instance; an entry goes with its toolkit
_components: weakref.WeakKeyDictionary[Toolkit, dict[tuple[str, str, str], Any]] = weakref.WeakKeyDictionary()
register_cache("search.executors.components", _components.clear)


def _component(toolkit: Toolkit, kind: str, name: str, options: dict[str, Any]) -> Any:
    """The component instance for (kind, name, options) of `toolkit`, built once per process: an evaluator
    keeps its loaded dataset, a measuring time model its sessions."""
    built = _components.setdefault(toolkit, {})
    key = (kind, name, json.dumps(options, sort_keys=True, default=str))
    comp = built.get(key)
    if comp is None:
        if kind == "evaluate":
            from ..evaluation import make_evaluator

            comp = make_evaluator(name, options, toolkit)
        else:
            from ..timemodels import get_time_model

            comp = get_time_model(name, toolkit, **options)
        built[key] = comp
    return comp


def run_task(task: Task, toolkit: Toolkit | None = None) -> TaskResult:
    """Run one task here, with `toolkit` (the search's, in its own process) or else the toolkit of the task's
    plugin selection (a worker). Failures of the candidate (a network the runtime rejects, a diverging
    training) come back as `TaskResult.error`, so one bad candidate never ends a search; a toolkit that
    cannot be rebuilt here is an error of the search and is raised."""
    if toolkit is None:
        selection = json.dumps(task.selection, sort_keys=True) if task.selection is not None else None
        toolkit = _worker_toolkit(selection)
    started = time.perf_counter()
    worker = f"{os.uname().nodename}:{os.getpid()}"
    kill_point("task")  # the fault tests' kills of a worker mid-task (store/faultpoint.py); nothing unset
    try:
        arch = task_architecture(task, toolkit.layer_types)  # in this process: the network itself, unrebuilt
        comp = _component(toolkit, task.kind, task.component, task.options)
        weights = None
        if task.kind == "evaluate":
            # the trained weights, so that exports are trained networks, from evaluators that offer them
            with_weights = getattr(comp, "evaluate_with_weights", None) if task.keep_weights else None
            if task.inherit is not None:  # from the parent's weights where the moves preserve them
                from ..evaluation.inherit import evaluate_with_parent

                result, weights = evaluate_with_parent(comp, arch, task.inherit, toolkit.moves)
            elif with_weights is not None:
                result, weights = with_weights(arch)
            else:
                result = comp.evaluate(arch)
        else:
            result = comp.estimate(arch, task.batch_size)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # the candidate failed, not the search: record it
        raise_interrupt(exc)  # unless it is a Ctrl-C in the driver's process that the evaluator's code wrapped
        return TaskResult(
            None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started, worker, traceback.format_exc()
        )
    check_answer(task, toolkit, arch, result)  # what the component returned breaks its contract: the search stops
    value = result.to_json() if task.kind == "evaluate" else asdict(result)
    return TaskResult(value, None, time.perf_counter() - started, worker, weights=weights)


# ---- executors -----------------------------------------------------------------------------------------
OnResult = Callable[[int, TaskResult], None]


class Executor:
    """Base class of executors: tasks are submitted (`submit(task) -> ticket`) and collected as they finish
    (`wait(tickets)`), so the loop keeps up to `max_in_flight` evaluations running without a round barrier;
    `run(tasks, on_result, exclusive)` is the batch form on top (results in task order, `on_result(index,
    result)` as each finishes). `exclusive` tasks (measurements) run one at a time with nothing beside them:
    the executor first lets every running task finish (`drain`), keeping their results for `wait`.

    A subclass overrides `_start(ticket, task)` (begin the task), `_collect(block)` (move finished tasks
    into `self._finished`, waiting for one when `block`) and `_running()`. The base class runs the tasks here,
    in this process, one at a time in submission order as `wait` asks for one, so that each result reaches
    the loop (and its store) the moment it exists: a search killed mid-round keeps what finished."""

    name: ClassVar[str] = ""
    #: its `__init__(**options)` takes any keyword for its subclasses: one without an `__init__` of its own
    #: declares no options (validation.derived_options_model), and the options it is given are checked
    _generic_options_init: ClassVar[bool] = True
    description: ClassVar[str] = ""
    #: the toolkit of the search this executor serves (set by `make_executor`): tasks run in this process use
    #: it; a worker process rebuilds it from the task's plugin selection
    toolkit: Toolkit | None = None

    def __init__(self, **options: Any):
        if options:
            check_inherited_init(self, Executor, options, "executor")
        self.options = options
        self._tickets = 0
        self._finished: dict[int, TaskResult] = {}
        self._taken: set[int] = set()  # tickets a wait has returned
        self._queued: deque[tuple[int, Task]] = deque()  # submitted, run by `_collect(block=True)` in turn

    # ---- what a subclass overrides ---------------------------------------------------------------------
    def _start(self, ticket: int, task: Task) -> None:
        self._queued.append((ticket, task))

    def _collect(self, block: bool) -> None:
        """Move finished tasks into `self._finished`; when `block`, wait until at least one has finished."""
        if block and self._queued:
            ticket, task = self._queued.popleft()
            self._finished[ticket] = run_task(task, self.toolkit)

    def _running(self) -> int:
        """How many submitted tasks have not finished yet."""
        return len(self._queued)

    def _run_exclusive(self, task: Task) -> TaskResult:
        """Run one exclusive task (a measurement) with nothing else running."""
        return run_task(task, self.toolkit)

    def _drains_for(self, task: Task) -> bool:
        """Whether the exclusive `task` must first wait for every running task to finish (not run beside them)."""
        return True

    # ---- the API the loop uses -------------------------------------------------------------------------
    def submit(self, task: Task) -> int:
        """Start `task`; returns its ticket for `wait`."""
        ticket = self._tickets
        self._tickets += 1
        self._start(ticket, task)
        return ticket

    def wait(self, tickets: Sequence[int]) -> list[tuple[int, TaskResult]]:
        """Block until at least one of `tickets` has finished; returns every finished one of them (in ticket
        order) and forgets them."""
        wanted = set(tickets)
        while True:
            self._collect(block=False)
            ready = sorted(t for t in wanted if t in self._finished)
            if ready:
                self._taken.update(ready)
                return [(t, self._finished.pop(t)) for t in ready]
            if not self._running():
                raise self._lost(sorted(wanted))
            self._collect(block=True)

    def _lost(self, tickets: list[int]) -> Exception:
        """The error of `wait` for `tickets` that are neither finished nor running: the caller's (a ValueError)
        for a ticket never submitted or already taken; else the executor's (a ComponentError): a subclass that
        starts tasks elsewhere and does not count them in `_running()`, or never moves them into `_finished`."""
        misused = [t for t in tickets if not 0 <= t < self._tickets or t in self._taken]
        if misused:
            return ValueError(f"executor {self.name!r}: tickets {misused} were never submitted or already taken")
        tk = self.toolkit
        plugin = tk.executors.plugin_of(self.name) if tk is not None and self.name in tk.executors else "?"
        return ComponentError(
            f"executor {self.name!r} of plugin {plugin}: tickets {tickets} were submitted but are neither finished "
            "nor running (_running() says 0): an executor that starts tasks elsewhere overrides _running() to "
            "count them, and _collect(block) to move each finished one into self._finished"
        )

    def drain(self) -> None:
        """Wait until no submitted task is still running (their results stay for `wait`)."""
        while self._running():
            self._collect(block=True)

    def run(
        self, tasks: Sequence[Task], on_result: OnResult | None = None, exclusive: bool = False
    ) -> list[TaskResult]:
        results: dict[int, TaskResult] = {}
        if exclusive:
            for i, task in enumerate(tasks):
                if self._drains_for(task):
                    self.drain()
                results[i] = self._run_exclusive(task)
                if on_result is not None:
                    on_result(i, results[i])
            return [results[i] for i in range(len(tasks))]
        index = {self.submit(task): i for i, task in enumerate(tasks)}
        pending = list(index)
        while pending:
            for ticket, result in self.wait(pending):
                pending.remove(ticket)
                results[index[ticket]] = result
                if on_result is not None:
                    on_result(index[ticket], result)
        return [results[i] for i in range(len(tasks))]

    def stats(self) -> dict[str, Any]:
        """The executor's own figures, kept in the run store (artifact `executor`): tasks submitted so far,
        and whatever a subclass adds (retries, a simulated clock)."""
        return {"executor": self.name, "tasks": self._tickets}

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalExecutor(Executor):
    """A process pool on this machine; with one worker, tasks run in this process (no start-up cost).

    Options: workers (default 1), threads_per_worker (default: cores / workers), max_retries (a task whose
    worker died is resubmitted to a fresh pool this many times, default 1)."""

    name = "local"
    description = "process pool on this machine (one worker: in-process); results in task order"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        workers: int = Field(1, ge=1, description="worker processes (1: tasks run in this process)")
        threads_per_worker: int | None = Field(
            None, ge=1, description="CPU threads per worker (default: cores/workers)"
        )
        max_retries: int = Field(1, ge=0, description="resubmissions of a task whose worker died")

    def __init__(self, workers: int = 1, threads_per_worker: int | None = None, max_retries: int = 1):
        validate_options(
            self.Options,
            {"workers": workers, "threads_per_worker": threads_per_worker, "max_retries": max_retries},
            "executor.options",
        )
        super().__init__(workers=workers, threads_per_worker=threads_per_worker, max_retries=max_retries)
        self.workers = workers
        self.threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
        self.max_retries = max_retries
        self._pool: ProcessPoolExecutor | None = None
        #: the worker processes of the pool (`_submit` sees them start) and of pools discarded before it
        self._workers: list[BaseProcess] = []
        self._retired: list[BaseProcess] = []
        self.retries = 0  # tasks resubmitted because their worker died
        #: ticket -> (future, task, attempts so far) of each task in the pool
        self._futures: dict[int, tuple[Future[TaskResult], Task, int]] = {}

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a forked copy of a process that already runs torch threads can deadlock
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(self.threads, os.getpid()),
            )
        return self._pool

    def _start(self, ticket: int, task: Task, attempts: int = 0) -> None:
        if self.workers == 1:
            super()._start(ticket, task)
            return
        if task.selection is not None and not task.selection.get("portable", True):
            raise ConfigError(
                f"executor 'local' with workers = {self.workers} runs each task in a worker process, which "
                "rebuilds the toolkit from its plugins, and this toolkit was built with extra plugin objects "
                "that are not importable modules: pass the plugin's module to load_toolkit(extra_plugins=...), "
                "install it with an entry point, or set workers = 1 (tasks then run in this process)"
            )
        self._futures[ticket] = (self._submit(task), task, attempts)

    def _submit(self, task: Task) -> Future[TaskResult]:
        """Submit `task` to the pool, noting the worker processes the submit starts (a pool starts its
        workers as its submits need them, in the submitting thread): `close` ends them, and a broken pool's
        dead one says how it died."""
        return self._submit_tracked(run_task, task)

    def _submit_tracked(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
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
            if done or not block:
                break
            self._wake_on_dead_worker()
        retry: list[tuple[int, Task, int]] = []
        for fut in done:
            ticket = futures[fut]
            _, task, attempts = self._futures.pop(ticket)
            try:
                self._finished[ticket] = fut.result()
            except BrokenProcessPool:  # a worker died (killed, out of memory): its tasks are retried on a fresh pool
                how = worker_exit(self._workers)
                if attempts + 1 > self.max_retries:
                    died = f"worker process died {attempts + 1} times running this task (last: {how})"
                    self._finished[ticket] = TaskResult(None, died)
                else:
                    retry.append((ticket, task, attempts + 1))
                    self.retries += 1
        if retry:
            warn_worker_died(how, len(retry), max(a for _, _, a in retry))
            self._discard_pool()
            for ticket, task, attempts in sorted(retry, key=lambda r: r[0]):
                self._start(ticket, task, attempts)

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
        return {**super().stats(), "workers": self.workers, "retries": self.retries}

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
        if pool is None and not workers:
            return
        if abandoned:
            signal_processes(workers, "terminate")
        if pool is not None:  # idle workers are sent their way out; no task is left to wait for
            pool.shutdown(wait=False, cancel_futures=True)
        end_processes(workers, WORKER_EXIT_S, terminated=abandoned)


def make_executor(name: str, options: dict[str, Any], toolkit: Toolkit) -> Executor:
    """An executor of `toolkit`'s registry, serving that toolkit (tasks it runs in this process use it); bad
    options are a ConfigError naming the executor."""
    cls = toolkit.executors.get(name)
    try:
        executor: Executor = cls(**options)
    except NAToolkitError:
        raise
    except TypeError as exc:
        raise ConfigError(f"executor {name!r}: bad options {sorted(options)}: {exc}") from None
    executor.toolkit = toolkit
    return executor

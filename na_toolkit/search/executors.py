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
import sys
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ConfigDict, Field

from .. import validation
from ..caches import register_cache
from ..errors import ConfigError, NAToolkitError
from ..validation import validate_options

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

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

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind must be one of {TASK_KINDS}, got {self.kind!r}")


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
    from ..ir.architecture import Architecture

    if toolkit is None:
        selection = json.dumps(task.selection, sort_keys=True) if task.selection is not None else None
        toolkit = _worker_toolkit(selection)
    started = time.perf_counter()
    worker = f"{os.uname().nodename}:{os.getpid()}"
    try:
        arch = Architecture.from_json(task.arch_json, layer_types=toolkit.layer_types)
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
            value = result.to_json()
        else:
            value = asdict(comp.estimate(arch, task.batch_size))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # the candidate failed, not the search: record it
        return TaskResult(
            None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started, worker, traceback.format_exc()
        )
    return TaskResult(value, None, time.perf_counter() - started, worker, weights=weights)


def _init_worker(threads: int, driver_pid: int | None = None) -> None:
    # Each worker computes on its share of the cores instead of every worker using all of them. Set
    # through the environment, read when torch / the BLAS load, so workers that never need torch skip it.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if driver_pid is not None:
        _exit_with_driver(driver_pid)


def _exit_with_driver(driver_pid: int, poll_s: float = 1.0) -> None:
    """End this worker when the driver that started it is gone: a driver killed with SIGKILL cannot shut
    its pool down, and its workers (hundreds of MB each, mid-training) would otherwise run on for minutes.
    A worker whose parent dies is re-parented, so its parent pid changes: a daemon thread polls for that."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != driver_pid:
                os._exit(1)

    threading.Thread(target=watch, name="na-toolkit-driver-watch", daemon=True).start()


@contextmanager
def _workers_skip_main() -> Iterator[None]:
    """Start spawned workers without re-running the parent's `__main__`.

    A spawned worker normally re-imports the parent's main script so that functions defined there can be
    unpickled; a script that calls `run_search` without an `if __name__ == "__main__":` guard would then
    start a search in every worker. Tasks only ever name functions of this module, so workers need nothing
    from `__main__`: hide its origin from multiprocessing while the workers start."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    try:
        main.__dict__.pop("__file__", None)
        main.__spec__ = None
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


# ---- executors -----------------------------------------------------------------------------------------
OnResult = Callable[[int, TaskResult], None]


class Executor:
    """Base class of executors. `run(tasks, on_result, exclusive)` returns the results in task order and
    calls `on_result(index, result)` as each finishes; `exclusive` tasks (measurements) must run one at a
    time with nothing beside them. The base class runs every task here, one after the other."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: the toolkit of the search this executor serves (set by `make_executor`): tasks run in this process use
    #: it; a worker process rebuilds it from the task's plugin selection
    toolkit: Toolkit | None = None

    def __init__(self, **options: Any):
        self.options = options

    def run(
        self, tasks: Sequence[Task], on_result: OnResult | None = None, exclusive: bool = False
    ) -> list[TaskResult]:
        return _run_here(tasks, on_result, self.toolkit)

    def close(self) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _run_here(tasks: Sequence[Task], on_result: OnResult | None, toolkit: Toolkit | None) -> list[TaskResult]:
    out = []
    for i, task in enumerate(tasks):
        result = run_task(task, toolkit)
        if on_result is not None:
            on_result(i, result)
        out.append(result)
    return out


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

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a forked copy of a process that already runs torch threads can deadlock
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.threads, os.getpid()),
            )
        return self._pool

    def run(
        self, tasks: Sequence[Task], on_result: OnResult | None = None, exclusive: bool = False
    ) -> list[TaskResult]:
        if exclusive or self.workers == 1 or len(tasks) <= 1:
            return _run_here(tasks, on_result, self.toolkit)
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        results: dict[int, TaskResult] = {}
        attempts = dict.fromkeys(range(len(tasks)), 0)
        todo = list(range(len(tasks)))
        while todo:
            pool = self._get_pool()
            with _workers_skip_main():  # the workers start on the first submit
                futures = {pool.submit(run_task, tasks[i]): i for i in todo}
            todo = []
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    # a worker died (killed, out of memory): that task is retried on a fresh pool
                    attempts[i] += 1
                    if attempts[i] > self.max_retries:
                        result = TaskResult(None, f"worker process died {attempts[i]} times running this task")
                    else:
                        todo.append(i)
                        continue
                results[i] = result
                if on_result is not None:
                    on_result(i, result)
            if todo:
                self._discard_pool()
        return [results[i] for i in range(len(tasks))]

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


RAY_MISSING = "executor 'ray' needs Ray, which is not installed here: pip install na-toolkit[ray]"


class RayExecutor(Executor):
    """Tasks on a Ray cluster (extra `ray`): each task reserves `cpus_per_task` CPUs and `gpus_per_task`
    GPUs (a task's own `gpus` wins when set), and Ray reruns it when its worker is lost (`max_retries`).
    The driver keeps the single run store. Options: address (default: start or join a local Ray),
    cpus_per_task, gpus_per_task, max_retries."""

    name = "ray"
    description = "Ray cluster: GPU resources per task, retries on worker loss (pip install na-toolkit[ray])"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        address: str | None = Field(None, description="Ray cluster address (default: start or join a local Ray)")
        cpus_per_task: float = Field(1.0, ge=0, description="CPUs each task reserves")
        gpus_per_task: float = Field(0.0, ge=0, description="GPUs each task reserves (a task's own `gpus` wins)")
        max_retries: int = Field(3, ge=0, description="reruns of a task whose worker was lost")

    def __init__(
        self, address: str | None = None, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0, max_retries: int = 3
    ):
        try:
            import ray
        except ImportError:
            raise ConfigError(RAY_MISSING) from None
        super().__init__(
            address=address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task, max_retries=max_retries
        )
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self.max_retries = max_retries
        self._remote = ray.remote(run_task)

    def run(
        self, tasks: Sequence[Task], on_result: OnResult | None = None, exclusive: bool = False
    ) -> list[TaskResult]:
        ray = self._ray
        results: dict[int, TaskResult] = {}

        def submit(i: int) -> Any:
            t = tasks[i]
            return self._remote.options(
                num_cpus=self.cpus_per_task, num_gpus=t.gpus or self.gpus_per_task, max_retries=self.max_retries
            ).remote(t)

        def collect(ref: Any, i: int) -> None:
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # retries exhausted: the task, not the search, failed
                result = TaskResult(None, f"Ray task failed: {type(exc).__name__}: {exc}")
            results[i] = result
            if on_result is not None:
                on_result(i, result)

        if exclusive:  # one measurement at a time
            for i in range(len(tasks)):
                collect(submit(i), i)
        else:
            pending = {submit(i): i for i in range(len(tasks))}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    collect(ref, pending.pop(ref))
        return [results[i] for i in range(len(tasks))]


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

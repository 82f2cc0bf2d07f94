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
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from ..caches import register_cache
from ..errors import ComponentError, ConfigError, NAToolkitError, blame, raise_interrupt
from ..store.faultpoint import kill_point
from ..validation import check_inherited_init
from .task_answer import check_answer
from .task_arch import ATTACHED, task_architecture

if TYPE_CHECKING:
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
    value = result.to_json() if task.kind == "evaluate" else {**asdict(result), **_machine_load()}
    return TaskResult(value, None, time.perf_counter() - started, worker, weights=weights)


def _machine_load() -> dict[str, Any]:
    """The load of the machine a measurement ran on, stored with it: {load_average_1min, cores} (the scorer
    warns of measurements taken while other processes wanted more cores than there are); {} where unknown."""
    try:
        return {"load_average_1min": round(os.getloadavg()[0], 2), "cores": os.cpu_count()}
    except OSError:  # not every platform has it
        return {}


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

    def check_toolkit(self, toolkit: Toolkit) -> None:
        """Refuse (a ConfigError) a toolkit this executor's tasks cannot run with, when the search's components
        are built, before a run folder exists (`make_executor` calls it). The base runs every task in this
        process, with the toolkit itself: any toolkit."""

    # ---- the API the loop uses -------------------------------------------------------------------------
    def submit(self, task: Task) -> int:
        """Start `task`; returns its ticket for `wait`."""
        ticket = self._tickets
        self._tickets += 1
        with self.blame("starting a task"):
            self._start(ticket, task)
        return ticket

    def wait(self, tickets: Sequence[int]) -> list[tuple[int, TaskResult]]:
        """Block until at least one of `tickets` has finished; returns every finished one of them (in ticket
        order) and forgets them."""
        wanted = set(tickets)
        while True:
            with self.blame("collecting results"):
                self._collect(block=False)
            ready = sorted(t for t in wanted if t in self._finished)
            if ready:
                self._taken.update(ready)
                return [(t, self._finished.pop(t)) for t in ready]
            if not self._running():
                raise self._lost(sorted(wanted))
            with self.blame("collecting results"):
                self._collect(block=True)

    def blame(self, doing: str) -> AbstractContextManager[None]:
        """Run the executor's own code: an exception of it (not a task's: `run_task` records those) becomes one
        ComponentError naming the executor and its plugin (`errors.blame`)."""
        return blame(f"executor {self.name!r}", self._plugin(), doing)

    def _plugin(self) -> str:
        tk = self.toolkit
        return tk.executors.plugin_of(self.name) if tk is not None and self.name in tk.executors else "?"

    def _lost(self, tickets: list[int]) -> Exception:
        """The error of `wait` for `tickets` that are neither finished nor running: the caller's (a ValueError)
        for a ticket never submitted or already taken; else the executor's (a ComponentError): a subclass that
        starts tasks elsewhere and does not count them in `_running()`, or never moves them into `_finished`."""
        misused = [t for t in tickets if not 0 <= t < self._tickets or t in self._taken]
        if misused:
            return ValueError(f"executor {self.name!r}: tickets {misused} were never submitted or already taken")
        return ComponentError(
            f"executor {self.name!r} of plugin {self._plugin()}: tickets {tickets} were submitted but are neither "
            "finished nor running (_running() says 0): an executor that starts tasks elsewhere overrides _running() to "
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

    def stats_document(self) -> dict[str, Any]:
        """`stats()` as the run store keeps it (JSON): a stats() that fails or is not JSON is a ComponentError
        naming the executor, or, while another error already ends the search, a `stats_error` entry beside
        what is known (that error is the one to tell)."""
        ending = sys.exc_info()[1]  # called while an exception propagates (the loop's `finally`)
        try:
            with self.blame("giving its stats()"):
                doc = self.stats()
            try:
                json.dumps(doc, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ComponentError(
                    f"executor {self.name!r} of plugin {self._plugin()}: stats() is not JSON ({exc}); the run "
                    "store keeps it as JSON: give plain numbers, strings, lists and dicts"
                ) from None
            return doc
        except ComponentError as exc:
            if ending is None:
                raise
            return {"executor": self.name, "tasks": self._tickets, "stats_error": str(exc)}

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
    executor.check_toolkit(toolkit)
    return executor


def __getattr__(name: str) -> Any:
    """`LocalExecutor`, where it was defined before it had a module of its own (executor_local.py)."""
    if name == "LocalExecutor":
        from .executor_local import LocalExecutor

        return LocalExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

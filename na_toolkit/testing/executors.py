"""`check_executor`: the executor contract (docs/plugin_hooks.md, `na_register_executors`) as one call.

An executor runs independent tasks (evaluations, measurements) and hands their results back: every ticket
`submit` gave comes back from `wait` exactly once, with the result `run_task` gives for its task here (an
executor moves results, it does not change them), `_running()` counts what is still in flight, `run` answers
in task order, an exclusive task runs, `stats()` is JSON with the executor's name and its task count, and
`close()` may be called twice. A hang (a `_collect(block=True)` that never moves a result) fails after
`timeout_s` instead of hanging the test.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NAToolkitError, describe
from ..search.executors import Executor, Task, TaskResult, make_executor, run_task
from ._common import expect, fail, resolve_options_class, toolkit_or_default

if TYPE_CHECKING:  # pragma: no cover
    from ..toolkit import Toolkit


@dataclass(frozen=True)
class ExecutorResult:
    """What `check_executor` found (every check passed): the results by task, and `stats()` at the end."""

    name: str
    results: tuple[TaskResult, ...]
    stats: dict[str, Any]


def example_tasks(toolkit: Toolkit, count: int = 4, seed_network: str = "simple-cnn") -> list[Task]:
    """`count` evaluations of `seed_network` by the `synthetic` evaluator, each of another `seed` (so each
    has its own accuracy: a result handed back under another ticket shows)."""
    arch_json = toolkit.seed(seed_network).to_json()
    selection = toolkit.selection.to_json()
    return [Task("evaluate", arch_json, "synthetic", {"seed": i}, selection=selection) for i in range(count)]


def check_executor(
    executor: type[Executor] | str,
    toolkit: Toolkit | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    tasks: int = 4,
    timeout_s: float = 60.0,
) -> ExecutorResult:
    """Check an executor class against its contract; raise AssertionError (`ConformanceError`) naming the
    executor and what broke. executor: the class, or its name in `toolkit.executors`; options: its options
    (a pool's `workers`); tasks: how many evaluations to run through it; timeout_s: how long the whole run
    may take before the check says the executor hangs."""
    tk = toolkit_or_default(toolkit)
    name, _cls, label, options = resolve_options_class(tk.executors, executor, "executor", Executor, options)
    todo = example_tasks(tk, tasks)
    want = [run_task(t, tk) for t in todo]
    try:  # in one thread of its own, construction to close (an executor may keep per-thread state)
        run = _within(timeout_s, label, lambda: _exercise(make_executor(name, options, tk), todo, label))
    except NAToolkitError as exc:
        fail(label, f"raised {describe(exc)}")
    for i, (g, w) in enumerate(zip(run.got, want)):
        expect(
            (g.value, g.error) == (w.value, w.error),
            label,
            f"task {i} came back otherwise than run_task gives it ({_difference(g, w)}): results must reach "
            "the ticket of their own task, unchanged",
        )
    expect(run.running == 0, label, f"_running() is {run.running} after every task came back, expected 0")
    expect(run.taken_refused, label, "wait() of a ticket already taken returned (a ticket comes back once: raise)")
    expect(
        [(r.value, r.error) for r in run.batch] == [(w.value, w.error) for w in want],
        label,
        "run() does not answer in task order with run_task's results",
    )
    expect(sorted(run.answered) == list(range(tasks)), label, f"run() called on_result for {sorted(run.answered)}")
    expect(run.alone.value == want[0].value, label, "an exclusive task came back otherwise than run_task gives it")
    try:
        stats = json.loads(json.dumps(run.stats))
    except (TypeError, ValueError) as exc:
        fail(label, f"stats() is not JSON ({exc}): the run store keeps it as JSON")
    expect(stats.get("executor") == name, label, f"stats()['executor'] is {stats.get('executor')!r}")
    expect(
        stats.get("tasks") == 2 * tasks,
        label,
        f"stats()['tasks'] is {stats.get('tasks')!r}, expected {2 * tasks} (the tasks submitted so far)",
    )
    return ExecutorResult(name, tuple(run.got), stats)


@dataclass
class _Run:
    """What one executor did in `_exercise`."""

    got: list[TaskResult]
    running: int
    taken_refused: bool
    batch: list[TaskResult]
    answered: list[int]
    alone: TaskResult
    stats: dict[str, Any]


def _exercise(ex: Executor, todo: list[Task], label: str) -> _Run:
    """Submit and wait for `todo`, wait again for a taken ticket, `run` them, run one exclusive, read the
    stats, and close the executor twice (a search closes it however it ends)."""
    try:
        got = _submit_and_wait(ex, todo, label)
        running = ex._running()
        try:
            ex.wait([0])
            taken_refused = False
        except ValueError:
            taken_refused = True
        answered: list[int] = []
        batch = ex.run(todo, on_result=lambda i, r: answered.append(i))
        alone = ex.run(todo[:1], exclusive=True)[0]
        stats = ex.stats()
    finally:
        ex.close()
    ex.close()
    return _Run(got, running, taken_refused, batch, answered, alone, stats)


def _difference(got: TaskResult, want: TaskResult) -> str:
    """Where two results differ, in a few words."""
    if (got.error is None) != (want.error is None):
        return f"error {got.error!r}, expected {want.error!r}"
    a, b = got.value or {}, want.value or {}
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return f"differs in {', '.join(keys)}" if keys else f"error {got.error!r}, expected {want.error!r}"


def _submit_and_wait(ex: Executor, todo: list[Task], label: str) -> list[TaskResult]:
    tickets = [ex.submit(t) for t in todo]
    expect(len(set(tickets)) == len(tickets), label, f"submit() gave the tickets {tickets}: one of its own per task")
    got: dict[int, TaskResult] = {}
    while len(got) < len(tickets):
        for ticket, result in ex.wait([t for t in tickets if t not in got]):
            expect(ticket not in got, label, f"ticket {ticket} came back twice")
            expect(isinstance(result, TaskResult), label, f"wait() gave {type(result).__name__}, not a TaskResult")
            got[ticket] = result
    return [got[t] for t in tickets]


def _within(timeout_s: float, label: str, fn: Any) -> Any:
    """`fn()` run in a thread, failing (not hanging) when it takes more than `timeout_s`."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        fail(
            label,
            f"the tasks did not all come back within {timeout_s:g} s: does _collect(block=True) move each "
            "finished task into self._finished, and _running() count what is still running?",
        )
    if "error" in out:
        raise out["error"]
    return out["value"]

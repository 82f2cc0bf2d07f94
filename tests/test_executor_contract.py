"""The executor conformance check (`na_toolkit.testing.check_executor`, docs/testing.md): the built-in
executors pass it; an executor that hands a result to another task's ticket, one that does not count its
running tasks, one that never collects, and one that swallows unknown options are each named with what
broke. Before, the second stopped a search with a bare ValueError saying the tickets "were never
submitted", and the third hung it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import na_toolkit
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.executors import Executor, run_task
from na_toolkit.testing import ConformanceError, check_executor


class _Threads(Executor):
    """Tasks on a thread pool; keeps the contract (the broken ones below change one thing each)."""

    name = "threads"
    description = "tasks on two threads of this process"

    def __init__(self):
        super().__init__()
        self.pool = ThreadPoolExecutor(2)
        self.futures = {}

    def _start(self, ticket, task):
        self.futures[ticket] = self.pool.submit(run_task, task, self.toolkit)

    def _collect(self, block):
        for ticket, future in list(self.futures.items()):
            if block or future.done():
                self._finished[ticket] = future.result()
                del self.futures[ticket]
                block = False

    def _running(self):
        return len(self.futures)

    def close(self):
        self.pool.shutdown()


class _Uncounted(_Threads):
    name = "uncounted"

    def _running(self):
        return 0  # forgot: the tasks run on the pool


class _NeverCollects(_Threads):
    name = "never-collects"
    #: set by the test once the check has failed: the executor then collects, so the check's thread ends
    #: rather than spinning through the rest of the session
    release = threading.Event()

    def _collect(self, block):
        if self.release.wait(0.05):
            super()._collect(block)


class _Swaps(Executor):
    name = "swaps"
    description = "hands each result to the neighbouring ticket"

    def _start(self, ticket, task):
        self._finished[ticket ^ 1] = run_task(task, self.toolkit)


class _Stale(Executor):
    name = "stale"
    description = "hands each task the result of the task before it (the first its own)"

    def __init__(self, **options):
        super().__init__(**options)
        self._last = None

    def _start(self, ticket, task):
        result = run_task(task, self.toolkit)
        self._finished[ticket] = self._last or result
        self._last = result


class _Buggy(Executor):
    name = "buggy"
    description = "its _collect divides by zero"

    def _collect(self, block):
        return 1 / 0


class _SetStats(Executor):
    name = "set-stats"
    description = "stats() holds a set"

    def stats(self):
        return {**super().stats(), "seen": {1, 2}}


class _Swallows(_Threads):
    name = "swallows"

    def __init__(self, **options):  # takes any option and ignores it
        super().__init__()


@na_toolkit.hookimpl
def na_register_executors(registry):
    for cls in (_Threads, _Uncounted, _NeverCollects, _Swaps, _Stale, _Buggy, _SetStats, _Swallows):
        registry.add(cls)


@pytest.fixture(scope="module")
def tk():
    import sys

    return load_toolkit(entry_points=False, extra_plugins=(sys.modules[__name__],))


@pytest.mark.parametrize("name, options", [("local", {}), ("simulated", {"workers": 3}), ("threads", {})])
def test_the_built_in_executors_and_a_thread_pool_pass(tk, name, options):
    result = check_executor(name, tk, options=options)
    assert len(result.results) == 4 and all(r.ok for r in result.results)
    assert len({r.value["valid_accuracy"] for r in result.results}) == 4  # four tasks, four answers
    assert result.stats["executor"] == name and result.stats["tasks"] == 8


def test_options_the_check_is_given_that_the_executor_refuses_are_named_as_the_callers(tk):
    # before: "refusing an unknown option, the error does not name it: ... options.bogus: unknown key ... (and 1
    # more problem)", the check's own probe hidden behind the caller's mistake
    with pytest.raises(ConformanceError, match=r"executor 'threads': refuses the options the check was given "
                       r"\(executor 'threads' options.bogus: unknown key.*\); give options it takes"):  # fmt: skip
        check_executor("threads", tk, options={"bogus": 1})


@pytest.mark.parametrize(
    "name, message",
    [
        ("swaps", r"task 0 came back otherwise than run_task gives it \(differs in seed, valid_accuracy\)"),
        ("uncounted", r"tickets \[.*\] were submitted but are neither finished nor running \(_running\(\) says 0\)"),
        ("never-collects", r"did not all come back within 1 s: does _collect\(block=True\) move each finished"),
        ("swallows", "accepts the unknown option 'no_such_option_'"),
    ],
)
def test_a_broken_executor_is_named_with_what_broke(tk, name, message):
    _NeverCollects.release.clear()
    try:
        with pytest.raises(ConformanceError, match=f"executor {name!r}: .*{message}"):
            check_executor(name, tk, timeout_s=1)
    finally:
        _NeverCollects.release.set()


def _doc(tmp_path, executor: str) -> dict:
    return {
        "name": executor,
        "seed_network": "simple-cnn",
        "evaluations": 4,
        "output": str(tmp_path),
        "search": {"per_round": 2, "moves": ["scale"]},
        "strategy": {"name": "random"},
        "evaluator": {"name": "synthetic"},
        "executor": {"name": executor},
        "devices": {"cpu": {"time_model": {"name": "roofline", "options": {"device": "x86-cpu"}}}},
    }


@pytest.mark.parametrize(
    "name, message",
    [
        ("buggy", "failed collecting results: ZeroDivisionError: division by zero"),
        ("set-stats", r": stats\(\) is not JSON \(Object of type set is not JSON serializable\)"),
    ],
)
def test_an_executors_own_bug_is_one_error_naming_it(tk, tmp_path, name, message):
    # before: a traceback (its _collect's ZeroDivisionError), or "cannot store a set in a checkpoint" naming
    # no component, after every evaluation was paid for
    from na_toolkit.errors import ComponentError
    from na_toolkit.search import run_search

    with pytest.raises(ComponentError, match=f"executor {name!r} of plugin .*{message}"):
        run_search(_doc(tmp_path, name), toolkit=tk, progress=False)


def test_a_search_stops_at_a_result_handed_to_the_wrong_task(tk, tmp_path):
    """An executor that hands a task another network's result (a plugin's bug) stopped nothing: the figure was
    stored under the wrong network and the predictors learnt from it. Each result names its network, so the
    search stops there, naming the executor, with nothing of it stored."""
    from na_toolkit.errors import ComponentError
    from na_toolkit.search import open_run, run_search

    doc = _doc(tmp_path, "stale")
    wrong = r"executor 'stale' of plugin .* gave the task of network [0-9a-f]+ the result of network [0-9a-f]+ it "
    with pytest.raises(ComponentError, match=wrong + "may not: each ticket's result must be its own"):
        run_search(doc, toolkit=tk, progress=False)
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    stored = open_run(run, toolkit=tk, unfinished=True).evaluated
    assert [e.candidate.origin for e in stored] == ["seed"]  # the seed's own result; nothing of another

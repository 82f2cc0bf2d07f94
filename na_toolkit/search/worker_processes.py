"""The worker processes of a local process pool: how they start (no re-run of the parent's `__main__`,
SIGINT blocked until they ignore it, their share of the cores), how they end with their driver, and how a
closing executor ends them (`end_processes`: every one reaped, none waited for forever)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

#: how long a closing executor waits for a worker it ended (SIGTERM) before it kills it (SIGKILL)
WORKER_EXIT_S = 5.0
#: how often an executor waiting on its workers' tasks checks that none of them has died unseen
WORKER_WATCH_S = 1.0


#: the folder this worker notes the ticket it runs in (`run_noted_task`), set by `init_worker`
_notes: str | None = None


def init_worker(threads: int, driver_pid: int | None = None, notes: str | None = None) -> None:
    global _notes
    _notes = notes
    # Ctrl-C reaches the whole process group: the driver handles it and ends its pool (LocalExecutor.close),
    # a worker ignores it rather than die with a traceback. It started with SIGINT blocked (starting_workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGTERM, _end_worker)
    # Each worker computes on its share of the cores instead of every worker using all of them. Set
    # through the environment, read when torch / the BLAS load, so workers that never need torch skip it.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if driver_pid is not None:
        _exit_with_driver(driver_pid)


def run_noted_task(ticket: int, task: Any) -> Any:
    """`executors.run_task(task)` in a pool's worker, having noted `ticket` in the file of this worker's pid
    (replaced atomically): when a worker dies, the driver reads which task was its own (executor_local.py)."""
    from .executors import run_task

    if _notes is not None:
        path = os.path.join(_notes, str(os.getpid()))
        with open(path + ".tmp", "w") as f:
            f.write(str(ticket))
        os.replace(path + ".tmp", path)
    return run_task(task)


def _end_worker(signum: int, frame: object) -> None:
    """SIGTERM (the driver ends its pool, or the group is terminated): end now, yet run multiprocessing's
    finalizers, which unlink the semaphores made here (tqdm makes one) the resource tracker would warn of.

    `multiprocessing.util._exit_function` is private, and there is no public way to the same end: a worker
    of a process pool catches every exception of its task (a SystemExit raised here would be sent back as the
    task's error and the worker would wait for the next), a normal exit runs no finalizer after `os._exit`,
    and neither `multiprocessing` nor `atexit` offers to run the finalizers. Should a Python drop it, the
    worker still ends at once: the resource tracker then unlinks the semaphores itself, with a warning that
    they leaked."""
    from multiprocessing import util

    run_finalizers = getattr(util, "_exit_function", None)  # what multiprocessing runs as a process ends
    if callable(run_finalizers):
        run_finalizers()
    os._exit(128 + signum)


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
def starting_workers() -> Iterator[None]:
    """Start spawned workers without re-running the parent's `__main__`, and with SIGINT blocked.

    A spawned worker normally re-imports the parent's main script so that functions defined there can be
    unpickled; a script that calls `run_search` without an `if __name__ == "__main__":` guard would then
    start a search in every worker. Tasks only ever name functions of this module, so workers need nothing
    from `__main__`: hide its origin from multiprocessing while the workers start.

    A worker inherits the signal mask of the thread that starts it, so a Ctrl-C while it imports is no
    traceback of its own (`init_worker` then ignores SIGINT); the driver gets it once this thread unblocks."""
    main = sys.modules.get("__main__")
    saved: dict[str, Any] = {k: v for k, v in vars(main).items() if k in ("__file__", "__spec__")} if main else {}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__spec__ = None
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def signal_processes(processes: Sequence[BaseProcess], how: str) -> None:
    for proc in processes:
        if proc.is_alive():
            getattr(proc, how)()


def end_processes(processes: Sequence[BaseProcess], grace_s: float, terminated: bool = False) -> None:
    """Wait up to `grace_s` for `processes` to end, then end those still running: SIGTERM (unless they were
    `terminated` already), and SIGKILL for one still there `grace_s` later (a worker stuck in native code, or
    stopped). Every one is reaped (joined): none is left a zombie, and no close hangs on a stuck worker."""
    for how in ("kill",) if terminated else ("terminate", "kill"):
        deadline = time.monotonic() + grace_s
        for proc in processes:
            _join(proc, deadline)
        if not any(proc.is_alive() for proc in processes):
            return
        signal_processes(processes, how)
    for proc in processes:
        _join(proc, None)


def _join(proc: BaseProcess, deadline: float | None) -> None:
    """Join `proc` (until `deadline`, a time.monotonic(); None: until it ends). A pool's own thread may reap
    the same worker at the same moment (`shutdown` joins its workers too): then our wait returns at once,
    before that thread has noted the exit code, so wait a moment for the exit code as well."""
    proc.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    noted_by = time.monotonic() + WORKER_EXIT_S if deadline is None else deadline
    while proc.is_alive() and time.monotonic() < noted_by:
        time.sleep(0.01)

"""Kill points for the fault benchmark (`na-toolkit bench faults`): real SIGKILLs at chosen stages of a run.

A run started with `NA_TOOLKIT_KILL_AT=STAGE:N[:DELAY_S]` in its environment kills itself with SIGKILL the
N-th time it passes the kill point `STAGE` (after DELAY_S seconds when given, from a timer thread, while
the run goes on: a kill in the middle of what follows, e.g. training). Nothing is mocked: the process dies
as it would under `kill -9`, holding whatever it held. Without the variable a kill point is one dict lookup.

Stages: `transaction` (inside a store write transaction, its statements run, before COMMIT), `evaluate`
(a round hands its candidates to the executor: with a delay, a kill mid-training), `checkpoint` (a round
ends), `outputs` (the run's output files are about to be written), `finish` (outputs written, the result
not yet stored), `task` (a worker starts a task: with a delay, a worker killed mid-evaluation).

With `NA_TOOLKIT_KILL_ONCE=PATH` set too, only the first process to reach the kill is killed, across
processes: it creates PATH (exclusively) before dying, and any process finding PATH there goes on (a task Ray
retries in a fresh worker is not killed again).
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["KILL_AT_ENV", "KILL_ONCE_ENV", "STAGES", "kill_point"]

KILL_AT_ENV = "NA_TOOLKIT_KILL_AT"
KILL_ONCE_ENV = "NA_TOOLKIT_KILL_ONCE"
STAGES = ("transaction", "evaluate", "checkpoint", "outputs", "finish", "task")

_passes: dict[str, int] = {}


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_point(stage: str) -> None:
    """Pass the kill point `stage`: SIGKILL this process here when NA_TOOLKIT_KILL_AT asks for it."""
    spec = os.environ.get(KILL_AT_ENV)
    if not spec:
        return
    parts = spec.split(":")
    if parts[0] != stage:
        return
    _passes[stage] = _passes.get(stage, 0) + 1
    if len(parts) < 2 or _passes[stage] != int(parts[1]):
        return
    once = os.environ.get(KILL_ONCE_ENV)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another process was killed already
    delay_s = float(parts[2]) if len(parts) > 2 else 0.0
    if delay_s <= 0:
        _kill_self()
    timer = threading.Timer(delay_s, _kill_self)
    timer.daemon = True
    timer.start()

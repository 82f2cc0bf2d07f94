"""What the search loop says about a run beyond its figures: the warnings its devices' time models gave when
they were built (`device_warnings`), and why a run stopped short of its evaluation budget (`stalled_reason`).
Both go into the run's summary and report."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..timemodels.profile_match import quick_profile_warning, runtime_warning

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from .components import Components
    from .reward import Budget


def device_warnings(components: Components) -> list[str]:
    """What a device's time models said when they were built: a fallback the config allowed (the ONNX
    Runtime time model measuring on the CPU for a `cuda` device with `allow_fallback = true`), a profile
    measured on another device than this machine's (the learned time model), with what that means for the
    search, or measured with another runtime, version or settings than the device's `measure` runs, or with
    `profile --quick`'s smoke-test minimums."""
    out = []
    for which, models in (("time_model", components.time_models), ("measure", components.measures)):
        for device, model in models.items():
            message = getattr(model, "fallback_warning", None)
            if message:
                out.append(f"devices.{device}.{which}: {message}")
            mismatch = getattr(model, "device_warning", None)
            if mismatch:
                measure = components.measures.get(device)
                means = (
                    f"the search ranks proposals by that device's latencies, while {measure.name!r} measures "
                    "the evaluated networks here and decides their budgets"
                    if which == "time_model" and measure is not None
                    else f"the search judges the budgets of device {device!r} by that device's latencies, "
                    "not this machine's"
                )
                out.append(f"devices.{device}.{which}: {mismatch}; {means}")
    for device, model in components.time_models.items():
        # a profile measured with another runtime, version or settings than the device's measure runs
        runtime = runtime_warning(model, components.measures.get(device))
        quick = quick_profile_warning(model)  # a smoke-test profile
        out += [f"devices.{device}.time_model: {w}" for w in (runtime, quick) if w]
    search = components.config.search
    if not search.keep_weights and not search.inherit_weights:
        out.append(
            "search.keep_weights = false: no trained weights are kept, so the networks in best/ (and any export) "
            "hold initial weights, which do not reproduce the accuracies the run reports (their preprocessing.json "
            "says trained_weights false); leave it on for networks to deploy"
        )
    return out


def stalled_reason(
    stalled: int,
    evaluations: int,
    budget: int,
    screened: int,
    screened_by: Mapping[Budget, int] | None,
    screened_budgets: Sequence[Budget],
    feasible: int = 0,
) -> str:
    """Why the search stopped short; `screened_by`: how many dropped proposals broke each hard budget,
    so the reason names the budgets that bound (with counts when several did), not every hard one;
    `feasible`: evaluated networks within every budget (then the budget is in reach: the strategy ran dry)."""
    reason = (
        f"the strategy proposed no new candidate in {stalled} rounds in a row "
        f"({evaluations} of {budget} evaluations used)"
    )
    if screened:
        broken = sorted(screened_by.items(), key=lambda kv: -kv[1]) if screened_by else []
        if len(broken) > 1:
            limits = ", ".join(f"{budget_text(b)}: {n}" for b, n in broken)
            budgets = [b for b, _ in broken]
        else:
            budgets = [b for b, _ in broken] or list(screened_budgets)
            limits = ", ".join(budget_text(b) for b in budgets)
        reason += f"; {screened} proposals broke a hard budget ({limits}) and were dropped before evaluation: " + (
            f"{feasible} evaluated network(s) meet the budgets, so the strategy found nothing new within them around "
            "what it evaluated (a strategy that explores further, or more moves, may)"
            if feasible
            else "the budget may be out of reach from this seed"
        )
        if any(is_capacity(b) for b in budgets):
            reason += f"; {CAPACITY_ADVICE}"
    return reason


#: what a stop reason or an infeasibility says of a device's memory capacity, the budget a search adds itself
CAPACITY_ADVICE = (
    "a device's memory capacity is a hard budget the search adds itself from its time model's hardware model "
    "(a network that does not fit cannot run there), whatever the config's budgets say: to change it, give the "
    "time model another hardware model (or a copy of its .toml with another memory_capacity_bytes), lower the "
    "device's batch_size, or give the device a `measure`"
)


def budget_text(budget: Budget) -> str:
    """A budget as a stop reason names it, `latency_ms@cpu <= 5`, with where one the config did not give comes
    from: `peak_memory_bytes@pi <= 4.295e+09 (the memory capacity of hardware model raspberry-pi-4)`."""
    return f"{budget.metric} <= {budget.limit:g}" + (f" ({budget.note})" if budget.note else "")


def is_capacity(budget: Budget) -> bool:
    """Is `budget` a device's memory capacity, the hard budget the search adds (components.with_capacity_budgets)?"""
    return budget.metric.startswith("peak_memory_bytes@") and bool(budget.note)


def dead_workers(workers: Sequence[BaseProcess]) -> list[int]:
    """The pids of the workers of a broken process pool that died of themselves (killed, out of memory, an
    exit), waiting up to a second for the pool's own thread to reap them; the workers the pool then ends
    itself (SIGTERM) are not among them."""
    import signal
    import time

    ended_by_pool = (None, -signal.SIGTERM, 128 + signal.SIGTERM)
    deadline = time.monotonic() + 1.0  # the pool's own thread may be reaping it right now: its code comes soon
    while True:
        died = [p for p in workers if p.exitcode not in ended_by_pool]
        if died or time.monotonic() >= deadline:
            return [p.pid for p in died if p.pid is not None]
        time.sleep(0.02)


def worker_exit(workers: Sequence[BaseProcess], pids: Sequence[int] | None = None) -> str:
    """How the dead worker among the `workers` of a broken process pool ended (`pids`: theirs, as
    `dead_workers` found them; found here when not given), for what is said of the task it ran: "killed by
    SIGKILL: the out-of-memory killer, or kill -9", "exit status 1", or "it ended abruptly"."""
    import signal

    pids = dead_workers(workers) if pids is None else pids
    codes = [p.exitcode for p in workers if p.pid in pids and p.exitcode is not None]
    if not codes:
        return "it ended abruptly"
    if codes[0] > 0:
        return f"exit status {codes[0]}"
    oom = ": the out-of-memory killer, or kill -9" if -codes[0] == signal.SIGKILL else ""
    return f"killed by {signal.Signals(-codes[0]).name}{oom}"


def warn_worker_died(how: str, charged: int, retries: int, others: int = 0) -> str:
    """The warning of a worker that died mid-task, on stderr and in the --log-file: a long run whose workers
    the out-of-memory killer ends says so as it happens, not only in its executor's figures at the end.
    `charged`: the tasks it ran that run again (`retries`: their retry), `others`: tasks of other workers the
    pool's end interrupted, which run again uncharged. Returns the message (the run's warnings keep it)."""
    parts = [f"{charged} task(s) it ran run again on a fresh pool (retry {retries})"] if charged else []
    parts += [f"{others} other task(s) its end interrupted run again, not charged a retry"] if others else []
    message = f"a worker process died ({how})" + ("; " + "; ".join(parts) if parts else "")
    logging.getLogger("na_toolkit.search").warning("warning: %s", message)
    return message

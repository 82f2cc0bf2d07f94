"""What the search loop says about a run beyond its figures: the warnings its devices' time models gave when
they were built (`device_warnings`), and why a run stopped short of its evaluation budget (`stalled_reason`).
Both go into the run's summary and report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .components import Components
    from .reward import Budget


def device_warnings(components: Components) -> list[str]:
    """What a device's time models said when they were built: a fallback the config allowed (the ONNX
    Runtime time model measuring on the CPU for a `cuda` device with `allow_fallback = true`), or a
    profile measured on another device than this machine's (the learned time model), with what that
    means for the search."""
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
    return out


def stalled_reason(
    stalled: int,
    evaluations: int,
    budget: int,
    screened: int,
    screened_by: Mapping[Budget, int] | None,
    screened_budgets: Sequence[Budget],
) -> str:
    """Why the search stopped short; `screened_by`: how many dropped proposals broke each hard budget,
    so the reason names the budgets that bound (with counts when several did), not every hard one."""
    reason = (
        f"the strategy proposed no new candidate in {stalled} rounds in a row "
        f"({evaluations} of {budget} evaluations used)"
    )
    if screened:
        broken = sorted(screened_by.items(), key=lambda kv: -kv[1]) if screened_by else []
        if len(broken) > 1:
            limits = ", ".join(f"{b.metric} <= {b.limit:g}: {n}" for b, n in broken)
        else:
            budgets = [b for b, _ in broken] or list(screened_budgets)
            limits = ", ".join(f"{b.metric} <= {b.limit:g}" for b in budgets)
        reason += (
            f"; {screened} proposals broke a hard budget ({limits}) and were "
            "dropped before evaluation: the budget may be out of reach from this seed"
        )
    return reason

"""Training time as a per-device objective: `train_time_s@DEVICE`, a device's time model's estimate of training
a candidate the way the evaluator trains it (steps per epoch × epochs × the step time at the evaluator's batch
size; `timemodels.training`).

`training_plan(config, toolkit, evaluator_options, time_models, measures)` is called when the components are
built: when a device has a `train_time_s` budget it asks the evaluator for its `TrainingPlan` and checks that
the device's time models can estimate a training step. Either failing is one `ConfigError` naming the device,
before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, NAToolkitError
from ..evaluation import make_evaluator
from .reward import device_metric

if TYPE_CHECKING:
    from ..timemodels.base import TimeModel
    from ..timemodels.training import TrainingPlan
    from ..toolkit import Toolkit
    from .config import DeviceSpec, SearchConfig

METRIC = "train_time_s"
#: the time models a user can switch to when a device's cannot estimate a training step
HINT = 'roofline, learned, torch, or onnxruntime with option train_step = "torch"'


def device_train_metric(device: str) -> str:
    """`cpu` → `train_time_s@cpu`."""
    return device_metric(METRIC, device)


def trains(config: SearchConfig, dev: DeviceSpec) -> bool:
    """Does a budget limit `train_time_s@dev`?"""
    return config.needs(device_train_metric(dev.name))


def training_plan(
    config: SearchConfig,
    toolkit: Toolkit,
    evaluator_options: Mapping[str, Any],
    time_models: Mapping[str, TimeModel],
    measures: Mapping[str, TimeModel],
) -> TrainingPlan | None:
    """The evaluator's training plan when a device has a `train_time_s` budget (else None), once every such
    device's time model (and measuring one) can estimate a training step; ConfigError naming the device."""
    devices = [d for d in config.devices if trains(config, d)]
    if not devices:
        return None
    where = f"devices.{devices[0].name}.budgets.{METRIC}"
    for dev in devices:
        for which, models in (("time_model", time_models), ("measure", measures)):
            model = models.get(dev.name)
            if model is not None and model.train_step_source() is None:
                raise ConfigError(
                    f"devices.{dev.name}.budgets.{METRIC}: device {dev.name!r}'s {which} {model.name!r} cannot "
                    f"estimate a training step (it estimates inference only); use {HINT}, or drop the budget"
                )
    name = config.evaluator.name
    try:
        plan = make_evaluator(name, dict(evaluator_options), toolkit).training_plan()
    except NAToolkitError as exc:
        raise ConfigError(f"{where}: evaluator {name!r} cannot say how it trains: {exc}") from None
    if plan is None:
        raise ConfigError(
            f"{where}: evaluator {name!r} does not say how it trains (no training plan: dataset size, batch size, "
            f"epochs), so no time model can estimate train_time_s@{devices[0].name}; use the torch evaluator or drop "
            "the budget"
        )
    return plan

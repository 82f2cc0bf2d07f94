"""Training time from a time model: `train_time_s` = steps per epoch × epochs × the time of one training step.

- `TrainingPlan`: how the evaluator trains (the training split's size, its batch size, its epochs); the
  steps per epoch are counted the way the torch evaluator counts them (`evaluation/torch_trainer.py`: a last
  batch of one sample is dropped, batch norm cannot train on it).
- `TrainTimeEstimate`: what `TimeModel.train_time(arch, plan)` gives: the training time, the step time it
  came from, the steps, and how the time model got its step time (`source`).
- `TrainCalibration`: a roofline's training step fitted to a device from a short measurement of a few
  networks' training steps (`fit_train_calibration`): the roofline terms scaled, a launch overhead per
  kernel and a fixed cost per step. docs/time_models.md ("Training time") has the long form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import TimeModelError

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from .roofline import KernelTime, RooflineTimeModel


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TimeModelError(f"training plan: {name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class TrainingPlan:
    """How a network is trained: `epochs` passes over `train_samples` samples in mini-batches of
    `batch_size` (the evaluator's settings and the dataset's training split)."""

    train_samples: int
    batch_size: int
    epochs: int
    #: where the figures come from (e.g. "torch evaluator on digits"), for messages and records
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("train_samples", "batch_size", "epochs"):
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))

    @property
    def step_batch_size(self) -> int:
        """The batch a step trains on: the evaluator's, or the whole split when it is smaller."""
        return min(self.batch_size, self.train_samples)

    @property
    def steps_per_epoch(self) -> int:
        """Full batches, plus the partial last one unless it holds a single sample (the torch evaluator
        drops it: batch norm cannot train on one sample)."""
        n, b = self.train_samples, self.step_batch_size
        return max(1, n // b + (1 if n % b > 1 else 0))

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "steps_per_epoch": self.steps_per_epoch, "steps": self.steps}


@dataclass(frozen=True)
class TrainTimeEstimate:
    """A time model's training time of one network under a `TrainingPlan` (every step counted at the full
    batch: the partial last batch of an epoch is counted as a full one, an upper bound of one step per epoch)."""

    time_model: str
    device: str
    train_time_s: float
    train_step_ms: float
    steps: int
    batch_size: int
    #: how the time model got the step time (`TimeModel.train_step_source()`)
    source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainCalibration:
    """A roofline training step fitted to a device (`fit_train_calibration`):

        step = scale × Σ_kernels max(compute, memory) + launches × launch_overhead_s + step_overhead_s

    `scale` absorbs how far the step's kernels run from the ceilings (below peak on small shapes, above the
    DRAM roofline when activations stay in cache), `launch_overhead_s` the per-kernel cost of the framework
    (autograd, the optimizer's per-tensor updates), `step_overhead_s` what a step pays once (loss, the batch's
    indexing, the scheduler, the Python loop)."""

    scale: float = 1.0
    launch_overhead_s: float | None = None
    step_overhead_s: float = 0.0
    #: how it was fitted (networks, batch size, device), for the record
    fitted_on: str = ""

    def __post_init__(self) -> None:
        values = {"scale": self.scale, "step_overhead_s": self.step_overhead_s}
        if self.launch_overhead_s is not None:
            values["launch_overhead_s"] = self.launch_overhead_s
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise TimeModelError(f"train_calibration.{name} must be a finite number >= 0, got {value!r}")
        if self.scale == 0 and not self.launch_overhead_s and not self.step_overhead_s:
            raise TimeModelError("train_calibration: scale, launch_overhead_s and step_overhead_s are all 0")

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | TrainCalibration | None) -> TrainCalibration | None:
        if doc is None or isinstance(doc, TrainCalibration):
            return doc
        if not isinstance(doc, Mapping):
            raise TimeModelError(f"train_calibration must be a table of numbers, got {type(doc).__name__}")
        known = {"scale", "launch_overhead_s", "step_overhead_s", "fitted_on"}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise TimeModelError(f"train_calibration has no key(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(doc))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def step_s(self, kernels: Sequence[KernelTime], launch_overhead_s: float) -> float:
        """The calibrated time of a training step made of `kernels` (the roofline's forward, backward and
        update kernels); `launch_overhead_s`: the hardware model's, used when this calibration has none."""
        launch = self.launch_overhead_s if self.launch_overhead_s is not None else launch_overhead_s
        roof = sum(max(k.compute_s, k.memory_s) for k in kernels)
        return self.scale * roof + launch * sum(k.launches for k in kernels) + self.step_overhead_s


def train_step_terms(model: RooflineTimeModel, arch: Architecture, batch_size: int) -> tuple[float, int]:
    """(Σ max(compute, memory) in seconds, kernel launches) of a roofline training step of `arch`."""
    kernels = model.train_kernels(arch, batch_size)
    return sum(max(k.compute_s, k.memory_s) for k in kernels), sum(k.launches for k in kernels)


def fit_train_calibration(
    model: RooflineTimeModel,
    archs: Sequence[Architecture],
    step_ms: Sequence[float],
    batch_size: int,
    fitted_on: str = "",
) -> TrainCalibration:
    """The `TrainCalibration` that best explains the measured training steps `step_ms` of `archs` at
    `batch_size` with `model`'s roofline terms: non-negative least squares on relative errors (each network
    counts alike, whatever its size). Needs at least 4 networks; use networks other than those the
    calibrated model will be judged on."""
    from scipy.optimize import nnls

    y = np.asarray(step_ms, dtype=float) / 1000.0
    if len(archs) != len(y) or len(y) < 4:
        raise TimeModelError(
            f"fit_train_calibration needs the same number (>= 4) of networks and step times, got {len(archs)} "
            f"networks and {len(y)} times"
        )
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise TimeModelError("fit_train_calibration: every measured step time must be a finite number > 0")
    X = np.array([[*train_step_terms(model, a, batch_size), 1.0] for a in archs], dtype=float)
    coef, _ = nnls(X / y[:, None], np.ones(len(y)))
    return TrainCalibration(
        scale=float(coef[0]),
        launch_overhead_s=float(coef[1]),
        step_overhead_s=float(coef[2]),
        fitted_on=fitted_on or f"{len(archs)} networks at batch {batch_size}",
    )

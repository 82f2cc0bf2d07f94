"""What a predictor learns: a target's name, its unit and the range its values can take (`Target`).

A predictor given its target (`Predictor.for_target`) clips every prediction into the target's valid range
(an accuracy above 100 % or below 0, a negative time: a regression extrapolating) and says so per
prediction (`Predictor.predict_with_notes`). The unit and range come from where the target is defined, never
from its spelling: the metrics a search records are defined here (`metric_target`: an `EvaluationResult`'s
accuracy is a fraction in [0, 1], its training time seconds, a `TimeEstimate`'s latency milliseconds ...),
a benchmark table's columns by the evaluator that hands them out (`TrainingRows.unit` / `valid_range`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError

#: unit of a fraction in [0, 1] (an accuracy as the search records it); printed as "(fraction)"
FRACTION = "fraction"


@dataclass(frozen=True)
class Target:
    """A predicted quantity: `name` (a metric or a table column), `unit` ("" when nothing defines it) and
    the valid range [`low`, `high`] (None: unbounded on that side)."""

    name: str
    unit: str = ""
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        for bound in (self.low, self.high):
            number = isinstance(bound, (int, float)) and not isinstance(bound, bool)
            if bound is not None and not (number and math.isfinite(bound)):
                raise DataError(f"target {self.name!r}: a range bound must be a finite number or none, got {bound!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise DataError(f"target {self.name!r}: range {self.low}..{self.high} is empty")

    def with_unit(self, value: float) -> str:
        """`93.1 %`, `12.5 ms`, `0.931 (fraction)`; the bare number when the unit is unknown."""
        if self.unit == FRACTION:
            return f"{value:.4g} (fraction)"
        return f"{value:.4g} {self.unit}" if self.unit else f"{value:.4g}"

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high) of the valid range, an unbounded side as -inf / inf."""
        return (-math.inf if self.low is None else self.low, math.inf if self.high is None else self.high)

    @property
    def range_text(self) -> str:
        """`0..100 %`, `>= 0 ms`."""
        unit = f" {self.unit}" if self.unit and self.unit != FRACTION else ""
        if self.low is not None and self.high is not None:
            return f"{self.low:g}..{self.high:g}{unit}"
        if self.low is not None:
            return f">= {self.low:g}{unit}"
        return f"<= {self.high:g}{unit}" if self.high is not None else "unbounded"

    def clip(self, mean: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
        """`mean` clipped into the valid range, and per row what was clipped (empty: nothing). A 2-D `mean`
        (several outputs, each its own quantity) is left alone: one target's range cannot speak for them."""
        notes: list[list[str]] = [[] for _ in range(len(mean))]
        if mean.ndim != 1 or (self.low is None and self.high is None):
            return mean, notes
        clipped = np.clip(mean, *self.bounds)
        for i in np.flatnonzero(clipped != mean):
            notes[i].append(
                f"predicted {self.with_unit(float(mean[i]))}, outside {self.name}'s valid range {self.range_text}: "
                f"clipped to {self.with_unit(float(clipped[i]))}"
            )
        return clipped, notes

    def to_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "valid_range": [self.low, self.high]}

    @classmethod
    def from_json(cls, name: str, unit: Any, valid_range: Any) -> Target:
        if not isinstance(unit, str):
            raise DataError(f"a saved target unit must be a string, got {unit!r}")
        if not isinstance(valid_range, list) or len(valid_range) != 2:
            raise DataError(f"a saved target range must be [low, high] (null: unbounded), got {valid_range!r}")
        low, high = valid_range
        return cls(name, unit, low, high)


#: the metrics a search records, by name before any `@device` (docs/search.md): unit, low, high. An
#: `EvaluationResult` holds accuracies as fractions in [0, 1] and seconds of training; a `TimeEstimate`
#: latency in ms, memory in bytes, energy in mJ.
METRICS: dict[str, tuple[str, float | None, float | None]] = {
    "accuracy": (FRACTION, 0.0, 1.0),
    "valid_accuracy": (FRACTION, 0.0, 1.0),
    "test_accuracy": (FRACTION, 0.0, 1.0),
    "predicted_accuracy": (FRACTION, 0.0, 1.0),
    "train_time_s": ("s", 0.0, None),
    "latency_ms": ("ms", 0.0, None),
    "peak_memory_bytes": ("bytes", 0.0, None),
    "model_size_bytes": ("bytes", 0.0, None),
    "energy_mj": ("mJ", 0.0, None),
}


#: (from unit, to unit) -> the factor a value in the first is multiplied by to be in the second
UNIT_FACTORS: dict[tuple[str, str], float] = {
    ("%", FRACTION): 0.01,
    (FRACTION, "%"): 100.0,
    ("s", "ms"): 1000.0,
    ("ms", "s"): 0.001,
}


def unit_factor(from_unit: str, to_unit: str) -> float | None:
    """What a value in `from_unit` is multiplied by to be in `to_unit` (1 for the same unit); None when one
    cannot be converted into the other (or a unit is unknown: "")."""
    if from_unit == to_unit and from_unit:
        return 1.0
    return UNIT_FACTORS.get((from_unit, to_unit))


def metric_target(name: str) -> Target | None:
    """The definition of a metric a search records (`accuracy`, `train_time_s`, `latency_ms@cpu`, ...: the
    columns of a run's evaluations files); None for a name that is none of them."""
    metric = name.partition("@")[0]
    spec = METRICS.get(metric)
    return None if spec is None else Target(name, *spec)

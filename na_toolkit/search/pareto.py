"""Pareto archive over accuracy (maximised), model size and each device's latency (minimised)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX, MIN = "max", "min"


@dataclass(frozen=True)
class Objective:
    metric: str
    sense: str  # "max" or "min"

    def better_or_equal(self, a: float, b: float) -> bool:
        return a >= b if self.sense == MAX else a <= b

    def strictly_better(self, a: float, b: float) -> bool:
        return a > b if self.sense == MAX else a < b


def dominates(a: Mapping[str, float], b: Mapping[str, float], objectives: Sequence[Objective]) -> bool:
    """a dominates b: at least as good in every objective and strictly better in one."""
    return all(o.better_or_equal(a[o.metric], b[o.metric]) for o in objectives) and any(
        o.strictly_better(a[o.metric], b[o.metric]) for o in objectives
    )


def pareto_front(points: Sequence[Mapping[str, float]], objectives: Sequence[Objective]) -> list[int]:
    """Indices of the non-dominated points, in their given order. Points equal in every objective are all
    kept (neither dominates the other)."""
    return [
        i for i, p in enumerate(points) if not any(dominates(q, p, objectives) for j, q in enumerate(points) if j != i)
    ]


def search_objectives(devices: Sequence[str]) -> list[Objective]:
    """The archive's objectives for a search over `devices`."""
    return [Objective("accuracy", MAX), Objective("model_size_bytes", MIN)] + [
        Objective(f"latency_ms@{d}", MIN) for d in devices
    ]


class ParetoArchive:
    """The non-dominated set of the points added so far (key → metrics), kept incrementally."""

    def __init__(self, objectives: Sequence[Objective]):
        self.objectives = list(objectives)
        self._front: dict[str, dict[str, float]] = {}

    def add(self, key: str, metrics: Mapping[str, float]) -> bool:
        """Add a point; True when it enters the front (dominated members are dropped)."""
        if any(o.metric not in metrics for o in self.objectives):
            return False  # a failed evaluation has no place on the front
        point = {o.metric: float(metrics[o.metric]) for o in self.objectives}
        if any(dominates(q, point, self.objectives) for q in self._front.values()):
            return False
        self._front = {k: q for k, q in self._front.items() if not dominates(point, q, self.objectives)}
        self._front[key] = point
        return True

    @property
    def keys(self) -> list[str]:
        return list(self._front)

    def points(self) -> dict[str, dict[str, float]]:
        return {k: dict(v) for k, v in self._front.items()}

    def __len__(self) -> int:
        return len(self._front)

    def __contains__(self, key: object) -> bool:
        return key in self._front

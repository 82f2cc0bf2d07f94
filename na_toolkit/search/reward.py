"""The multi-objective reward: a pure function of (metrics, budgets, objectives).

Two forms:

- ``penalty`` (the Neural Architect paper; docs/search.md): piecewise linear past each threshold,

      R = w_acc · acc − Σ_b λ_b · max(0, value_b − limit_b) / limit_b

  so a candidate inside every budget is rewarded for accuracy alone and each budget costs λ per 100 % of
  overshoot (the paper penalises model size past 16 MB this way).
- ``mnasnet`` (Tan et al. 2019, "MnasNet: Platform-Aware Neural Architecture Search for Mobile", eq. 2):

      R = w_acc · acc · Π_b (value_b / limit_b) ^ w_b,   w_b = λ_b·α if value_b ≤ limit_b else λ_b·β

  (λ_b the budget's weight, w_acc = 1 by default); α = β = −0.07 is the paper's soft trade-off; α = 0, β = −1
  its hard-constraint variant.

A budget may be *hard*: violating it makes the candidate infeasible and its reward
``infeasible_reward − hard_penalty(Σ_hard excess_b)`` (below every feasible candidate, whose reward is >= 0 in
both forms, as ``infeasible_reward`` <= 0; still ordered by how far it overshoots, so a learning controller is
pulled towards the feasible region instead of seeing a flat floor; soft terms and weights do not enter it).
``hard_penalty`` is the overshoot itself up to ``LINEAR_EXCESS`` (900 %: 10× the budget) and
``2·K − K²/overshoot`` past it (K = LINEAR_EXCESS): the same slope at 10×, always below 2·K, so a failed
evaluation (``FAILED_PENALTY`` = 2·K below ``infeasible_reward``) ranks below every candidate that breaks a hard
budget, however far (docs/search.md, "How candidates rank").

``feasible`` is True when every budget is met, hard or soft; ``violations`` names the budgets that are not.

Metric names carry units and, per device, the device after ``@``: ``accuracy``, ``model_size_bytes``,
``train_time_s`` (measured by the evaluator, predicted before), ``latency_ms@cpu``, ``peak_memory_bytes@cpu``,
``energy_mj@cpu``, ``train_time_s@cpu`` (the device's time model: steps of the evaluator's training plan × its
training-step time, `TimeModel.train_time`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..validation import is_finite_number

FORMS = ("penalty", "mnasnet")
#: the largest relative overshoot a budget counts (a billion times its limit): rewards stay finite
MAX_EXCESS = 1e9
#: mnasnet form: the largest power (a budget's weight x alpha or beta) its value/limit ratio, 1e-12 .. MAX_EXCESS,
#: is raised to: past it the reward overflowed (MnasNet's exponents are 0.07 .. 1)
MAX_MNASNET_POWER = 10.0
#: metrics a budget may constrain: global ones, and per-device ones (written `metric@device`)
GLOBAL_METRICS = ("model_size_bytes", "train_time_s")
DEVICE_METRICS = ("latency_ms", "peak_memory_bytes", "energy_mj", "train_time_s")
ACCURACY = "accuracy"
#: the hard penalty is the overshoot itself up to this (900 %: 10x the budget), bounded past it (`hard_penalty`)
LINEAR_EXCESS = 9.0
#: how far below `infeasible_reward` a failed evaluation's reward is: below every hard penalty (`hard_penalty`)
FAILED_PENALTY = 2.0 * LINEAR_EXCESS


def device_metric(metric: str, device: str) -> str:
    """`latency_ms`, `cpu` → `latency_ms@cpu`."""
    return f"{metric}@{device}"


def split_metric(name: str) -> tuple[str, str | None]:
    """`latency_ms@cpu` → (`latency_ms`, `cpu`); `model_size_bytes` → (`model_size_bytes`, None)."""
    metric, sep, device = name.partition("@")
    return metric, (device if sep else None)


@dataclass(frozen=True)
class Budget:
    """An upper limit on one metric. `weight` is λ (penalty form) or scales α/β (mnasnet form);
    `hard` makes a violation infeasible."""

    metric: str
    limit: float
    weight: float = 1.0
    hard: bool = False
    #: where a budget the config did not give comes from (a device's memory capacity); "" for the config's
    note: str = ""

    def __post_init__(self) -> None:
        if not is_finite_number(self.limit):
            raise ConfigError(f"budget {self.metric}: limit must be a finite number, got {self.limit!r}")
        if self.limit <= 0:
            raise ConfigError(f"budget {self.metric}: limit must be > 0, got {self.limit!r}")
        if not math.isfinite(self.weight) or self.weight < 0:
            raise ConfigError(f"budget {self.metric}: weight must be a finite number >= 0, got {self.weight!r}")

    @property
    def device(self) -> str | None:
        return split_metric(self.metric)[1]

    def excess(self, value: float) -> float:
        """Relative overshoot max(0, value − limit) / limit (0 inside the budget, at the limit included), at
        most MAX_EXCESS: a limit so small that the ratio overflows (1e-320) must not make a reward −inf, which
        JSON cannot hold and no strategy can rank."""
        return min(max(0.0, value - self.limit) / self.limit, MAX_EXCESS)


@dataclass(frozen=True)
class Objectives:
    """How metrics combine into one reward."""

    form: str = "penalty"
    accuracy_weight: float = 1.0
    #: mnasnet form: the exponents below / above the limit (Tan et al. 2019)
    mnasnet_alpha: float = -0.07
    mnasnet_beta: float = -0.07
    #: base reward of a candidate that violates a hard budget
    infeasible_reward: float = -1.0

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ConfigError(f"reward form must be one of {list(FORMS)}, got {self.form!r}")
        if not math.isfinite(self.accuracy_weight) or self.accuracy_weight <= 0:
            raise ConfigError(f"accuracy weight must be > 0, got {self.accuracy_weight!r}")
        # a feasible candidate's reward is >= 0 in both forms (accuracy >= 0, factors > 0)
        if not is_finite_number(self.infeasible_reward) or self.infeasible_reward > 0:
            raise ConfigError(
                f"reward.infeasible_reward must be a finite number <= 0, got {self.infeasible_reward!r}: a feasible "
                "candidate's reward is >= 0, and a positive one would rank candidates that break a hard budget "
                "above feasible ones"
            )

    def check_power(self, budget: Budget, key: str) -> None:
        """ConfigError naming `key` when the mnasnet form would raise `budget`'s ratio to a power past
        MAX_MNASNET_POWER: `mnasnet_beta = 1e18` was an OverflowError traceback at the first candidate scored."""
        power = budget.weight * max(abs(self.mnasnet_alpha), abs(self.mnasnet_beta))
        if self.form == "mnasnet" and power > MAX_MNASNET_POWER:
            raise ConfigError(
                f"{key}: its weight {budget.weight:g} x the mnasnet exponent (reward.mnasnet_alpha, mnasnet_beta: "
                f"{self.mnasnet_alpha:g}, {self.mnasnet_beta:g}) is a power of {power:g}, past the "
                f"{MAX_MNASNET_POWER:g} the reward can hold; MnasNet's exponents are -0.07 (or 0 and -1)"
            )


@dataclass(frozen=True)
class RewardResult:
    """The reward of one candidate, whether it meets every budget, which ones it violates, and the
    contribution of each term (`accuracy`, then one entry per budget metric)."""

    reward: float
    feasible: bool
    violations: tuple[str, ...] = ()
    terms: dict[str, float] = field(default_factory=dict)
    #: the metrics whose hard budget is broken (a subset of `violations`: a soft budget broken beside a met
    #: hard one on the same metric is not in it)
    hard_violations: tuple[str, ...] = ()

    def feasible_for(self, device: str) -> bool:
        """Meets the global budgets and those of `device` (other devices' budgets are not its concern)."""
        return not any(split_metric(v)[1] in (None, device) for v in self.violations)


def _value(metrics: Mapping[str, float], budget: Budget) -> float:
    try:
        value = float(metrics[budget.metric])
    except KeyError:
        raise ConfigError(
            f"a budget limits {budget.metric!r} but nothing measured or estimated it (metrics hold "
            f"{sorted(metrics)}): choose a time model that gives it, or drop the budget"
        ) from None
    if math.isnan(value):
        raise ConfigError(f"metric {budget.metric!r} is NaN: its time model or evaluator failed")
    return value


def hard_penalty(excess: float) -> float:
    """What a total relative overshoot `excess` (>= 0) of the hard budgets costs below `infeasible_reward`:
    `excess` up to LINEAR_EXCESS (K), `2·K − K²/excess` past it (the same value and slope at K). Strictly
    increasing, so candidates keep their order by overshoot, and below FAILED_PENALTY (2·K), so a failed
    evaluation ranks below all of them."""
    k = LINEAR_EXCESS
    return excess if excess <= k else FAILED_PENALTY - k * k / excess


def failed_reward(objectives: Objectives) -> float:
    """The reward of a failed evaluation: `infeasible_reward − FAILED_PENALTY`, below every candidate that was
    measured and breaks a hard budget (`hard_penalty` < FAILED_PENALTY) and every feasible one."""
    return objectives.infeasible_reward - FAILED_PENALTY


def _violated(violations: list[str], metric: str) -> None:
    if metric not in violations:  # two budgets on one metric: it is named once
        violations.append(metric)


def compute_reward(
    metrics: Mapping[str, float], budgets: Sequence[Budget] | Iterable[Budget], objectives: Objectives = Objectives()
) -> RewardResult:
    """The reward of a candidate with `metrics` under `budgets` and `objectives` (pure, no state)."""
    try:
        acc = float(metrics[ACCURACY])
    except KeyError:
        raise ConfigError(f"metrics hold no {ACCURACY!r} (got {sorted(metrics)})") from None
    terms: dict[str, float] = {}
    violations: list[str] = []
    hard: list[str] = []  # per budget: a soft budget broken on a metric a met hard one also limits is no hard break
    hard_excess = 0.0
    if objectives.form == "penalty":
        terms[ACCURACY] = objectives.accuracy_weight * acc
        reward = terms[ACCURACY]
        for b in budgets:
            value = _value(metrics, b)
            excess = b.excess(value)
            if value > b.limit:
                _violated(violations, b.metric)
                if b.hard:
                    hard_excess += excess
                    _violated(hard, b.metric)
            # two budgets may limit one metric (the config's and the device's memory capacity): both count
            terms[b.metric] = terms.get(b.metric, 0.0) - b.weight * excess
            reward -= b.weight * excess
    else:
        factor = 1.0
        for b in budgets:
            value = _value(metrics, b)
            exponent = b.weight * (objectives.mnasnet_alpha if value <= b.limit else objectives.mnasnet_beta)
            if value > b.limit:
                _violated(violations, b.metric)
                if b.hard:
                    hard_excess += b.excess(value)
                    _violated(hard, b.metric)
            # a zero value (e.g. no energy counter) would make a negative power infinite: clamp to a tiny ratio
            ratio = min(max(value / b.limit, 1e-12), 1.0 + MAX_EXCESS)
            terms[b.metric] = terms.get(b.metric, 1.0) * ratio**exponent
            factor *= ratio**exponent
        terms[ACCURACY] = objectives.accuracy_weight * acc
        reward = terms[ACCURACY] * factor
    if hard:
        reward = objectives.infeasible_reward - hard_penalty(hard_excess)
    return RewardResult(float(reward), not violations, tuple(violations), terms, tuple(hard))

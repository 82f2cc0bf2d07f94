"""The reward at and around every breakpoint (the budget limits), both forms, hard and soft budgets."""

import math
from pathlib import Path

import pytest

from na_toolkit.errors import ConfigError
from na_toolkit.search.reward import Budget, Objectives, RewardResult, compute_reward, device_metric, split_metric

MB16 = 16 * 2**20
EPS = 1e-9


def test_metric_names_round_trip():
    assert device_metric("latency_ms", "cpu") == "latency_ms@cpu"
    assert split_metric("latency_ms@cpu") == ("latency_ms", "cpu")
    assert split_metric("model_size_bytes") == ("model_size_bytes", None)


def test_no_budgets_is_weighted_accuracy():
    r = compute_reward({"accuracy": 0.9}, [], Objectives(accuracy_weight=2.0))
    assert r.reward == pytest.approx(1.8)
    assert r.feasible and r.violations == ()
    assert r.terms == {"accuracy": pytest.approx(1.8)}


@pytest.mark.parametrize(
    "size, expected_penalty",
    [
        (0.5 * MB16, 0.0),  # well inside
        (MB16 - 1, 0.0),  # just inside
        (MB16, 0.0),  # at the breakpoint: no penalty, still feasible
        (MB16 + 1, 1 / MB16),  # just past: penalty starts linearly from zero
        (1.5 * MB16, 0.5),
        (2 * MB16, 1.0),
        (3 * MB16, 2.0),
    ],
)
def test_penalty_is_piecewise_linear_in_model_size(size, expected_penalty):
    b = Budget("model_size_bytes", MB16, weight=1.0)
    r = compute_reward({"accuracy": 0.8, "model_size_bytes": size}, [b])
    assert r.reward == pytest.approx(0.8 - expected_penalty, abs=1e-12)
    assert r.terms["model_size_bytes"] == pytest.approx(-expected_penalty, abs=1e-12)
    assert r.feasible == (size <= MB16)
    assert r.violations == (() if size <= MB16 else ("model_size_bytes",))


def test_penalty_slope_is_lambda_over_limit():
    b = Budget("latency_ms@cpu", 2.0, weight=0.5)
    rewards = [compute_reward({"accuracy": 1.0, "latency_ms@cpu": v}, [b]).reward for v in (2.0, 3.0, 4.0)]
    assert rewards == pytest.approx([1.0, 0.75, 0.5])  # 0.5 per 100% overshoot
    # continuous at the breakpoint from both sides
    left = compute_reward({"accuracy": 1.0, "latency_ms@cpu": 2.0 - EPS}, [b]).reward
    right = compute_reward({"accuracy": 1.0, "latency_ms@cpu": 2.0 + EPS}, [b]).reward
    assert abs(left - right) < 1e-8


def test_penalties_sum_over_devices_and_metrics():
    budgets = [
        Budget("model_size_bytes", 100.0, weight=1.0),
        Budget("latency_ms@cpu", 1.0, weight=2.0),
        Budget("latency_ms@gpu", 0.1, weight=1.0),
        Budget("energy_mj@gpu", 5.0, weight=1.0),
        Budget("peak_memory_bytes@cpu", 1000.0, weight=1.0),
        Budget("train_time_s", 10.0, weight=0.1),
    ]
    metrics = {
        "accuracy": 0.9,
        "model_size_bytes": 150.0,  # 0.5 over -> 0.5
        "latency_ms@cpu": 1.5,  # 0.5 over x2 -> 1.0
        "latency_ms@gpu": 0.05,  # inside
        "energy_mj@gpu": 5.0,  # at the limit
        "peak_memory_bytes@cpu": 1100.0,  # 0.1 over -> 0.1
        "train_time_s": 20.0,  # 1.0 over x0.1 -> 0.1
    }
    r = compute_reward(metrics, budgets)
    assert r.reward == pytest.approx(0.9 - 0.5 - 1.0 - 0.1 - 0.1)
    assert set(r.violations) == {"model_size_bytes", "latency_ms@cpu", "peak_memory_bytes@cpu", "train_time_s"}
    assert not r.feasible
    # per device: the gpu's own budgets are met, but the global ones are not
    assert not r.feasible_for("gpu")
    only_cpu = compute_reward({**metrics, "model_size_bytes": 1.0, "train_time_s": 1.0}, budgets)
    assert only_cpu.feasible_for("gpu") and not only_cpu.feasible_for("cpu")


@pytest.mark.parametrize("value", [0.99, 1.0])
def test_hard_budget_inside_or_at_limit_is_unaffected(value):
    b = Budget("latency_ms@cpu", 1.0, hard=True)
    r = compute_reward({"accuracy": 0.7, "latency_ms@cpu": value}, [b])
    assert r.feasible and r.reward == pytest.approx(0.7)


def test_hard_budget_past_limit_is_infeasible_and_ordered_by_overshoot():
    b = Budget("latency_ms@cpu", 1.0, hard=True)
    obj = Objectives(infeasible_reward=-1.0)
    just = compute_reward({"accuracy": 0.99, "latency_ms@cpu": 1.0 + 1e-6}, [b], obj)
    far = compute_reward({"accuracy": 0.99, "latency_ms@cpu": 3.0}, [b], obj)
    assert not just.feasible and just.violations == ("latency_ms@cpu",)
    assert just.reward == pytest.approx(-1.0, abs=1e-5)
    assert far.reward == pytest.approx(-1.0 - 2.0)
    worst_feasible = compute_reward({"accuracy": 0.0, "latency_ms@cpu": 1.0}, [b], obj)
    assert worst_feasible.reward > just.reward > far.reward


def test_soft_and_hard_mixed():
    budgets = [Budget("model_size_bytes", 10.0), Budget("latency_ms@cpu", 1.0, hard=True)]
    soft_only = compute_reward({"accuracy": 0.5, "model_size_bytes": 20.0, "latency_ms@cpu": 1.0}, budgets)
    assert soft_only.reward == pytest.approx(-0.5) and not soft_only.feasible
    both = compute_reward({"accuracy": 0.5, "model_size_bytes": 20.0, "latency_ms@cpu": 2.0}, budgets)
    assert both.reward == pytest.approx(-1.0 - 1.0)  # only the hard overshoot counts below the floor


@pytest.mark.parametrize("form", ["penalty", "mnasnet"])
def test_a_soft_budget_and_a_weightless_hard_one_on_one_metric(form):
    """A device's memory capacity is a hard budget of weight 0 beside the config's soft one on the same
    metric: below the capacity only the soft budget counts (the hard one changes no reward), above it the
    candidate is infeasible; the metric is named once among the violations."""
    metric = "peak_memory_bytes@edge"
    soft, capacity = Budget(metric, 100.0), Budget(metric, 1000.0, weight=0.0, hard=True, note="capacity")
    obj = Objectives(form=form)
    for value in (50.0, 500.0):  # under both; over the soft one only
        alone = compute_reward({"accuracy": 0.5, metric: value}, [soft], obj)
        both = compute_reward({"accuracy": 0.5, metric: value}, [soft, capacity], obj)
        assert both.reward == pytest.approx(alone.reward) and both.feasible == alone.feasible
        assert both.violations == alone.violations and both.terms[metric] == pytest.approx(alone.terms[metric])
        assert both.hard_violations == ()  # over the soft budget only: no hard break (a strategy ranks on it)
    over = compute_reward({"accuracy": 0.5, metric: 2000.0}, [soft, capacity], obj)
    assert not over.feasible and over.violations == (metric,) and over.hard_violations == (metric,)
    assert over.reward == pytest.approx(obj.infeasible_reward - 1.0)  # the hard overshoot: (2000 - 1000) / 1000


@pytest.mark.parametrize(
    "lat, expected_factor",
    [
        (0.5, 0.5**-0.07),  # faster than the target: small bonus (alpha)
        (1.0, 1.0),  # at the breakpoint: factor 1
        (2.0, 2.0**-0.07),  # slower: penalty (beta)
    ],
)
def test_mnasnet_soft_form(lat, expected_factor):
    obj = Objectives(form="mnasnet", mnasnet_alpha=-0.07, mnasnet_beta=-0.07)
    r = compute_reward({"accuracy": 0.8, "latency_ms@cpu": lat}, [Budget("latency_ms@cpu", 1.0)], obj)
    assert r.reward == pytest.approx(0.8 * expected_factor)
    assert r.feasible == (lat <= 1.0)


def test_mnasnet_switches_exponent_at_the_limit():
    obj = Objectives(form="mnasnet", mnasnet_alpha=0.0, mnasnet_beta=-1.0)  # the paper's hard variant
    b = Budget("latency_ms@cpu", 10.0)
    below = compute_reward({"accuracy": 0.9, "latency_ms@cpu": 5.0}, [b], obj)
    at = compute_reward({"accuracy": 0.9, "latency_ms@cpu": 10.0}, [b], obj)
    above = compute_reward({"accuracy": 0.9, "latency_ms@cpu": 20.0}, [b], obj)
    assert below.reward == pytest.approx(0.9) and at.reward == pytest.approx(0.9)
    assert above.reward == pytest.approx(0.45)
    # continuous at the limit even though the exponent switches
    just_above = compute_reward({"accuracy": 0.9, "latency_ms@cpu": 10.0 * (1 + 1e-9)}, [b], obj)
    assert abs(just_above.reward - at.reward) < 1e-8


def test_mnasnet_multiplies_over_budgets_and_hard_floor_applies():
    obj = Objectives(form="mnasnet", mnasnet_alpha=-0.07, mnasnet_beta=-0.07)
    budgets = [Budget("latency_ms@a", 1.0), Budget("latency_ms@b", 2.0, weight=2.0)]
    r = compute_reward({"accuracy": 1.0, "latency_ms@a": 2.0, "latency_ms@b": 1.0}, budgets, obj)
    assert r.reward == pytest.approx(2.0**-0.07 * 0.5 ** (-0.14))
    hard = [Budget("latency_ms@a", 1.0, hard=True)]
    r = compute_reward({"accuracy": 1.0, "latency_ms@a": 1.5}, hard, obj)
    assert not r.feasible and r.reward == pytest.approx(-1.5)


@pytest.mark.parametrize("limit", [0, -1.0, math.inf, math.nan])
def test_bad_budget_limits_are_config_errors(limit):
    with pytest.raises(ConfigError, match="latency_ms@cpu"):
        Budget("latency_ms@cpu", limit)


def test_bad_objectives_and_missing_metrics():
    with pytest.raises(ConfigError, match="form"):
        Objectives(form="product")
    with pytest.raises(ConfigError, match="accuracy weight"):
        Objectives(accuracy_weight=0)
    with pytest.raises(ConfigError, match="energy_mj@cpu"):
        compute_reward({"accuracy": 1.0}, [Budget("energy_mj@cpu", 1.0)])
    with pytest.raises(ConfigError, match="accuracy"):
        compute_reward({"latency_ms@cpu": 1.0}, [])


def test_mnasnet_accuracy_weight_scales_the_product():
    """The documented formula, by hand: R = w_acc · acc · Π (value/limit)^(weight·α or weight·β)."""
    obj = Objectives(form="mnasnet", accuracy_weight=2.0, mnasnet_alpha=-0.07, mnasnet_beta=-0.5)
    budgets = [Budget("model_size_bytes", 16e6), Budget("latency_ms@cpu", 4.0, weight=2.0)]
    r = compute_reward({"accuracy": 0.9, "model_size_bytes": 8e6, "latency_ms@cpu": 5.0}, budgets, obj)
    assert r.reward == pytest.approx(2.0 * 0.9 * 0.5**-0.07 * 1.25**-1.0)
    assert r.violations == ("latency_ms@cpu",)


@pytest.mark.parametrize("value", [0.5, 1e-9, math.inf, math.nan])
def test_a_positive_infeasible_reward_is_refused(value):
    """Above 0 it would rank a candidate that breaks a hard budget above a feasible one (reward >= 0):
    refused in the library and in a config."""
    from na_toolkit.search.config import parse_config

    with pytest.raises(ConfigError, match="infeasible_reward"):
        Objectives(infeasible_reward=value)
    doc = {"seed_network": "simple-cnn", "evaluations": 2, "reward": {"infeasible_reward": value}}
    with pytest.raises(ConfigError, match="infeasible_reward"):
        parse_config(doc, Path("."))
    assert Objectives(infeasible_reward=0.0).infeasible_reward == 0.0


def test_reward_is_pure():
    metrics = {"accuracy": 0.5, "model_size_bytes": 30.0}
    budgets = (Budget("model_size_bytes", 10.0),)
    a = compute_reward(metrics, budgets)
    b = compute_reward(metrics, budgets)
    assert a == b and isinstance(a, RewardResult)
    assert metrics == {"accuracy": 0.5, "model_size_bytes": 30.0}


@pytest.mark.parametrize("form", ["penalty", "mnasnet"])
def test_a_tiny_limit_keeps_the_reward_finite(form):
    # value / 1e-320 overflows to inf: the overshoot is counted up to a billion times the limit, so the
    # reward stays a number JSON can hold and a strategy can rank
    import math

    for hard in (False, True):
        b = Budget("latency_ms@cpu", 1e-320, hard=hard)
        r = compute_reward({"accuracy": 0.9, "latency_ms@cpu": 5.0}, [b], Objectives(form=form))
        assert math.isfinite(r.reward) and not r.feasible

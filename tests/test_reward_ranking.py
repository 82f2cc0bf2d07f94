"""How a failed evaluation ranks against measured candidates (docs/search.md, "How candidates rank"): below
every feasible one and below every one that breaks a hard budget, however far; the hard penalty is the
overshoot up to 900 % (10x the budget) and `18 − 81/overshoot` past it, so candidates keep their order by
overshoot."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import NB201_SEARCH, config_doc, default_toolkit, get_seed
from na_toolkit.search.reward import MAX_EXCESS, Budget, Objectives, compute_reward, failed_reward, hard_penalty

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")

OVERSHOOTS = (1.0 + 1e-9, 1.1, 2.0, 3.0, 10.0, 11.0, 100.0, 1e6, 1e12)  # value / limit


@pytest.mark.parametrize("form", ["penalty", "mnasnet"])
@pytest.mark.parametrize("infeasible_reward", [-1.0, 0.0, -5.0])
def test_a_failure_ranks_below_every_measured_candidate_of_a_hard_budget(form, infeasible_reward):
    obj = Objectives(form=form, infeasible_reward=infeasible_reward)
    one = [Budget("latency_ms@d", 10.0, hard=True)]
    two = one + [Budget("model_size_bytes", 1e6, hard=True)]
    rewards = [
        compute_reward({"accuracy": 1.0, "latency_ms@d": 10.0 * x, "model_size_bytes": 1e6 * x}, two, obj).reward
        for x in OVERSHOOTS
    ]
    worst_feasible = compute_reward({"accuracy": 0.0, "latency_ms@d": 1.0, "model_size_bytes": 1.0}, two, obj)
    assert worst_feasible.feasible and worst_feasible.reward >= 0
    # ordered by overshoot (strictly), all of them above a failure, even both budgets a billion times over
    assert rewards == sorted(rewards, reverse=True) and len(set(rewards)) == len(rewards)
    assert infeasible_reward >= rewards[0] and rewards[-1] > failed_reward(obj)
    at_most = compute_reward({"accuracy": 1.0, "latency_ms@d": 1e300}, one, obj).reward  # excess capped at 1e9
    assert at_most > failed_reward(obj) and hard_penalty(2 * MAX_EXCESS) < 18.0


def test_the_documented_figures_of_the_default_reward():
    """docs/search.md's table: the reward under one hard latency budget at 1.1x .. 100x, and of a failure."""
    b = [Budget("latency_ms@d", 10.0, hard=True)]
    xs = (1.0, 1.1, 2.0, 10.0, 100.0)
    at = {x: compute_reward({"accuracy": 0.9, "latency_ms@d": 10.0 * x}, b).reward for x in xs}
    assert at == pytest.approx({1.0: 0.9, 1.1: -1.1, 2.0: -2.0, 10.0: -10.0, 100.0: -1.0 - (18.0 - 81 / 99)})
    assert failed_reward(Objectives()) == -19.0
    # up to 10x the budget, the penalty is the overshoot itself; past it, the same slope at 10x, then flatter
    assert hard_penalty(0.5) == 0.5 and hard_penalty(9.0) == 9.0
    assert (hard_penalty(9.0 + 1e-6) - 9.0) / 1e-6 == pytest.approx(1.0, rel=1e-5)


def test_the_scorer_ranks_a_failed_evaluation_below_one_far_over_a_hard_budget(tmp_path):
    """Through the search's own scorer: an evaluation that failed against a network measured 10x (and 1000x)
    over a hard model-size budget; the selection helpers a strategy ranks with put the failure last."""
    from na_toolkit.search.components import build_components
    from na_toolkit.search.config import load_config
    from na_toolkit.search.scorer import Scorer
    from na_toolkit.search.selection import best_evaluated, tournament
    from na_toolkit.search.strategy import Candidate
    from na_toolkit.search.summary import Counters
    from na_toolkit.store.base import EvaluationRecord

    tk = default_toolkit()
    doc = config_doc(NB201_SEARCH, tmp_path, devices={}, budgets={"model_size_bytes": {"limit": 1e3, "hard": True}})
    components = build_components(load_config(doc, toolkit=tk), tk)
    try:
        scorer = Scorer(components, Counters())
        arch = get_seed("nb201")

        def record(metrics, error=None):
            return EvaluationRecord(0, 1, arch.hash, {}, metrics, {}, error, 0.0)

        failed, _ = scorer.real_score(arch, record({}, "RuntimeError: CUDA out of memory"))
        over = {
            x: scorer.real_score(arch, record({"accuracy": 0.9, "model_size_bytes": 1e3 * x}))[0] for x in (10, 1000)
        }
    finally:
        components.close()
    assert not failed.feasible and failed.reward == failed_reward(components.config.objectives)
    assert over[10].hard_violations == ("model_size_bytes",) and failed.reward < over[1000].reward < over[10].reward

    rows = (("failed", failed), ("x10", over[10]), ("x1000", over[1000]))

    class Ctx:  # the evaluated candidates as a strategy's context holds them
        evaluated = {h: (Candidate(arch, (), None, h), s) for h, s in rows}

    assert [c.origin for c in best_evaluated(Ctx())] == ["x10", "x1000", "failed"]
    members = [(Candidate(arch, (), None, "failed"), failed), (Candidate(arch, (), None, "x1000"), over[1000])]
    assert tournament(members, 2, np.random.default_rng(0)).origin == "x1000"  # evolution's parent

"""The public strategy toolkit (na_toolkit.search.selection, docs/plugin_hooks.md "The strategy toolkit") and
the strategy conformance check (`na_toolkit.testing.check_strategy`, docs/testing.md).

A third-party plugin (tests/frontier_strategy_plugin.py) written against public names only passes the
conformance check, runs in a real search seed for seed, and does what it says: its proposals start from the
Pareto front and come ranked by its own key. The check itself catches a strategy that draws from the global
RNG, one whose candidates' moves do not rebuild their network, and one that swallows unknown options.
"""

from __future__ import annotations

import numpy as np
import pytest

import frontier_strategy_plugin
import na_toolkit
from conftest import NB201_SEARCH, config_doc, default_toolkit, evaluated_in_order
from na_toolkit.controller.choosers import pick, sample, temperature
from na_toolkit.errors import ConfigError
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.pareto import MAX, MIN, Objective
from na_toolkit.search.selection import (
    StartPool,
    best_evaluated,
    fill_with_walks,
    pareto_evaluated,
    rank_proposals,
    seed_candidate,
    tournament,
    ucb,
    walk_from,
)
from na_toolkit.search.strategy import Candidate, Score, Strategy, random_walk
from na_toolkit.testing import ConformanceError, StrategyCheckContext, check_strategy

MOVES = ("insert_conv", "scale")
NA_SMALL = {"episodes": 4, "updates": 2, "explore_episodes": 4}


@pytest.fixture(scope="module")
def toolkit():
    return load_toolkit(extra_plugins=(frontier_strategy_plugin,))  # entry points: the NB201 plugin too


def _context(seed: int = 0) -> StrategyCheckContext:
    tk = default_toolkit()
    return StrategyCheckContext(tk.seed("simple-cnn"), [tk.moves.get(m) for m in MOVES], seed)


def _evaluate_walks(ctx: StrategyCheckContext, count: int) -> list[Candidate]:
    cands = fill_with_walks(ctx, count, lambda: seed_candidate(ctx), 2, "t", tries=20 * count)
    for c in cands:
        ctx.evaluate(c)
    return cands


# ---- the pieces --------------------------------------------------------------------------------------------
def test_best_evaluated_puts_feasible_first_then_the_key_and_skips_predictions():
    ctx = _context()
    rows = {
        "a": Score(0.2, {}, True, real=True),
        "b": Score(0.9, {}, False, real=True),  # the best reward, but breaks a budget
        "c": Score(0.5, {}, True, real=True),
        "d": Score(0.99, {}, True, real=False),  # predicted only: never an elite
    }
    ctx.evaluated.update({h: (Candidate(ctx.seed_arch, (), None, h), s) for h, s in rows.items()})
    assert [c.origin for c in best_evaluated(ctx)] == ["c", "a", "b"]
    assert [c.origin for c in best_evaluated(ctx, 1)] == ["c"]
    assert [c.origin for c in best_evaluated(ctx, key=lambda s: -s.reward)] == ["a", "c", "b"]


def test_pareto_evaluated_keeps_the_non_dominated_in_evaluation_order():
    ctx = _context()
    points = {"a": (0.9, 5.0), "b": (0.8, 2.0), "c": (0.7, 3.0), "d": (0.9, 6.0), "e": (0.95, 9.0)}
    for h, (acc, size) in points.items():
        score = Score(acc, {"accuracy": acc, "model_size_bytes": size, "latency_ms@x": 1.0}, real=True)
        ctx.evaluated[h] = (Candidate(ctx.seed_arch, (), None, h), score)
    ctx.evaluated["f"] = (Candidate(ctx.seed_arch, (), None, "f"), Score(-1.0, {}, real=True))  # failed
    assert [c.origin for c in pareto_evaluated(ctx)] == ["a", "b", "e"]
    only_accuracy = [Objective("accuracy", MAX)]
    assert [c.origin for c in pareto_evaluated(ctx, only_accuracy)] == ["e"]
    assert [c.origin for c in pareto_evaluated(ctx, [Objective("model_size_bytes", MIN)])] == ["b"]


def test_start_pool_draws_the_seed_while_empty_without_touching_the_rng_and_members_otherwise():
    ctx = _context()
    seed = seed_candidate(ctx)
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state
    assert StartPool(seed).draw(rng, 3) == [seed] * 3 and rng.bit_generator.state == state
    members = tuple(_evaluate_walks(ctx, 3))
    drawn = StartPool(seed, members, 0.0).draw(rng, 20)
    hashes = {c.hash for c in drawn}
    assert hashes <= {c.hash for c in members} and len(hashes) > 1
    assert StartPool(seed, members, 1.0).draw(rng, 5) == [seed] * 5
    with pytest.raises(ConfigError, match=r"seed_probability must be in \[0, 1\]"):
        StartPool(seed, members, 1.5)


def test_rank_proposals_orders_by_the_key_and_keeps_budget_breakers_only_to_make_up_n():
    ctx = _context()
    cands = {f"h{i}": Candidate(ctx.seed_arch, (), None, f"h{i}") for i in range(4)}
    hard = ("latency_ms@x",)
    scores = {
        "h0": Score(0.1, {}, uncertainty=0.5),
        "h1": Score(0.3, {}),
        "h2": Score(0.9, {}, False, violations=hard, hard_violations=hard),
        "h3": Score(0.2, {}, uncertainty=0.0),
    }
    assert [c.origin for c in rank_proposals(cands, scores, 2)] == ["h1", "h3"]
    assert [c.origin for c in rank_proposals(cands, scores, 2, key=ucb(1.0))] == ["h0", "h1"]
    assert [c.origin for c in rank_proposals(cands, scores, 1, keep=3)] == ["h1", "h3", "h0"]
    assert [c.origin for c in rank_proposals(cands, scores, 4)][-1] == "h2"  # only to make up n
    with pytest.raises(ConfigError, match="have no score"):
        rank_proposals(cands, {"h0": scores["h0"]}, 1)
    with pytest.raises(ConfigError, match="kappa >= 0"):
        ucb(-1.0)


def test_walks_and_fill_ups_carry_their_starts_moves_and_skip_what_is_known():
    ctx = _context()
    start = _evaluate_walks(ctx, 1)[0]
    walk = walk_from(ctx, start, 3, "w")
    assert walk and all(c.moves[: len(start.moves)] == start.moves for c in walk)
    assert [len(c.moves) for c in walk] == list(range(len(start.moves) + 1, len(start.moves) + 1 + len(walk)))
    new = fill_with_walks(ctx, 5, lambda: start, 2, "f", tries=100, exclude={walk[0].hash})
    hashes = {c.hash for c in new}
    assert len(new) == 5 and len(hashes) == 5 and walk[0].hash not in hashes
    assert not hashes & (set(ctx.evaluated) | {ctx.seed_arch.hash})
    assert all(c.moves[: len(start.moves)] == start.moves and c.origin == "f" for c in new)


def test_fill_with_walks_from_the_seed_is_random_search_draw_for_draw():
    """`random` is `fill_with_walks` from the seed: the same draws as walking by hand."""
    a, b = _context(3), _context(3)
    filled = fill_with_walks(a, 4, lambda: seed_candidate(a), 3, "r", tries=80)
    by_hand: list[Candidate] = []
    for _ in range(80):
        if len(by_hand) == 4:
            break
        walk = random_walk(b.seed_arch, b.move_types, b.rng, int(b.rng.integers(1, 4)), "r")
        if walk is not None and walk.hash not in {c.hash for c in by_hand} | {b.seed_arch.hash}:
            by_hand.append(walk)
    assert [c.hash for c in filled] == [c.hash for c in by_hand]


def test_tournament_takes_the_best_of_its_sample():
    ctx = _context()
    members = [(Candidate(ctx.seed_arch, (), None, str(i)), Score(float(i), {})) for i in range(5)]
    assert tournament(members, 5, np.random.default_rng(0)).origin == "4"
    assert tournament(members, 5, np.random.default_rng(0), key=lambda s: -s.reward).origin == "0"
    with pytest.raises(ConfigError, match=r"sample must be 1\.\.5"):
        tournament(members, 6, np.random.default_rng(0))


def test_temperature_sharpens_or_flattens_the_policy():
    probs = np.array([0.7, 0.0, 0.2, 0.1])
    draws = {t: [pick(probs, np.random.default_rng(i), temperature(t)) for i in range(200)] for t in (0.05, 1, 50)}
    assert set(draws[0.05]) == {0} and 1 not in set(draws[50]) and len(set(draws[50])) == 3
    assert draws[1] == [pick(probs, np.random.default_rng(i), sample) for i in range(200)]
    with pytest.raises(ConfigError, match="finite t > 0"):
        temperature(0)


# ---- the conformance check -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, options, across",
    [
        ("random", {}, True),
        ("evolution", {"population": 4, "sample": 2}, True),
        ("neural-architect", NA_SMALL, True),
        ("neural-architect", {**NA_SMALL, "scoring_budget": 4}, False),  # the class above: spare a process (6 s)
        ("frontier-walks", {}, True),
        ("pareto-architect", {**NA_SMALL, "temperature": 2.0}, True),
    ],
)
def test_the_built_in_and_the_plugins_strategies_pass_the_conformance_check(name, options, across, toolkit):
    result = check_strategy(name, toolkit, options=options, moves=MOVES, across_processes=across)
    assert result.name == name and result.evaluated > 1 and len(result.proposed) == 3
    assert result.across_processes == across  # a fresh process of another hash seed proposed the same


class _GlobalRandom(Strategy):
    name = "global-random"
    description = "walks drawn from numpy's global RNG"

    def ask(self, n):
        rng = np.random.default_rng(np.random.randint(2**31))  # the global state: not a function of the seed
        walks = (random_walk(self.context.seed_arch, self.context.move_types, rng, 2) for _ in range(n))
        return [c for c in walks if c is not None]


class _NoPath(Strategy):
    name = "no-path"
    description = "candidates whose moves do not lead to them"

    def ask(self, n):
        walk = random_walk(self.context.seed_arch, self.context.move_types, self.context.rng, 2)
        return [Candidate(walk.arch, walk.moves[:1], walk.parent, self.name)]


class _Swallows(Strategy):
    name = "swallows"
    description = "takes any option and ignores it"

    def __init__(self, context, **options):
        super().__init__(context)

    def ask(self, n):
        return [random_walk(self.context.seed_arch, self.context.move_types, self.context.rng, 1)]


def _plugin_of(cls):
    class Plugin:
        @staticmethod
        @na_toolkit.hookimpl
        def na_register_strategies(registry):
            registry.add(cls)

    return Plugin


@pytest.mark.parametrize(
    "cls, message",
    [
        (_GlobalRandom, "changed the global numpy or random RNG state: draw every random number from context.rng"),
        (_NoPath, r"round 0 proposal 0: its 1 moves, replayed from the seed, build \w+, not its network"),
        (_Swallows, "accepts the unknown option 'no_such_option_'"),
    ],
)
def test_the_check_catches_a_broken_strategy(cls, message):
    tk = load_toolkit(entry_points=False, extra_plugins=(_plugin_of(cls),))
    with pytest.raises(ConformanceError, match=f"strategy {cls.name!r}.*{message}"):
        check_strategy(cls.name, tk, moves=MOVES)


# ---- the plugin in a search ------------------------------------------------------------------------------
def test_frontier_walks_start_from_the_pareto_front_and_come_ranked_by_its_key():
    def walked(seed: int) -> StrategyCheckContext:
        ctx = _context(seed)
        _evaluate_walks(ctx, 6)
        return ctx

    # a history whose front leaves some networks out (which seed gives one depends on the moves' spaces)
    ctx = next(c for c in map(walked, range(20)) if 0 < len(pareto_evaluated(c)) < len(c.evaluated))
    strat = frontier_strategy_plugin.FrontierWalks(ctx, seed_probability=0.0, size_weight=2.0)
    front = pareto_evaluated(ctx)
    out = strat.ask(3)
    assert len(out) == 3
    # every proposal extends a member of the front (its moves begin with the member's)
    assert all(any(c.moves[: len(f.moves)] == f.moves and len(c.moves) > len(f.moves) for f in front) for c in out)
    keys = [strat.key(s) for s in ctx.score([c.arch for c in out])]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize(
    "strategy, options",
    [("frontier-walks", {}), ("pareto-architect", {"episodes": 4, "updates": 1, "explore_episodes": 2})],
)
def test_the_plugins_strategies_run_a_real_search_seed_for_seed(strategy, options, toolkit, tmp_path):
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    runs = [
        evaluated_in_order(
            config_doc(NB201_SEARCH, tmp_path / str(i), evaluations=10, random_seed=2, search__per_round=3, strategy=s),
            toolkit,
        )
        for i, s in enumerate([{"name": strategy, "options": options}] * 2)
    ]
    assert len(runs[0]) == 10 and runs[0] == runs[1]
    assert any(origin == strategy for _h, origin, _r in runs[0])

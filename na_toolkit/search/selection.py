"""The pieces of a strategy's policy, public: where its episodes start, how it ranks networks, how it explores
with random walks. The built-in strategies are written with them (`neural-architect` draws its starts with
`StartPool`, ranks its proposals with `rank_proposals`, fills an ask up with `fill_with_walks`; `random` is
`fill_with_walks` from the seed, and so is `evolution`'s first population, whose parents `tournament`
picks), so a plugin strategy that uses them behaves as the built-ins do, seed for seed (docs/plugin_hooks.md,
"The strategy toolkit").

Every function draws its random numbers from the RNG it is given (a strategy passes `context.rng`), in a
documented order, so a strategy built on them stays a function of the search's seed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .pareto import MAX, MIN, Objective, pareto_front
from .strategy import Candidate, Score, SearchContext, random_walk, walk_steps

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

#: a ranking key: a score's figure of merit, higher first
ScoreKey = Callable[[Score], float]


def by_reward(score: Score) -> float:
    """The default key: the reward (budget penalties included)."""
    return score.reward


def ucb(kappa: float) -> ScoreKey:
    """The key `reward + kappa * uncertainty` (an upper confidence bound: what the loop evaluates first, with
    kappa = search.ucb_kappa; neural-architect's step reward with kappa = its explore_kappa)."""
    if isinstance(kappa, bool) or not isinstance(kappa, int | float) or not kappa >= 0:
        raise ConfigError(f"ucb takes a kappa >= 0 (a number), got {kappa!r}")

    def key(score: Score) -> float:
        return score.reward + kappa * score.uncertainty

    key.__name__ = f"ucb_{kappa:g}"
    return key


def seed_candidate(context: SearchContext) -> Candidate:
    """The search's seed network as a start: no moves, origin "seed"."""
    return Candidate(context.seed_arch, (), None, "seed")


def best_evaluated(context: SearchContext, k: int | None = None, key: ScoreKey = by_reward) -> list[Candidate]:
    """The evaluated candidates with a real (measured) score, best first: feasible ones (no budget broken)
    before the others, each group by `key` (highest first), ties in the order they were evaluated; the first
    `k` of them (all with None). neural-architect's elites are `best_evaluated(context, elites)`."""
    rows = [(c, s) for c, s in context.evaluated.values() if s.real]
    rows.sort(key=lambda cs: (not cs[1].feasible, -key(cs[1])))
    return [c for c, _ in (rows if k is None else rows[:k])]


def score_objectives(scores: Sequence[Score]) -> list[Objective]:
    """The search's Pareto objectives as its scores show them: accuracy (maximised), model size and each
    device's latency (`latency_ms@DEVICE`, minimised), those that some score has."""
    names = {m for s in scores for m in s.metrics}
    out = [Objective(m, MAX) for m in ("accuracy",) if m in names]
    out += [Objective(m, MIN) for m in ("model_size_bytes",) if m in names]
    out += [Objective(m, MIN) for m in sorted(names) if m.startswith("latency_ms@")]
    return out


def pareto_evaluated(context: SearchContext, objectives: Sequence[Objective] | None = None) -> list[Candidate]:
    """The evaluated candidates on the Pareto front of their real scores, in the order they were evaluated
    (default objectives: `score_objectives`, those of the search's report; a score missing one of them, a
    failed evaluation, is never on it). Budgets play no part: a member may break one."""
    rows = [(c, s) for c, s in context.evaluated.values() if s.real]
    objs = list(score_objectives([s for _c, s in rows]) if objectives is None else objectives)
    if not objs:
        return []
    rows = [(c, s) for c, s in rows if all(o.metric in s.metrics for o in objs)]
    return [rows[i][0] for i in pareto_front([s.metrics for _c, s in rows], objs)]


def tournament(
    members: Sequence[tuple[Candidate, Score]], sample: int, rng: np.random.Generator, key: ScoreKey = by_reward
) -> Candidate:
    """Tournament selection: `sample` distinct members drawn uniformly (one `rng.choice` without
    replacement), the one with the highest `key` wins (the first drawn of a tie). `evolution` picks its
    parents this way."""
    if not 1 <= sample <= len(members):
        raise ConfigError(f"tournament: sample must be 1..{len(members)} (the members), got {sample!r}")
    idx = rng.choice(len(members), size=sample, replace=False)
    return max((members[int(i)] for i in idx), key=lambda m: key(m[1]))[0]


@dataclass(frozen=True)
class StartPool:
    """Where episodes and walks start: the seed with probability `seed_probability`, else a member of `pool`
    drawn uniformly (always the seed while the pool is empty)."""

    seed: Candidate
    pool: tuple[Candidate, ...] = ()
    seed_probability: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.seed_probability <= 1.0:
            raise ConfigError(f"StartPool.seed_probability must be in [0, 1], got {self.seed_probability!r}")

    @classmethod
    def best(cls, context: SearchContext, k: int, seed_probability: float = 0.0) -> StartPool:
        """From the `k` best evaluated (`best_evaluated`): neural-architect's starts (k = its `elites`)."""
        return cls(seed_candidate(context), tuple(best_evaluated(context, k)), seed_probability)

    @classmethod
    def pareto(cls, context: SearchContext, seed_probability: float = 0.0) -> StartPool:
        """From the Pareto front of the evaluated (`pareto_evaluated`)."""
        return cls(seed_candidate(context), tuple(pareto_evaluated(context)), seed_probability)

    def draw(self, rng: np.random.Generator, count: int) -> list[Candidate]:
        """`count` starts. Each draws `rng.random()` (the seed below `seed_probability`) and then, for a pool
        member, `rng.integers(len(pool))`; with an empty pool nothing is drawn."""
        out = []
        for _ in range(count):
            if not self.pool or rng.random() < self.seed_probability:
                out.append(self.seed)
            else:
                out.append(self.pool[int(rng.integers(len(self.pool)))])
        return out


def rank_proposals(
    found: Mapping[str, Candidate],
    scores: Mapping[str, Score],
    n: int,
    keep: int | None = None,
    key: ScoreKey = by_reward,
) -> list[Candidate]:
    """What to hand the loop for an `ask(n)`: the candidates of `found` (by hash; each scored in `scores`),
    best `key` first, the first `max(keep, n)` (default n) of those predicted to break no hard budget. Those
    that break one come last, and are returned only to make up n (a time model's prediction is exact, so
    evaluating one would usually be wasted). Ties keep `found`'s order."""
    missing = [h for h in found if h not in scores]
    if missing:
        raise ConfigError(f"rank_proposals: {len(missing)} candidates have no score (first: {missing[0]}); score them")
    order = sorted(found, key=lambda h: (bool(scores[h].hard_violations), -key(scores[h])))
    ok = [h for h in order if not scores[h].hard_violations]
    keep = max(n if keep is None else keep, n)
    chosen = ok[:keep] if len(ok) >= n else order[: max(n, len(ok))]
    return [found[h] for h in chosen]


def walk_from(
    context: SearchContext, start: Candidate, steps: int, origin: str, rng: np.random.Generator | None = None
) -> list[Candidate]:
    """A uniformly random walk of up to `steps` moves (`random_move`) from `start`: every candidate it
    reaches, in order, each with `start`'s moves and the walk's so far (fewer at a dead end)."""
    rng = context.rng if rng is None else rng
    out: list[Candidate] = []
    cand = start
    for move, child in walk_steps(start.arch, context.move_types, rng, steps):
        cand = Candidate(child, cand.moves + (move,), cand.arch.hash, origin)
        out.append(cand)
    return out


def fill_with_walks(
    context: SearchContext,
    count: int,
    starts: Callable[[], Candidate],
    max_steps: int,
    origin: str,
    tries: int,
    exclude: Collection[str] = (),
) -> list[Candidate]:
    """Up to `count` new candidates, each the end of a random walk of 1..`max_steps` moves (`random_walk`)
    from a start that `starts()` gives, with the start's moves before the walk's; a network evaluated, the
    seed, one in `exclude` or one already drawn is drawn again, `tries` walks in all. Per walk: `starts()`
    first, then `rng.integers(1, max_steps + 1)` steps, then the walk's moves. `random` is this from the seed;
    neural-architect tops an ask up with it when its episodes found fewer than n new networks; `evolution`
    draws its first population with it."""
    rng = context.rng
    evaluated = context.evaluated
    seed_hash = context.seed_arch.hash
    new: dict[str, Candidate] = {}
    for _ in range(tries):
        if len(new) >= count:
            break
        start = starts()
        walk = random_walk(start.arch, context.move_types, rng, int(rng.integers(1, max_steps + 1)), origin)
        if walk is None:
            continue
        h = walk.hash
        if h in evaluated or h in exclude or h in new or h == seed_hash:
            continue
        new[h] = Candidate(walk.arch, start.moves + walk.moves, walk.parent, walk.origin)
    return list(new.values())

"""Built-in strategies plugin: `random` (random walks of moves from the seed), `evolution` (regularized
evolution, Real et al. 2019) and `neural-architect` (the RL controller, default; its class lives in
na_toolkit/search/neural_architect.py).

All of them draw every random number from `context.rng`, so a search is a deterministic function of its
seed and of the ground truth it is served (what `--resume` relies on).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Self

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

import na_toolkit
from na_toolkit import validation
from na_toolkit.moves import Move
from na_toolkit.search.selection import fill_with_walks, seed_candidate, tournament
from na_toolkit.search.strategy import Candidate, Score, SearchContext, Strategy, random_move
from na_toolkit.validation import validate_options

#: each count bounded: past it a value is a typo that hung the search (`max_moves = 1e18`: a walk never ends)
_MAX_MOVES = Field(3, ge=1, le=1_000, description="a random walk is 1..max_moves valid moves from the seed")
_OVERSAMPLE = Field(
    1,
    ge=1,
    le=1_000,
    description="propose oversample × n; the loop evaluates the n best by predicted reward and "
    "uncertainty (1: the plain algorithm)",
)


class RandomSearch(Strategy):
    """Random walks from the seed: each candidate is 1..max_moves random valid moves away from it (options:
    `RandomSearch.Options`, docs/options.md)."""

    name = "random"
    description = "random walks of 1..max_moves valid moves from the seed"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        max_moves: int = _MAX_MOVES
        tries: int = Field(20, ge=1, le=10_000, description="draws per candidate before giving up on a new one")
        oversample: int = _OVERSAMPLE

    def __init__(self, context: SearchContext, max_moves: int = 3, tries: int = 20, oversample: int = 1):
        super().__init__(context, max_moves=max_moves, tries=tries, oversample=oversample)
        o = validate_options(self.Options, self.options, "strategy.options")
        self.max_moves, self.tries, self.oversample = o.max_moves, o.tries, o.oversample

    def ask(self, n: int) -> list[Candidate]:
        seed = seed_candidate(self.context)  # every walk starts from the seed; `tries` walks per candidate
        n *= self.oversample
        return fill_with_walks(self.context, n, lambda: seed, self.max_moves, self.name, tries=n * self.tries)


class RegularizedEvolution(Strategy):
    """Regularized ("aging") evolution (Real et al., AAAI 2019, Algorithm 1): a population of the latest
    `population` evaluated candidates; each child is the winner of a tournament of `sample` members drawn
    at random, mutated by one valid move; every result joins the population and the oldest member leaves.
    Until the population is full, candidates are random walks from the seed (max_moves, as `random`:
    `selection.fill_with_walks`, so never a network already evaluated or proposed); should the walks find no
    new network while it is still short (a small space near the seed), children of the members so far.
    Fitness is the reward (budget penalties included). A mutation that gives an already evaluated network is
    drawn again up to `tries` times (a repeat costs no evaluation here, but teaches nothing). `oversample`
    as in `random` (options: `RegularizedEvolution.Options`, docs/options.md)."""

    name = "evolution"
    description = "regularized evolution (Real et al. 2019): tournament selection, one-move mutation, aging"

    class Options(validation.Options):
        """`sample` must not exceed `population`."""

        model_config = ConfigDict(strict=True)

        population: int = Field(10, ge=2, le=1_000_000, description="the latest evaluated candidates that breed")
        sample: int = Field(3, ge=1, le=1_000_000, description="tournament size: members drawn to pick a parent")
        max_moves: int = _MAX_MOVES
        tries: int = Field(
            10, ge=1, le=10_000, description="mutations drawn per child until one gives an unseen network"
        )
        oversample: int = _OVERSAMPLE

        @model_validator(mode="after")
        def _sample_fits(self) -> Self:
            if self.sample > self.population:
                raise PydanticCustomError(
                    "sample_population",
                    "sample ({sample}) must not exceed population ({population})",
                    {"sample": self.sample, "population": self.population},
                )
            return self

    def __init__(
        self,
        context: SearchContext,
        population: int = 10,
        sample: int = 3,
        max_moves: int = 3,
        tries: int = 10,
        oversample: int = 1,
    ):
        super().__init__(
            context, population=population, sample=sample, max_moves=max_moves, tries=tries, oversample=oversample
        )
        o = validate_options(self.Options, self.options, "strategy.options")
        self.population_size, self.sample = o.population, o.sample
        self.max_moves, self.tries, self.oversample = o.max_moves, o.tries, o.oversample
        self.population: deque[tuple[Candidate, Score]] = deque()

    def _mutate(self, seen: set[str]) -> Candidate | None:
        ctx = self.context
        # a tournament of `sample` (of all members while a small space leaves the population short of it)
        parent = tournament(self.population, min(self.sample, len(self.population)), ctx.rng)
        child = None
        for _ in range(self.tries):
            step = random_move(parent.arch, ctx.move_types, ctx.rng)
            if step is None:
                return None
            move, arch = step
            child = Candidate(arch, parent.moves + (move,), parent.hash, self.name)
            if arch.hash not in seen:
                break
        return child

    def ask(self, n: int) -> list[Candidate]:
        ctx = self.context
        count = n * self.oversample
        out: list[Candidate] = []
        if len(self.population) < self.population_size:  # a batch is all initial or all children ...
            seed = seed_candidate(ctx)
            out = fill_with_walks(ctx, count, lambda: seed, self.max_moves, self.name, tries=count * self.tries)
            if out or not self.population:
                return out
            # ... unless the walks find no new network (a small space near the seed): then children of the
            # population so far, rather than a stalled search
        seen = set(ctx.evaluated) | {ctx.seed_arch.hash}
        for _ in range(count):
            cand = self._mutate(seen)
            if cand is not None:
                seen.add(cand.hash)
                out.append(cand)
        return out

    def tell(self, results: list[tuple[Candidate, Score]]) -> None:
        for cand, score in results:
            self.population.append((cand, score))
            while len(self.population) > self.population_size:
                self.population.popleft()  # aging: the oldest leaves, however fit

    def state_dict(self) -> dict[str, Any]:
        return {
            "population": [
                {
                    "arch": c.arch.to_json(),
                    "moves": [m.to_json() for m in c.moves],
                    "parent": c.parent,
                    "origin": c.origin,
                    "reward": s.reward,
                    "feasible": s.feasible,
                    "real": s.real,
                }
                for c, s in self.population
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from na_toolkit.ir.architecture import Architecture

        self.population = deque()
        for m in state["population"]:
            cand = Candidate(
                Architecture.from_json(m["arch"], self.context.seed_arch.layer_types),
                tuple(Move(x["operation"], x["params"]) for x in m["moves"]),
                m["parent"],
                m["origin"],
            )
            self.population.append((cand, Score(m["reward"], {}, m["feasible"], real=m["real"])))


@na_toolkit.hookimpl
def na_register_strategies(registry):
    registry.add(RandomSearch)
    registry.add(RegularizedEvolution)
    from na_toolkit.search.neural_architect import NeuralArchitectStrategy  # the RL controller (docs/controller.md)

    registry.add(NeuralArchitectStrategy)

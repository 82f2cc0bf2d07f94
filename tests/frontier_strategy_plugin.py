"""A third-party strategy plugin, as a package would ship it, for tests/test_strategy_plugin.py: two strategies
written against the public strategy toolkit only (`na_toolkit.search.selection`, the public hooks of
`NeuralArchitectStrategy`, `na_toolkit.controller.choosers`), no underscore names.

- `frontier-walks`: random walks from the Pareto front of what was evaluated (not from the best by reward),
  scored with `context.score`, ranked by the user's own key (reward minus a model-size penalty).
- `pareto-architect`: neural-architect whose episodes start from the Pareto front and whose policy samples at
  a temperature.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

import na_toolkit
from na_toolkit import validation
from na_toolkit.controller.choosers import temperature
from na_toolkit.search.neural_architect import NeuralArchitectStrategy
from na_toolkit.search.selection import StartPool, fill_with_walks, rank_proposals
from na_toolkit.search.strategy import Candidate, Score, Strategy
from na_toolkit.validation import validate_options


class FrontierWalks(Strategy):
    name = "frontier-walks"
    description = "random walks from the evaluated Pareto front, ranked by reward minus a size penalty"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        walks: int = Field(4, ge=1, description="walks scored per evaluation asked for")
        max_moves: int = Field(2, ge=1, description="moves per walk, at most")
        seed_probability: float = Field(0.2, ge=0, le=1, description="share of walks that start from the seed")
        size_weight: float = Field(0.05, ge=0, description="reward lost per MB of model size")

    def __init__(self, context, **options):
        super().__init__(context, **options)
        o = validate_options(self.Options, self.options, "strategy.options")
        self.walks, self.max_moves = o.walks, o.max_moves
        self.seed_probability, self.size_weight = o.seed_probability, o.size_weight

    def key(self, score: Score) -> float:
        """The user's own figure of merit: the reward, less `size_weight` per MB of model size."""
        return score.reward - self.size_weight * score.metrics.get("model_size_bytes", 0.0) / 1e6

    def ask(self, n: int) -> list[Candidate]:
        ctx = self.context
        starts = StartPool.pareto(ctx, self.seed_probability)
        walks = fill_with_walks(
            ctx, self.walks * n, lambda: starts.draw(ctx.rng, 1)[0], self.max_moves, self.name, tries=20 * n
        )
        scores = dict(zip([c.hash for c in walks], ctx.score([c.arch for c in walks])))
        return rank_proposals({c.hash: c for c in walks}, scores, n, key=self.key)


class ParetoArchitect(NeuralArchitectStrategy):
    name = "pareto-architect"
    description = "neural-architect from the evaluated Pareto front, its policy sampled at a temperature"

    class Options(NeuralArchitectStrategy.Options):
        temperature: float = Field(1.5, gt=0, description="the policy's sampling temperature (1: as trained)")

    def __init__(self, context, **options):
        super().__init__(context, **options)
        self.choose = temperature(validate_options(self.Options, self.options, "strategy.options").temperature)

    def starts(self, count: int) -> list[Candidate]:
        return StartPool.pareto(self.context, self.seed_probability).draw(self.context.rng, count)

    def decide(self, archs):
        return self.controller.decide(archs, self.context.rng, choose=self.choose)


@na_toolkit.hookimpl
def na_register_strategies(registry):
    registry.add(FrontierWalks)
    registry.add(ParetoArchitect)

"""The `neural-architect` strategy: an actor-critic controller that edits networks move by move, trained on
predicted rewards, whose best proposals the search loop pays to evaluate.

Each `ask(n)`:

1. `updates` times, run `episodes` episodes of `episode_length` moves in lockstep. An episode starts from
   an elite (one of the `elites` best evaluated candidates, feasible first) or, with probability
   `seed_probability` (always, before anything but the seed is known), from the seed network. Each step
   samples a move from the policy (invalid values masked) and applies it.
2. Every network reached is scored with `context.score` (predictors + time models + reward; cheap), or
   with its ground truth when it was evaluated already. The step reward is r = R(s') + κ·σ(s') (κ: the
   loop's UCB weight, so the controller learns to reach what the loop will want to evaluate), and one
   actor-critic update is made with A = r + γ·V(s') − V(s) and an entropy bonus.
3. The networks reached that were never evaluated are returned, best first by R + κ·σ, `proposals`·n of
   them; those predicted to break a hard budget are left out unless fewer than n others are left, then only
   to make up n (with a table or analytic time model that prediction is exact, so they would only waste an
   evaluation).

With a `scoring_budget` B, at most B·n networks are scored per ask(n) (see `ask_budgeted`): each episode
offers only its last network, the policy learns from that terminal reward credited to all its moves, and
what could not be scored is neither learned from nor proposed. `policy` switches the proposals' source for
ablations: "trained", "frozen" (never updated), "none" (walks only), "random" (`random_move` in its place).

The loop then evaluates the n most promising. The elites are read from the ground truth the context holds;
`tell` only feeds the real results of the policy's proposals back to it (`learn_from_evaluations`, under a
scoring budget). Everything random comes from `context.rng`, so a run is a function of its seed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from cachetools import LRUCache
from pydantic import ConfigDict, Field

from .. import validation
from ..errors import ComponentError, ConfigError
from ..ir.architecture import Architecture
from ..moves import Move, apply_admitted
from ..validation import validate_options
from .neural_architect_budget import Episode, Run, ask_budgeted, learn_from_results
from .neural_architect_unlimited import ask_unlimited
from .selection import StartPool, fill_with_walks, rank_proposals, walk_from
from .strategy import Candidate, Score, SearchContext, Strategy, random_move

if TYPE_CHECKING:
    from ..controller.policy import Controller

#: how much one update moves the entropy weight towards the entropy target (`entropy_target`)
ENTROPY_STEP = 1.5
#: the marker of the options that apply under a scoring budget only (set without one: a ConfigError)
BUDGET_ONLY: dict[str, Any] = {"scoring_budget_only": True}
#: the largest scoring budget: the walks of an update are built to a share of it, so a budget of 10^6 spent
#: minutes per update building walks (an audit's search took over 300 s for one evaluation; null took 13 s for 11)
MAX_SCORING_BUDGET = 10_000


def _budget_only(field: Any) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("scoring_budget_only"))


class NeuralArchitectStrategy(Strategy):
    """Options: `NeuralArchitectStrategy.Options` (docs/options.md); docs/controller.md has the ablations
    (`policy`, `explore_episodes = 0`) and the scoring budget."""

    name = "neural-architect"
    description = "the Neural Architect RL controller: actor-critic over registered moves on the network embedding"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        episode_length: int = Field(3, ge=1, le=1_000, description="T: moves per episode")
        episodes: int = Field(16, ge=1, le=10_000, description="episodes per update, run in lockstep")
        updates: int | None = Field(
            None, ge=1, le=10_000, description="actor-critic updates per ask (default: 4; 6 with a scoring_budget)"
        )
        elites: int = Field(20, ge=1, le=1_000_000, description="best evaluated candidates an episode may start from")
        seed_probability: float = Field(0.1, ge=0, le=1, description="probability an episode starts from the seed")
        gamma: float = Field(0.9, ge=0, le=1, description="discount of the advantage r + γ·V(s') − V(s)")
        entropy_weight: float = Field(0.05, ge=0, description="weight of the entropy bonus")
        value_weight: float = Field(0.5, ge=0, description="weight of the critic's loss")
        lr: float = Field(3e-3, ge=1e-8, description="Adam learning rate")
        proposals: int = Field(
            8, ge=1, le=10_000, description="candidates returned per evaluation the loop will pay for"
        )
        explore_kappa: float | None = Field(
            None, ge=0, description="weight of the predicted uncertainty in the step reward (default: search.ucb_kappa)"
        )
        train_embedding: Literal[True, False, "auto"] = Field(
            True, description='train the embedding with the policy (any network size; "auto": the same as true)'
        )
        hidden: int = Field(64, ge=4, le=65_536, description="width of the policy and value heads")
        torch_threads: int = Field(1, ge=1, le=1_024, description="torch CPU threads while the controller trains")
        transition_cache: int = Field(
            2048, ge=0, le=10_000_000, description="(network, move) results kept for repeated moves"
        )
        explore_episodes: int | None = Field(
            None,
            ge=0,
            le=100_000,
            description="uniformly random walks per update that join the proposals (default: 3 × episodes)",
        )
        scoring_budget: int | None = Field(
            None,
            ge=1,
            le=MAX_SCORING_BUDGET,
            description="networks the strategy may score (context.score) per evaluation asked for: at most "
            "scoring_budget × n per ask(n); null: unlimited (a budget past 10,000 would cost more than null: its "
            "walks are built to the budget)",
        )
        policy: Literal["trained", "frozen", "none", "random"] = Field(
            "trained",
            description='the proposals\' source (ablations): "trained" policy, "frozen" (never updated), "none" '
            '(walks only), "random" (uniformly random moves in the policy\'s place)',
        )
        reward_ranks: bool = Field(
            True,
            description="with a scoring budget: learn from an episode reward's rank in its batch",
            json_schema_extra=BUDGET_ONLY,
        )
        entropy_target: float | None = Field(
            None,
            ge=0,
            le=1,
            description="keep the policy's entropy near this share of its first update's: the entropy weight is "
            "multiplied by 1.5 after an update below it, divided by 1.5 after one above (null or 0: off)",
        )
        walk_share: float = Field(
            0.25,
            ge=0,
            le=1,
            description="with a scoring budget: the share of each update's scorings kept for the walks",
            json_schema_extra=BUDGET_ONLY,
        )
        risk_seeking: float | None = Field(
            0.1,
            ge=0,
            le=1,
            description="with a scoring budget: the policy learns only from this best share of each batch's "
            "episodes, by how far they clear its threshold (a search keeps its best network, not its mean; "
            "null or 0: off)",
            json_schema_extra=BUDGET_ONLY,
        )
        learn_from_evaluations: bool = Field(
            True,
            description="with a scoring budget: the policy also learns from the real results of the networks its "
            "episodes proposed, each by its rank among every network evaluated so far",
            json_schema_extra=BUDGET_ONLY,
        )

    def __init__(self, context: SearchContext, **options: Any):
        # the options, their defaults and ranges are `Options` (docs/options.md)
        super().__init__(context, **options)
        o = validate_options(self.Options, self.options, "strategy.options")
        self.episode_length, self.episodes, self.elites = o.episode_length, o.episodes, o.elites
        # unlimited scoring: the walks find the cells, 4 updates learn enough; under a scoring budget the
        # policy decides what gets scored at all, and 6 updates learn measurably more (docs/controller.md)
        self.updates = o.updates if o.updates is not None else (4 if o.scoring_budget is None else 6)
        self.seed_probability, self.gamma, self.lr, self.proposals = o.seed_probability, o.gamma, o.lr, o.proposals
        self.entropy_weight, self.value_weight = o.entropy_weight, o.value_weight
        if o.explore_kappa is None:
            config = getattr(context, "config", None)
            self.explore_kappa = float(config.search.ucb_kappa) if config is not None else 1.0
        else:
            self.explore_kappa = o.explore_kappa
        self.train_embedding = o.train_embedding is not False  # "auto" (older configs): trained at any size
        self.hidden, self.torch_threads, self.transition_cache = o.hidden, o.torch_threads, o.transition_cache
        self.explore_episodes = 3 * self.episodes if o.explore_episodes is None else o.explore_episodes
        self.scoring_budget, self.policy, self.walk_share = o.scoring_budget, o.policy, o.walk_share
        self.reward_ranks, self.risk_seeking = o.reward_ranks, o.risk_seeking or None
        self.learn_from_evaluations = o.learn_from_evaluations
        #: the policy's episodes whose end was proposed and whose result has not been told yet, by end hash
        #: (learn_from_evaluations; kept across asks for the async schedule, see `ask_budgeted`)
        self._proposed_runs: dict[str, Any] = {}
        # the policy's learning narrows it onto what the predictor likes most; a floor on its entropy keeps it
        # broad: measured under a scoring budget it trades early gains for late ones (docs/controller.md)
        self.entropy_target = o.entropy_target or None
        self._entropy_start: float | None = None  # the first update's entropy
        # set on without a budget: refused (they would do nothing); set off (0, false, null) is what they are then
        budget_only = sorted(
            n
            for n in o.model_fields_set
            if _budget_only(self.Options.model_fields[n]) and getattr(o, n) not in (None, 0, False)
        )
        if budget_only and self.scoring_budget is None:
            raise ConfigError(
                f"strategy.options: {', '.join(budget_only)} apply under a scoring budget only; set "
                "strategy.options.scoring_budget, or remove them"
            )
        if self.policy == "none" and self.explore_episodes == 0:
            raise ConfigError(
                'strategy.options: policy = "none" with explore_episodes = 0 leaves nothing to propose; '
                "enable the walks (explore_episodes >= 1) or a policy"
            )
        # drawn now, from the run's RNG: the controller's initial weights are a function of the run's seed
        self._torch_seed = int(context.rng.integers(2**31 - 1))
        self._controller: Controller | None = None
        # (network, move) -> child, least recently used dropped first
        self._children: LRUCache[tuple[str, str], Architecture] = LRUCache(maxsize=max(self.transition_cache, 1))
        self.stats: dict[str, float] = {}
        self.proposed_total = 0
        #: what the strategy did, for the controller plot and summary.json (see `report`)
        self.history: list[dict[str, float]] = []
        self.totals = {
            "asks": 0,
            "scored": 0,
            "max_scored_per_n": 0.0,
            "policy_proposals": 0,
            "walk_proposals": 0,
            # random walks that filled up an ask the policy and the walks left short of n (`_fill`)
            "fill_proposals": 0,
        }
        # predicted objectives of networks scored in earlier asks: a reward known for free (for training)
        self._memory: LRUCache[str, float] = LRUCache(maxsize=50_000)
        self._scored_now = 0

    # ---- the controller (built on first use: torch is imported only then) ------------------------------
    @property
    def controller(self) -> Controller:
        if self._controller is None:
            from ..controller.action_space import ActionSpace
            from ..controller.policy import Controller
            from ..embedding import ArchitectureTokenizer

            # the vocabulary is the registry the search's networks are built with (the seed's: every move
            # keeps it), so a plugin's layer type gets its own row
            # tokens again after every update (it empties the embedding cache): 4096 networks' (~7 MB)
            tokenizer = ArchitectureTokenizer.for_registry(self.context.seed_arch.layer_types, cache_size=4096)
            space = ActionSpace.from_move_types(self.context.move_types)
            # joint training: built on the embedding the neural predictor trains (share_embedding = true)
            shared = self.context.shared_embedding() if hasattr(self.context, "shared_embedding") else None
            kw: dict[str, Any] = shared.controller_options() if shared else {"tokenizer": tokenizer}
            kw.update(train_embedding=self.train_embedding, lr=self.lr, hidden=self.hidden)
            self._controller = Controller(space=space, seed=self._torch_seed, **kw)
            if shared is not None:  # a refit changes the shared weights: the cached embeddings go stale
                shared.listeners.append(self._controller.forget_embeddings)
        return self._controller

    # ---- moves -----------------------------------------------------------------------------------------
    def _apply(self, arch: Architecture, move: Move) -> Architecture | None:
        key = (arch.hash, json.dumps([move.name, move.params], sort_keys=True, default=str))
        child = self._children.get(key)
        if child is not None:
            return child
        op = next(o for o in self.context.move_types if o.name == move.name)
        child = apply_admitted(op, arch, move.params)
        if self.transition_cache:
            self._children[key] = child
        return child

    # ---- the policy's pieces, public (na_toolkit.search.selection): override them in a variant -------------
    def starts(self, count: int) -> list[Candidate]:
        """Where `count` episodes (and walks) start: the seed with probability `seed_probability`, else one
        of the `elites` best evaluated (`StartPool.best`). Override to start elsewhere, e.g.
        `StartPool.pareto(self.context, self.seed_probability).draw(self.context.rng, count)`."""
        return StartPool.best(self.context, self.elites, self.seed_probability).draw(self.context.rng, count)

    def objective(self, score: Score) -> float:
        """A network's figure of merit, higher better: what the policy learns from and the proposals are
        ranked by (`ucb(explore_kappa)`: reward + κ·uncertainty)."""
        return score.reward + self.explore_kappa * score.uncertainty

    def rank(self, found: dict[str, Candidate], scores: dict[str, Score], n: int) -> list[Candidate]:
        """The proposals of an ask(n): `rank_proposals` of what the episodes found, `proposals`·n of them by
        `objective`, those predicted to break a hard budget only to make up n."""
        chosen = rank_proposals(found, scores, n, keep=n * self.proposals, key=self.objective)
        self.proposed_total += len(chosen)
        return chosen

    # ---- ask / tell ------------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Candidate]:
        from ..torchutil import torch_threads

        with torch_threads(self.torch_threads):
            return self._ask(n)

    def _score(self, archs: list[Architecture]) -> list[Score]:
        """`context.score`, counted against the scoring budget of the ask."""
        self._scored_now += len(archs)
        return self.context.score(archs)

    def _ask(self, n: int) -> list[Candidate]:
        self._scored_now = 0
        out = ask_budgeted(self, n) if self.scoring_budget is not None else ask_unlimited(self, n)
        t = self.totals
        t["asks"] += 1
        t["scored"] += self._scored_now
        t["max_scored_per_n"] = max(t["max_scored_per_n"], self._scored_now / max(n, 1))
        t["policy_proposals"] += sum(c.origin in (self.name, f"{self.name}:uniform") for c in out)
        t["walk_proposals"] += sum(c.origin == f"{self.name}:explore" for c in out)
        t["fill_proposals"] += sum(c.origin == f"{self.name}:random" for c in out)
        return out

    def _episodes(self, evaluated: dict[str, Any]) -> tuple[list[Run], list[tuple[Architecture, Any, Candidate]]]:
        """`episodes` episodes of `episode_length` moves in lockstep, drawn from the policy (or, with policy =
        "random", from `random_move`). Returns each episode's run and every transition (s, decision, reached
        candidate) in step-major order."""
        ctx = self.context
        runs = [Run(Episode(c)) for c in self.starts(self.episodes)]
        transitions: list[tuple[Architecture, Any, Candidate]] = []
        for _step in range(self.episode_length):
            alive = [r for r in runs if r.episode.alive]
            if not alive:
                break
            archs = [r.episode.candidate.arch for r in alive]
            if self.policy == "random":
                steps: list[tuple[Any, Architecture | None]] = []
                for arch in archs:
                    step = random_move(arch, ctx.move_types, ctx.rng)
                    steps.append((None, None) if step is None else (step[0], step[1]))
                origin = f"{self.name}:uniform"
            else:
                decisions = self.decide(archs)
                if len(decisions) != len(archs):  # zip would drop the rest of the episodes' steps silently
                    raise ComponentError(
                        f"strategy {self.name!r}: decide() returned {len(decisions)} decisions for {len(archs)} "
                        "networks; return one per network (None where no move applies)"
                    )
                steps = [(d, None if d is None else self._apply(a, d.move)) for a, d in zip(archs, decisions)]
                origin = self.name
            for r, arch, (d, child) in zip(alive, archs, steps):
                e = r.episode
                if d is None or child is None:
                    e.alive = False
                    continue
                move = d if self.policy == "random" else d.move
                e.candidate = Candidate(child, e.candidate.moves + (move,), arch.hash, origin)
                r.steps.append((arch, None if self.policy == "random" else d, e.candidate))
                transitions.append(r.steps[-1])
        return runs, transitions

    def decide(self, archs: list[Architecture]) -> list[Any]:
        """One step of the policy's episodes: a move (a `Decision`, None where none applies) for each network,
        drawn from `context.rng`. The extension point of a variant (docs/plugin_hooks.md): override it to
        choose otherwise, e.g. `self.controller.decide(archs, self.context.rng, choose=top_k(3))`; the
        update then learns from the moves it returns."""
        return self.controller.decide(archs, self.context.rng)

    def adapt_entropy(self, entry: dict[str, float]) -> None:
        """After an update (`entry` holds its entropy): with an `entropy_target`, raise the entropy weight
        ×1.5 when the policy's entropy fell below the target share of its first update's, else lower it
        ÷1.5 (within 1e-3..2), as soft actor-critic tunes its temperature towards a target entropy (Haarnoja
        et al. 2018, arXiv:1812.05905). `entry` records the weight the update used."""
        entry["entropy_weight"] = self.entropy_weight
        if self.entropy_target is None:
            return
        if self._entropy_start is None:
            self._entropy_start = float(entry["entropy"])
        below = float(entry["entropy"]) < self.entropy_target * self._entropy_start
        factor = ENTROPY_STEP if below else 1 / ENTROPY_STEP
        self.entropy_weight = float(min(max(self.entropy_weight * factor, 1e-3), 2.0))

    def _record(self, entry: dict[str, float]) -> None:
        entry = {"ask": float(self.totals["asks"]), **entry}
        if self._controller is not None:
            entry["updates"] = float(self._controller.updates)
        self.history.append(entry)

    def _explore(
        self,
        found: dict[str, Candidate],
        evaluated: dict[str, Any],
        ends: list[Candidate] | None = None,
        count: int | None = None,
    ) -> list[Candidate]:
        """`explore_episodes` uniformly random walks (`walk_from`: an applicable operation, then values its
        masks admit, each drawn uniformly) from the same kind of starts: their networks join the proposals
        but not the policy's training batch (they were not drawn from the policy). They keep the proposals
        broad where the policy has learned to concentrate on what the predictor already likes. `ends` (when
        given) receives the last network of each walk; `count` walks instead of `explore_episodes`."""
        seed_hash = self.context.seed_arch.hash
        out: list[Candidate] = []
        for start in self.starts(self.explore_episodes if count is None else count):
            walk = walk_from(self.context, start, self.episode_length, f"{self.name}:explore")
            out += walk
            for cand in walk:
                if cand.hash not in evaluated and cand.hash != seed_hash:
                    found.setdefault(cand.hash, cand)
            if ends is not None and walk:
                ends.append(walk[-1])
        return out

    def _fill(self, found: dict[str, Candidate], scores: dict[str, Score], n: int, limit: int | None = None) -> None:
        """Too few new networks (a policy gone nearly deterministic around evaluated elites): add random
        walks from the episode starts (`fill_with_walks`), so the loop always has n new candidates when any
        exist (at most `limit` of them scored: the scoring budget left)."""
        count = n - len(found) if limit is None else min(n - len(found), limit)
        new = fill_with_walks(
            self.context,
            count,
            lambda: self.starts(1)[0],
            self.episode_length,
            f"{self.name}:random",
            tries=20 * n,
            exclude=found,
        )
        if new:
            for c, s in zip(new, self._score([c.arch for c in new])):
                scores[c.hash] = s
            found.update((c.hash, c) for c in new)

    def tell(self, results: list[tuple[Candidate, Score]]) -> None:
        """Elites and known rewards are read from `context.evaluated` at the next ask; with
        `learn_from_evaluations`, the policy learns from the real results of its episodes' proposals."""
        if self.learn_from_evaluations and self.policy == "trained" and self._proposed_runs:
            learn_from_results(self, results)  # and forgets them (async: an ask's results come one by one)

    # ---- persistence -----------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """What the strategy did, for summary.json's `controller` section and controller.png: one entry per
        update (mean predicted reward of the policy's proposals, entropy, losses, networks scored) and the
        totals (asks, networks scored, policy, walk and fill-up proposals returned)."""
        return {
            "policy": self.policy,
            "scoring_budget": self.scoring_budget,
            "updates": 0 if self._controller is None else self._controller.updates,
            "totals": dict(self.totals),
            "series": [dict(e) for e in self.history],
        }

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "torch_seed": self._torch_seed,
            "proposed_total": self.proposed_total,
            "report": self.report(),
        }
        if self.scoring_budget is not None:  # decides what is scored next: part of the state
            state["memory"] = dict(self._memory.items())
        if self._entropy_start is not None:  # the adapted entropy weight (entropy_target)
            state["entropy"] = {"weight": self.entropy_weight, "start": self._entropy_start}
        if self._controller is not None:
            state["controller"] = self._controller.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._torch_seed = int(state["torch_seed"])
        self.proposed_total = int(state.get("proposed_total", 0))
        report = state.get("report") or {}
        self.history = [dict(e) for e in report.get("series", [])]
        self.totals.update(report.get("totals", {}))
        self._memory.clear()
        self._memory.update({str(h): float(v) for h, v in (state.get("memory") or {}).items()})
        if "entropy" in state:
            self.entropy_weight = float(state["entropy"]["weight"])
            self._entropy_start = float(state["entropy"]["start"])
        self._controller = None
        if "controller" in state:
            self.controller.load_state_dict(state["controller"])

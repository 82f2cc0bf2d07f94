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
   them; those predicted to break a hard budget are left out unless nothing else is left (with a table
   or analytic time model that prediction is exact, so they would only waste an evaluation).

The loop then evaluates the n most promising. `tell` needs no work: the elites are read from the ground
truth the context holds. Everything random comes from `context.rng`, so a run is a function of its seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from cachetools import LRUCache
from pydantic import ConfigDict, Field

from .. import validation
from ..errors import NAToolkitError
from ..ir.architecture import Architecture
from ..moves import Move
from ..validation import validate_options
from .strategy import Candidate, Score, SearchContext, Strategy, random_move

if TYPE_CHECKING:
    from ..controller.policy import Controller

#: networks with more layers than this keep a fixed embedding by default (see policy.py)
TRAIN_EMBEDDING_MAX_LAYERS = 64


@dataclass
class _Episode:
    candidate: Candidate
    alive: bool = True


class NeuralArchitectStrategy(Strategy):
    """Options (all optional): episode_length (T, default 3), episodes (per update, 16), updates (per ask,
    6), elites (20), seed_probability (0.1), gamma (0.9), entropy_weight (0.05), value_weight (0.5),
    lr (3e-3), proposals (candidates returned per evaluation, 8), explore_kappa (weight of the predicted
    uncertainty in the controller's reward; default the loop's search.ucb_kappa), train_embedding
    (true | false | "auto": train the embedding when the seed has at most 64 layers), hidden (64),
    torch_threads (1), transition_cache (networks kept for repeated moves, 2048), explore_episodes (uniformly
    random walks per update whose networks join the proposals but not the policy's batch; default twice
    `episodes`, 0 turns them off)."""

    name = "neural-architect"
    description = "the Neural Architect RL controller: actor-critic over registered moves on the network embedding"

    class Options(validation.Options):
        model_config = ConfigDict(strict=True)

        episode_length: int = Field(3, ge=1, description="T: moves per episode")
        episodes: int = Field(16, ge=1, description="episodes per update, run in lockstep")
        updates: int = Field(6, ge=1, description="actor-critic updates per ask")
        elites: int = Field(20, ge=1, description="best evaluated candidates an episode may start from")
        seed_probability: float = Field(0.1, ge=0, le=1, description="probability an episode starts from the seed")
        gamma: float = Field(0.9, ge=0, le=1, description="discount of the advantage r + γ·V(s') − V(s)")
        entropy_weight: float = Field(0.05, ge=0, description="weight of the entropy bonus")
        value_weight: float = Field(0.5, ge=0, description="weight of the critic's loss")
        lr: float = Field(3e-3, ge=1e-8, description="Adam learning rate")
        proposals: int = Field(8, ge=1, description="candidates returned per evaluation the loop will pay for")
        explore_kappa: float | None = Field(
            None, ge=0, description="weight of the predicted uncertainty in the step reward (default: search.ucb_kappa)"
        )
        train_embedding: Literal[True, False, "auto"] = Field(
            "auto", description='train the embedding ("auto": when the seed has at most 64 layers)'
        )
        hidden: int = Field(64, ge=4, description="width of the policy and value heads")
        torch_threads: int = Field(1, ge=1, description="torch CPU threads while the controller trains")
        transition_cache: int = Field(2048, ge=0, description="(network, move) results kept for repeated moves")
        explore_episodes: int | None = Field(
            None, ge=0, description="uniformly random walks per update that join the proposals (default: 2 × episodes)"
        )

    def __init__(
        self,
        context: SearchContext,
        episode_length: int = 3,
        episodes: int = 16,
        updates: int = 6,
        elites: int = 20,
        seed_probability: float = 0.1,
        gamma: float = 0.9,
        entropy_weight: float = 0.05,
        value_weight: float = 0.5,
        lr: float = 3e-3,
        proposals: int = 8,
        explore_kappa: float | None = None,
        train_embedding: bool | str = "auto",
        hidden: int = 64,
        torch_threads: int = 1,
        transition_cache: int = 2048,
        explore_episodes: int | None = None,
    ):
        super().__init__(
            context,
            episode_length=episode_length,
            episodes=episodes,
            updates=updates,
            elites=elites,
            seed_probability=seed_probability,
            gamma=gamma,
            entropy_weight=entropy_weight,
            value_weight=value_weight,
            lr=lr,
            proposals=proposals,
            explore_kappa=explore_kappa,
            train_embedding=train_embedding,
            hidden=hidden,
            torch_threads=torch_threads,
            transition_cache=transition_cache,
            explore_episodes=explore_episodes,
        )
        o = validate_options(self.Options, self.options, "strategy.options")
        self.episode_length, self.episodes, self.updates, self.elites = (
            o.episode_length,
            o.episodes,
            o.updates,
            o.elites,
        )
        self.seed_probability, self.gamma, self.lr, self.proposals = o.seed_probability, o.gamma, o.lr, o.proposals
        self.entropy_weight, self.value_weight = o.entropy_weight, o.value_weight
        if o.explore_kappa is None:
            config = getattr(context, "config", None)
            self.explore_kappa = float(config.search.ucb_kappa) if config is not None else 1.0
        else:
            self.explore_kappa = o.explore_kappa
        train_embedding = o.train_embedding
        if train_embedding == "auto":
            train_embedding = len(context.seed_arch.nodes) <= TRAIN_EMBEDDING_MAX_LAYERS
        self.train_embedding = bool(train_embedding)
        self.hidden, self.torch_threads, self.transition_cache = o.hidden, o.torch_threads, o.transition_cache
        self.explore_episodes = 2 * self.episodes if o.explore_episodes is None else o.explore_episodes
        # drawn now, from the run's RNG: the controller's initial weights are a function of the run's seed
        self._torch_seed = int(context.rng.integers(2**31 - 1))
        self._controller: Controller | None = None
        # (network, move) -> child, least recently used dropped first
        self._children: LRUCache[tuple[str, str], Architecture] = LRUCache(maxsize=max(self.transition_cache, 1))
        self.stats: dict[str, float] = {}
        self.proposed_total = 0

    # ---- the controller (built on first use: torch is imported only then) ------------------------------
    @property
    def controller(self) -> Controller:
        if self._controller is None:
            from ..controller.action_space import ActionSpace
            from ..controller.policy import Controller
            from ..embedding import ArchitectureTokenizer

            # the vocabulary is the registry the search's networks are built with (the seed's: every move
            # keeps it), so a plugin's layer type gets its own row
            # tokens are needed once per network (the embedding is cached), so keep few of them
            tokenizer = ArchitectureTokenizer.for_registry(self.context.seed_arch.layer_types, cache_size=256)
            space = ActionSpace.from_move_types(self.context.move_types)
            self._controller = Controller(
                tokenizer, space, self._torch_seed, train_embedding=self.train_embedding, lr=self.lr, hidden=self.hidden
            )
        return self._controller

    # ---- moves -----------------------------------------------------------------------------------------
    def _apply(self, arch: Architecture, move: Move) -> Architecture | None:
        key = (arch.hash, json.dumps([move.name, move.params], sort_keys=True, default=str))
        child = self._children.get(key)
        if child is not None:
            return child
        op = next(o for o in self.context.move_types if o.name == move.name)
        try:
            child = op.apply(arch, **move.params)
        except NAToolkitError:
            return None  # a mask that let an invalid value through: the episode ends here
        if self.transition_cache:
            self._children[key] = child
        return child

    # ---- elites ----------------------------------------------------------------------------------------
    def _elites(self) -> list[Candidate]:
        rows = [(c, s) for c, s in self.context.evaluated.values() if s.real]
        rows.sort(key=lambda cs: (not cs[1].feasible, -cs[1].reward))
        return [c for c, _ in rows[: self.elites]]

    def _starts(self, count: int) -> list[Candidate]:
        rng = self.context.rng
        seed = Candidate(self.context.seed_arch, (), None, "seed")
        elites = self._elites()
        out = []
        for _ in range(count):
            if not elites or rng.random() < self.seed_probability:
                out.append(seed)
            else:
                out.append(elites[int(rng.integers(len(elites)))])
        return out

    # ---- ask / tell ------------------------------------------------------------------------------------
    def _objective(self, score: Score) -> float:
        return score.reward + self.explore_kappa * score.uncertainty

    def ask(self, n: int) -> list[Candidate]:
        from ..torchutil import torch_threads

        with torch_threads(self.torch_threads):
            return self._ask(n)

    def _ask(self, n: int) -> list[Candidate]:
        ctx = self.context
        controller = self.controller
        evaluated = ctx.evaluated
        scores: dict[str, Score] = {h: s for h, (_c, s) in evaluated.items()}
        found: dict[str, Candidate] = {}
        stats = {"transitions": 0, "policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0}
        for _ in range(self.updates):
            episodes = [_Episode(c) for c in self._starts(self.episodes)]
            transitions: list[tuple[Architecture, Any, Architecture]] = []
            for _step in range(self.episode_length):
                alive = [e for e in episodes if e.alive]
                if not alive:
                    break
                archs = [e.candidate.arch for e in alive]
                for e, arch, d in zip(alive, archs, controller.decide(archs, ctx.rng)):
                    child = None if d is None else self._apply(arch, d.move)
                    if d is None or child is None:
                        e.alive = False
                        continue
                    transitions.append((arch, d, child))
                    e.candidate = Candidate(child, e.candidate.moves + (d.move,), arch.hash, self.name)
                    if child.hash not in evaluated and child.hash != ctx.seed_arch.hash:
                        found.setdefault(child.hash, e.candidate)
            explored = self._explore(found, evaluated)
            if not transitions:
                break
            new = {c.hash: c for _a, _d, c in transitions if c.hash not in scores}
            new.update((c.hash, c.arch) for c in explored if c.hash not in scores and c.hash not in new)
            if new:
                for h, s in zip(new, ctx.score(list(new.values()))):
                    scores[h] = s
            rewards = np.array([self._objective(scores[c.hash]) for _a, _d, c in transitions])
            # landing on a network already evaluated teaches the search nothing new: such a move earns the
            # batch's lowest reward (otherwise the policy learns to walk back to the elites and collapses)
            known = np.array([c.hash in evaluated for _a, _d, c in transitions])
            if known.any():
                rewards[known] = rewards.min()
            info = controller.update(
                [a for a, _d, _c in transitions],
                [d for _a, d, _c in transitions],
                [c for _a, _d, c in transitions],
                rewards,
                gamma=self.gamma,
                entropy_weight=self.entropy_weight,
                value_weight=self.value_weight,
            )
            stats["transitions"] += len(transitions)
            for k in ("policy_loss", "value_loss", "entropy"):
                stats[k] += info[k] / self.updates
        if len(found) < n:
            self._fill(found, scores, n)
        self.stats = stats
        return self._rank(found, scores, n)

    def _explore(self, found: dict[str, Candidate], evaluated: dict[str, Any]) -> list[Candidate]:
        """`explore_episodes` uniformly random walks (`random_move`: an applicable operation, then values its
        masks admit, each drawn uniformly) from the same kind of starts: their networks join the proposals
        but not the policy's training batch (they were not drawn from the policy). They keep the proposals
        broad where the policy has learned to concentrate on what the predictor already likes."""
        ctx = self.context
        out: list[Candidate] = []
        for start in self._starts(self.explore_episodes):
            cand = start
            for _ in range(self.episode_length):
                step = random_move(cand.arch, ctx.move_types, ctx.rng)
                if step is None:
                    break
                move, child = step
                cand = Candidate(child, cand.moves + (move,), cand.arch.hash, f"{self.name}:explore")
                out.append(cand)
                if child.hash not in evaluated and child.hash != ctx.seed_arch.hash:
                    found.setdefault(child.hash, cand)
        return out

    def _fill(self, found: dict[str, Candidate], scores: dict[str, Score], n: int) -> None:
        """Too few new networks (a policy gone nearly deterministic around evaluated elites): add random
        walks from the episode starts, so the loop always has n new candidates when any exist."""
        from .strategy import random_walk

        ctx = self.context
        evaluated = ctx.evaluated
        new: dict[str, Candidate] = {}
        for _ in range(20 * n):
            if len(found) + len(new) >= n:
                break
            start = self._starts(1)[0]
            walk = random_walk(
                start.arch,
                ctx.move_types,
                ctx.rng,
                int(ctx.rng.integers(1, self.episode_length + 1)),
                origin=f"{self.name}:random",
            )
            if walk is None:
                continue
            h = walk.hash
            if h in evaluated or h in found or h in new or h == ctx.seed_arch.hash:
                continue
            new[h] = Candidate(walk.arch, start.moves + walk.moves, walk.parent, walk.origin)
        if new:
            for h, s in zip(new, ctx.score([c.arch for c in new.values()])):
                scores[h] = s
            found.update(new)

    def _rank(self, found: dict[str, Candidate], scores: dict[str, Score], n: int) -> list[Candidate]:
        hard = [b.metric for b in getattr(self.context, "budgets", ()) if getattr(b, "hard", False)]

        def breaks_hard(s: Score) -> bool:
            return any(m in s.violations for m in hard)

        order = sorted(found, key=lambda h: (breaks_hard(scores[h]), -self._objective(scores[h])))
        ok = [h for h in order if not breaks_hard(scores[h])]
        keep = max(n * self.proposals, n)
        chosen = ok[:keep] if len(ok) >= n else order[: max(n, len(ok))]
        self.proposed_total += len(chosen)
        return [found[h] for h in chosen]

    def tell(self, results: list[tuple[Candidate, Score]]) -> None:
        """Nothing to do: elites and known rewards are read from `context.evaluated` at the next ask."""

    # ---- persistence -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch_seed": self._torch_seed, "proposed_total": self.proposed_total}
        if self._controller is not None:
            state["controller"] = self._controller.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._torch_seed = int(state["torch_seed"])
        self.proposed_total = int(state.get("proposed_total", 0))
        self._controller = None
        if "controller" in state:
            self.controller.load_state_dict(state["controller"])

"""neural-architect with unlimited scoring (`scoring_budget` null, the default): every network the policy's
episodes and the random walks reach is scored, each move is credited with its own step reward (an
actor-critic update per batch of transitions), and the reached networks are ranked for the loop (see the
`neural_architect` module docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .strategy import Candidate, Score

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from .neural_architect import NeuralArchitectStrategy


def ask_unlimited(na: NeuralArchitectStrategy, n: int) -> list[Candidate]:
    """`updates` times: run the episodes, score every new network reached (and the walks'), and update the
    policy on the step rewards; then return the ranked proposals."""
    ctx = na.context
    evaluated = ctx.evaluated
    scores: dict[str, Score] = {h: s for h, (_c, s) in evaluated.items()}
    found: dict[str, Candidate] = {}
    stats = {"transitions": 0, "policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0}
    for _ in range(na.updates):
        transitions: list[tuple[Architecture, Any, Candidate]] = []
        if na.policy != "none":
            _runs, transitions = na._episodes(evaluated)
            for _a, _d, cand in transitions:
                if cand.hash not in evaluated and cand.hash != ctx.seed_arch.hash:
                    found.setdefault(cand.hash, cand)
        explored = na._explore(found, evaluated)
        if not transitions and na.policy != "none":
            break
        new = {c.hash: c.arch for _a, _d, c in transitions if c.hash not in scores}
        new.update((c.hash, c.arch) for c in explored if c.hash not in scores and c.hash not in new)
        if new:
            for h, s in zip(new, na._score(list(new.values()))):
                scores[h] = s
        if not transitions:
            continue
        rewards = np.array([na.objective(scores[c.hash]) for _a, _d, c in transitions])
        entry = {"reward_mean": float(rewards.mean()), "scored": float(len(new))}
        # landing on a network already evaluated teaches the search nothing new: such a move earns the
        # batch's lowest reward (otherwise the policy learns to walk back to the elites and collapses)
        known = np.array([c.hash in evaluated for _a, _d, c in transitions])
        if known.any():
            rewards[known] = rewards.min()
        if na.policy == "trained":
            info = na.controller.update(
                [a for a, _d, _c in transitions],
                [d for _a, d, _c in transitions],
                [c.arch for _a, _d, c in transitions],
                rewards,
                gamma=na.gamma,
                entropy_weight=na.entropy_weight,
                value_weight=na.value_weight,
            )
            stats["transitions"] += len(transitions)
            for k in ("policy_loss", "value_loss", "entropy"):
                stats[k] += info[k] / na.updates
            entry.update({k: info[k] for k in ("policy_loss", "value_loss", "entropy")})
            na.adapt_entropy(entry)
        na._record(entry)
    if len(found) < n:
        na._fill(found, scores, n)
    na.stats = stats
    return na.rank(found, scores, n)

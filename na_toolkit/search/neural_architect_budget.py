"""neural-architect under a scoring budget (`scoring_budget`): how the B·n scorings of an `ask(n)` are
shared between the policy's episodes and the random walks, and how the policy learns from its episodes'
terminal rewards (docs/controller.md, "A scoring budget, and the ablations")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..torchutil import torch_threads
from .strategy import Candidate, Score

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from .neural_architect import NeuralArchitectStrategy


@dataclass
class Episode:
    candidate: Candidate
    alive: bool = True


@dataclass
class Run:
    """An episode and its transitions (state, decision or None for a random move, reached candidate)."""

    episode: Episode
    steps: list[tuple[Architecture, Any, Candidate]] = field(default_factory=list)

    @property
    def end(self) -> Candidate:
        return self.episode.candidate


#: at most this many proposals of earlier asks wait for their results (see `ask_budgeted`)
PENDING_RUNS = 256


def centred_ranks(values: np.ndarray) -> list[float]:
    """Ranks scaled to [-0.5, 0.5], ties sharing their mean rank: a hard budget's penalty (reward −1 and
    below) or a predictor's scale then no longer decide how much the feasible networks differ."""
    from scipy.stats import rankdata

    if len(values) < 2:
        return [0.0] * len(values)
    return list((rankdata(values) - 1) / (len(values) - 1) - 0.5)


def ask_budgeted(na: NeuralArchitectStrategy, n: int) -> list[Candidate]:
    """At most `scoring_budget` × n networks scored. Each episode (policy or walk) offers one network, the
    last it reached: the policy's terminals are scored first, `walk_share` of each update's scorings is
    kept for the walks' ends, what the policy leaves unspent goes to more walks' ends at the end, and
    what is left unscored is neither learned from nor proposed. The policy learns from each episode's
    terminal reward, credited to every move of the episode (a Monte-Carlo return: the value network is the
    baseline), with rewards known for free too (ends scored by earlier asks; an end evaluated found nothing
    new: the batch's lowest reward); an episode whose reward is unknown is left out of the batch."""
    ctx = na.context
    evaluated = ctx.evaluated
    seed_hash = ctx.seed_arch.hash
    left = int(na.scoring_budget or 0) * n
    scores: dict[str, Score] = {}  # scored in this ask: the proposals
    found: dict[str, Candidate] = {}
    ended: dict[str, Run] = {}  # the policy's episodes by end (the last to reach it)

    def fresh(c: Candidate) -> bool:
        return c.hash not in evaluated and c.hash != seed_hash and c.hash not in scores

    for u in range(na.updates):
        quota = left // (na.updates - u)
        runs = na._episodes(evaluated)[0] if na.policy != "none" else []
        ended.update((r.end.hash, r) for r in runs if r.steps)
        ends = [r.end for r in runs if r.steps]
        need_p = list({c.hash: c for c in ends if fresh(c) and c.hash not in na._memory}.values())
        # only as many walks as may be scored (a walk's networks are built move by move: not free)
        want = min(na.explore_episodes, round(na.walk_share * quota) if need_p else quota)
        walks = _walk_ends(na, evaluated, want) if want else []
        need_w = list({c.hash: c for c in walks if fresh(c) and c.hash not in na._memory}.values())
        kept = min(want, len(need_w))
        todo = need_p[: quota - kept]
        todo += [c for c in need_w if c.hash not in {t.hash for t in todo}][: quota - len(todo)]
        if todo:
            for c, sc in zip(todo, na._score([c.arch for c in todo])):
                scores[c.hash] = sc
                na._memory[c.hash] = na.objective(sc)
                found.setdefault(c.hash, c)
            left -= len(todo)
        if runs:
            _learn_from_ends(na, runs, scores, evaluated)
    if left > 0 and na.explore_episodes:  # what the policy left unspent: more walks' ends
        todo = [c for c in {c.hash: c for c in _walk_ends(na, evaluated, left)}.values() if fresh(c)]
        for c, sc in zip(todo, na._score([c.arch for c in todo])):
            scores[c.hash] = sc
            na._memory[c.hash] = na.objective(sc)
            found.setdefault(c.hash, c)
        left -= len(todo)
    if len(found) < n and left > 0:
        na._fill(found, scores, n, limit=left)
    chosen = na.rank(found, scores, n)
    # the episodes behind this ask's proposals, for `learn_from_results`, beside those of earlier asks whose
    # results may still come (async: results are told one by one while later asks run). Dropped: one told or
    # failed (evaluated), one chosen again here (this ask's episode, if any, stands for it), the oldest
    # beyond PENDING_RUNS. A synchronous search tells every result before its next ask: it learns the same.
    again = {c.hash for c in chosen}
    waiting = [(h, r) for h, r in na._proposed_runs.items() if h not in again and h not in evaluated]
    na._proposed_runs = dict(waiting[-PENDING_RUNS:])
    na._proposed_runs.update((c.hash, ended[c.hash]) for c in chosen if c.hash in ended)
    return chosen


def learn_from_results(na: NeuralArchitectStrategy, results: list[tuple[Candidate, Score]]) -> None:
    """One update on the real results of networks the policy's episodes proposed (`learn_from_evaluations`):
    each episode's return is its end's centred rank among the real rewards of every network evaluated so far
    (a new best gets the top). The predicted rewards teach the policy what the predictor likes; these teach it
    where the predictor was wrong, on the networks that were worth evaluating."""
    runs = [(c.hash, na._proposed_runs.pop(c.hash)) for c, s in results if s.real and c.hash in na._proposed_runs]
    if not runs:
        return
    known = {h: s.reward for h, (_c, s) in na.context.evaluated.items() if s.real}
    if len(known) < 2:
        return
    # each end's rank among every real result (which holds it: the loop stores before it tells)
    rank = dict(zip(known, centred_ranks(np.array(list(known.values()), dtype=float))))
    rows = [(r, float(rank[h])) for h, r in runs if h in rank]
    if not rows:
        return
    entry = {"scored": 0.0, "evaluated": float(len(rows)), "real_rank_mean": float(np.mean([v for _r, v in rows]))}
    normalise = len({v for _r, v in rows}) > 1
    if not normalise:
        # one episode (the async schedule tells results one at a time), or ranks that all agree: no spread to
        # standardise by within the batch, which made its return 0 and taught nothing of the result. The
        # ranks of every real result are uniform on [-0.5, 0.5] (standard deviation 1/sqrt(12)): scaled by
        # sqrt(12), a rank is standardised against all of them instead
        rows = [(r, v * math.sqrt(12.0)) for r, v in rows]
    with torch_threads(na.torch_threads):  # as in `ask`: torch's default thread count oversubscribes
        entry.update(_update(na, rows, normalise=normalise))
    na._record(entry)


def _learn_from_ends(
    na: NeuralArchitectStrategy,
    runs: list[Run],
    scores: dict[str, Score],
    evaluated: dict[str, Any],
) -> None:
    """One update on the episodes whose terminal reward is known (see `ask_budgeted`)."""
    rows: list[tuple[Run, float]] = []
    known_rows: list[Run] = []
    for r in runs:
        if not r.steps:
            continue
        h = r.end.hash
        if h in evaluated or h == na.context.seed_arch.hash:
            known_rows.append(r)
        elif h in scores:
            rows.append((r, na.objective(scores[h])))
        elif h in na._memory:  # scored by an earlier ask: its reward is known for free
            rows.append((r, float(na._memory[h])))
    if not rows:
        return
    fresh_rewards = [v for r, v in rows if r.end.hash in scores]
    entry = {"scored": float(len(fresh_rewards))}
    if fresh_rewards:
        entry["reward_mean"] = float(np.mean(fresh_rewards))
    floor = min(v for _r, v in rows)
    # an episode ending on a network evaluated found nothing new: the batch's lowest reward (giving the same
    # to ends scored before, not evaluated, was tried: 91.14 against 91.77 on lat_pixel3, 4 seeds)
    rows += [(r, floor) for r in known_rows]
    if na.reward_ranks:
        rows = list(zip([r for r, _v in rows], centred_ranks(np.array([v for _r, v in rows]))))
    if na.policy == "trained":
        advantages = None  # the critic's, unless risk-seeking: each move gets its episode's
        if na.risk_seeking is not None:
            edge = _risk_advantages(np.array([v for _r, v in rows]), na.risk_seeking)
            advantages = np.repeat(edge, [len(r.steps) for r, _v in rows])
        entry.update(_update(na, rows, advantages))
        na.adapt_entropy(entry)
    na._record(entry)


def _update(
    na: NeuralArchitectStrategy, rows: list[tuple[Run, float]], advantages: Any = None, normalise: bool = True
) -> dict[str, float]:
    """One controller update: every move of each episode gets the episode's return (a Monte-Carlo return,
    no bootstrapping from V(s')) and, when given, its advantage; the returns standardised within the batch
    unless `normalise` is False. Returns the update's losses and entropy."""
    states, decisions, nexts, returns = [], [], [], []
    for r, v in rows:
        for a, d, c in r.steps:
            states.append(a)
            decisions.append(d)
            nexts.append(c.arch)
            returns.append(v)
    info = na.controller.update(
        states,
        decisions,
        nexts,
        np.asarray(returns, dtype=float),
        gamma=0.0,
        entropy_weight=na.entropy_weight,
        value_weight=na.value_weight,
        advantages=advantages,
        normalise=normalise,
    )
    return {k: info[k] for k in ("policy_loss", "value_loss", "entropy")}


def _risk_advantages(values: np.ndarray, share: float | None) -> np.ndarray:
    """The risk-seeking policy gradient's advantages (Petersen et al. 2021, arXiv:1912.04871): an episode in
    the best `share` of its batch gets how far its reward clears the batch's (1 − share) quantile, in units of
    the batch's spread; the others get 0 (they teach the policy nothing). `share` None: zeros (unused)."""
    if share is None or len(values) < 2 or float(np.std(values)) <= 1e-12:
        return np.zeros(len(values))
    edge = float(np.quantile(values, 1.0 - share))
    return np.maximum(values - edge, 0.0) / float(np.std(values))


def _walk_ends(na: NeuralArchitectStrategy, evaluated: dict[str, Any], count: int) -> list[Candidate]:
    """The last network of each of `count` uniformly random walks (see `_explore`)."""
    ends: list[Candidate] = []
    na._explore({}, evaluated, ends, count)
    return ends

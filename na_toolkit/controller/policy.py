"""The Neural Architect controller's networks (torch): policy and value on the network embedding.

    network → tokens → NetworkEmbedding (a lookup table per attribute kind → layer LSTM → network LSTM)
            → h (network embedding) → trunk z = tanh(W h)
    action selector: categorical over the enabled moves (masked: moves with no valid parameters)
    per move, one head per parameter, in `params()` order, each conditioned on z and on a context vector
        c = e(move) + Σ e(value chosen so far):
        - a choice parameter: logits = W_{move,param} · tanh(U_{move,param} [z; c])
        - a position parameter: a pointer over the layers (Vinyals et al. 2015, "Pointer Networks"):
          logit_l = v · tanh(K o_l + tanh(U [z; c])), o_l the network LSTM's output at layer l, so any
          network size is scored by the same weights and a chosen layer feeds its own o_l into the context
        invalid values are masked (logit −∞) before sampling, using `op.mask(arch, param, chosen)`
    value network: V(s) = MLP(z)

The embedding is trained with the policy (`train_embedding=True`, the default, at any network size), or kept
fixed and cached per architecture, with only the trunk, heads and value network learning. An update embeds
each distinct network of its batch once (s and s' together), runs the layer LSTM once per distinct layer
row, and back-propagates through the last `grad_steps` layers of the network LSTM only, so its cost grows
with the depth of the networks no faster than one forward pass (`timing.update_seconds` measures it). The
neural predictor trains the same `NetworkEmbedding` module (`na_toolkit.embedding`).

Learning uses `torch.optim.Adam` and `torch.nn.utils.clip_grad_norm_` (docs/controller.md has the import cost).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from cachetools import LRUCache
from torch import nn

from ..embedding import ArchitectureTokenizer, make_network_embedding
from ..embedding.network import NetworkEmbedding
from ..errors import DataError
from ..moves import Move
from .action_space import ActionSpace, stack_masks
from .choosers import Chooser, pick, sample
from .inputs import (
    check_embedding,
    check_module,
    check_networks,
    check_rng,
    check_settings,
    check_state,
    check_transitions,
)

NEG_INF = -1e9
#: layers (from each network's end) that an update back-propagates through the network LSTM: the update's
#: cost then stops growing with the depth of the network beyond them (docs/controller.md, "Learning")
DEFAULT_GRAD_STEPS = 64


@dataclass(frozen=True)
class Decision:
    """One sampled move and everything needed to recompute its log-probability: the chosen operation,
    the index of each parameter's value among its choices, the masks that were in force, and the hash of the
    network it was made for (`update` refuses it for another: "" skips that check)."""

    op: int
    values: tuple[int, ...]
    move_mask: np.ndarray
    masks: tuple[np.ndarray, ...]
    move: Move
    state: str = ""


def _head_key(op: int, k: int) -> str:
    return f"{op}_{k}"


class ControllerNet(nn.Module):
    def __init__(
        self,
        tokenizer: ArchitectureTokenizer,
        space: ActionSpace,
        token_dim: int = 16,
        layer_dim: int = 32,
        net_dim: int = 64,
        hidden: int = 64,
        ctx_dim: int = 32,
        embedding: nn.Module | None = None,
    ):
        super().__init__()
        # a given embedding (the neural predictor's, joint training) is used as it is: the same parameters;
        # a new one has one lookup table per attribute kind of the tokenizer's vocabulary
        self.embedding = (
            embedding
            if embedding is not None
            else make_network_embedding(tokenizer, token_dim=token_dim, layer_dim=layer_dim, net_dim=net_dim)
        )
        self.trunk = nn.Sequential(nn.Linear(net_dim, hidden), nn.Tanh())
        n_ops = len(space.move_types)
        self.move_head = nn.Linear(hidden, n_ops)
        self.op_context = nn.Embedding(n_ops, ctx_dim)
        self.query = nn.ModuleDict()
        self.choice_head = nn.ModuleDict()
        self.choice_context = nn.ModuleDict()
        self.pointer_v = nn.ParameterDict()
        for i, specs in enumerate(space.params):
            for k, p in enumerate(specs):
                key = _head_key(i, k)
                self.query[key] = nn.Linear(hidden + ctx_dim, hidden)
                if p.is_position:
                    self.pointer_v[key] = nn.Parameter(torch.randn(hidden) / hidden**0.5)
                else:
                    self.choice_head[key] = nn.Linear(hidden, len(p.choices))
                    self.choice_context[key] = nn.Embedding(len(p.choices), ctx_dim)
        self.has_positions = space.has_positions
        if self.has_positions:
            self.pointer_key = nn.Linear(net_dim, hidden)
            self.position_context = nn.Linear(net_dim, ctx_dim)
        self.value_head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.net_dim, self.hidden, self.ctx_dim = net_dim, hidden, ctx_dim

    def param_logits(
        self,
        op: int,
        k: int,
        is_position: bool,
        z: torch.Tensor,
        ctx: torch.Tensor,
        outs: Sequence[torch.Tensor] | None,
    ) -> torch.Tensor:
        """Logits over one parameter's choices for R states that chose the same move: z [R, hidden],
        ctx [R, ctx_dim], outs: R network-LSTM outputs [L_r, net_dim] (position parameters). -> [R, choices];
        a position's pointer scores all L_r layers of each row, padded with NEG_INF to the rows' longest"""
        key = _head_key(op, k)
        u = torch.tanh(self.query[key](torch.cat([z, ctx], dim=1)))
        if not is_position:
            return self.choice_head[key](u)
        assert outs is not None
        width = max(o.shape[0] for o in outs)
        rows = []
        for r, o in enumerate(outs):
            scores = torch.tanh(self.pointer_key(o) + u[r]) @ self.pointer_v[key]
            if o.shape[0] < width:
                scores = torch.cat([scores, scores.new_full((width - o.shape[0],), NEG_INF)])
            rows.append(scores)
        return torch.stack(rows)

    def value_context(
        self, op: int, k: int, is_position: bool, index: np.ndarray, outs: Sequence[torch.Tensor] | None
    ) -> torch.Tensor:
        """The context added by the chosen values (one per row) -> [R, ctx_dim]."""
        if is_position:
            assert outs is not None
            return self.position_context(torch.stack([o[int(i)] for o, i in zip(outs, index)]))
        return self.choice_context[_head_key(op, k)].weight[torch.from_numpy(np.asarray(index, dtype=np.int64))]


def masked_log_probs(logits: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """log-softmax over the last axis with masked entries at (practically) −∞."""
    m = torch.from_numpy(np.asarray(mask, dtype=bool))
    return torch.log_softmax(logits.masked_fill(~m, NEG_INF), dim=-1)


def entropy_of(log_probs: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """Entropy of each masked categorical (last axis)."""
    m = torch.from_numpy(np.asarray(mask, dtype=bool))
    return -(log_probs.exp() * log_probs).masked_fill(~m, 0.0).sum(dim=-1)


def sample_index(log_probs: torch.Tensor, rng: np.random.Generator, choose: Chooser = sample) -> int:
    """One value of a masked categorical, picked by `choose` (`choosers.pick`)."""
    return pick(log_probs.detach().exp().double().numpy(), rng, choose)


class Controller:
    """Policy + value networks, the embedding cache, the optimizer and the actor-critic update."""

    def __init__(
        self,
        tokenizer: ArchitectureTokenizer,
        space: ActionSpace,
        seed: int,
        train_embedding: bool = True,
        lr: float = 3e-3,
        token_dim: int = 16,
        layer_dim: int = 32,
        net_dim: int = 64,
        hidden: int = 64,
        ctx_dim: int = 32,
        embed_cache_size: int = 200_000,
        embedding: nn.Module | None = None,
        grad_steps: int | None = DEFAULT_GRAD_STEPS,
    ):
        """`embedding`: a `NetworkEmbedding` to build on instead of a new one (the neural predictor's, which
        its refits train too: call `forget_embeddings` after one); its widths must be token/layer/net_dim.
        The controller runs on the CPU, in float32. Bad arguments are `ConfigError`s (`inputs.py`)."""
        dims = {
            "token_dim": token_dim,
            "layer_dim": layer_dim,
            "net_dim": net_dim,
            "hidden": hidden,
            "ctx_dim": ctx_dim,
        }
        check_settings(seed, lr, grad_steps, embed_cache_size, dims, tokenizer, space)
        if embedding is not None:
            check_embedding(embedding, tokenizer, dims)
        self.tokenizer = tokenizer
        self.space = space
        self.train_embedding = train_embedding
        #: back-propagation through the network LSTM stops this many layers before each network's end
        #: (None: through every layer); see `NetworkEmbedding.network`
        self.grad_steps = grad_steps
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = ControllerNet(
                tokenizer,
                space,
                token_dim,
                layer_dim,
                net_dim,
                hidden,
                ctx_dim,
                embedding=embedding,
            )
        check_module(self.net)
        self._trained = [p for n, p in self.net.named_parameters() if train_embedding or not n.startswith("embedding.")]
        # torch.optim's first step imports torch._dynamo (about 1 s once per process, docs/controller.md);
        # the neural predictor and the torch evaluator pay it in the same process anyway
        self.optimizer = torch.optim.Adam(self._trained, lr=lr)
        self.embed_cache_size = embed_cache_size
        self._cache: LRUCache[str, tuple[torch.Tensor, torch.Tensor | None]] = LRUCache(
            maxsize=max(embed_cache_size, 1)
        )
        self.updates = 0

    def __repr__(self) -> str:  # one line in a notebook: what it chooses among, its size, how far it learned
        trained = sum(p.numel() for p in self._trained)
        return (
            f"<Controller moves={self.space.names} parameters={sum(p.numel() for p in self.net.parameters())} "
            f"(trained {trained}, embedding {'trained' if self.train_embedding else 'frozen'}) updates={self.updates}>"
        )

    # ---- embedding ------------------------------------------------------------------------------------
    def _embed_batch(self, archs: Sequence[Any], grad_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # distinct token rows straight from the tokenizer: the layer LSTM runs once per distinct layer
        rows, index, lengths = self.tokenizer.batch_rows(archs)
        embedding = cast(NetworkEmbedding, self.net.embedding)
        h, _layers, outs = embedding.forward_rows(
            torch.from_numpy(rows), torch.from_numpy(index), torch.from_numpy(lengths), grad_steps=grad_steps
        )
        return h, outs

    def embed(self, archs: Sequence[Any], grad: bool = False) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """(network embedding [net_dim], network-LSTM outputs [L, net_dim] or None) per architecture."""
        archs = check_networks(archs, self.tokenizer, "embed")
        if not archs:
            return []
        if grad and self.train_embedding:
            # once per distinct network (a batch repeats its starts, and s' of one step is s of the next),
            # back-propagating through the last `grad_steps` layers of each
            distinct = list({a.hash: a for a in archs}.values())
            where = {a.hash: b for b, a in enumerate(distinct)}
            h, outs = self._embed_batch(distinct, self.grad_steps)
            return [
                (h[where[a.hash]], outs[where[a.hash], : len(a.nodes)] if self.net.has_positions else None)
                for a in archs
            ]
        found: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        missing: dict[str, Any] = {}
        for a in archs:
            if a.hash in found or a.hash in missing:
                continue
            hit = self._cache.get(a.hash)
            if hit is None:
                missing[a.hash] = a
            else:
                found[a.hash] = hit
        if missing:
            todo = list(missing.values())
            with torch.no_grad():
                for start in range(0, len(todo), 64):
                    chunk = todo[start : start + 64]
                    h, outs = self._embed_batch(chunk)
                    for b, a in enumerate(chunk):
                        o = outs[b, : len(a.nodes)].clone() if self.net.has_positions else None
                        found[a.hash] = self._cache[a.hash] = (h[b].clone(), o)
        # from `found`, not the cache: a batch larger than the cache must not lose its own first entries
        return [found[a.hash] for a in archs]

    def _invalidate(self) -> None:
        if self.train_embedding:
            self._cache.clear()

    def forget_embeddings(self) -> None:
        """Drop the cached embeddings: the embedding's weights changed outside the controller (a refit of
        the neural predictor that shares them)."""
        self._cache.clear()

    # ---- acting and scoring decisions (batched: one call per step of every live episode) ---------------
    def _heads(
        self,
        archs: Sequence[Any],
        z: torch.Tensor,
        outs: Sequence[torch.Tensor | None],
        move_masks: np.ndarray,
        given: Sequence[Decision] | None,
        rng: np.random.Generator | None,
        choose: Chooser = sample,
    ):
        """Run the action selector and the parameter heads for a batch of states, sampling the decisions
        (given=None; masks asked from the move_types as values are chosen) or scoring given ones.
        Returns (log π(decision) [B], entropy [B], decisions; None where no valid move exists)."""
        b = len(archs)
        lp_move = masked_log_probs(self.net.move_head(z), move_masks)
        ops = [d.op for d in given] if given is not None else [sample_index(lp_move[i], rng, choose) for i in range(b)]
        log_prob = lp_move[torch.arange(b), torch.tensor(ops)]
        entropy = entropy_of(lp_move, move_masks)
        values: list[list[int]] = [[] for _ in range(b)]
        masks: list[list[np.ndarray]] = [[] for _ in range(b)]
        chosen: list[dict[str, Any]] = [{} for _ in range(b)]
        dead = [False] * b
        for op in sorted(set(ops)):  # a fixed order, so the RNG draws are a function of the seed
            rows = [i for i in range(b) if ops[i] == op]
            rows_t = torch.tensor(rows)
            operation = self.space.move_types[op]
            zr = z[rows_t]
            ctx = self.net.op_context.weight[op].expand(len(rows), -1)
            outs_r = [outs[i] for i in rows] if self.net.has_positions else None
            for k, p in enumerate(self.space.params[op]):
                # each row's mask has its own network's length (a position: one entry per layer); the
                # stacked copy is padded with False to the longest, as param_logits pads the pointer
                if given is not None:
                    row_masks = [given[i].masks[k] for i in rows]
                else:
                    row_masks = [
                        np.zeros(p.size_for(archs[i]), dtype=bool)
                        if dead[i]
                        else operation.admitted(archs[i], p.name, dict(chosen[i]))
                        for i in rows
                    ]
                mask = stack_masks(row_masks)
                if given is None:
                    for r, i in enumerate(rows):
                        if not mask[r].any():  # an inexact mask upstream: no valid completion after all
                            dead[i] = True
                            mask[r, 0] = True  # keep the row computable; its decision is dropped
                lp = masked_log_probs(self.net.param_logits(op, k, p.is_position, zr, ctx, outs_r), mask)
                if given is not None:
                    idx = np.array([given[i].values[k] for i in rows])
                else:
                    idx = np.array([sample_index(lp[r], rng, choose) for r in range(len(rows))])
                log_prob = log_prob.index_add(0, rows_t, lp[torch.arange(len(rows)), torch.from_numpy(idx)])
                entropy = entropy.index_add(0, rows_t, entropy_of(lp, mask))
                for r, i in enumerate(rows):
                    values[i].append(int(idx[r]))
                    masks[i].append(row_masks[r])
                    chosen[i][p.name] = p.value_at(int(idx[r]))
                ctx = ctx + self.net.value_context(op, k, p.is_position, idx, outs_r)
        if given is not None:
            return log_prob, entropy, list(given)
        decisions: list[Decision | None] = []
        for i in range(b):
            if dead[i] or not move_masks[i].any():
                decisions.append(None)
            else:
                name = self.space.move_types[ops[i]].name
                decisions.append(
                    Decision(
                        ops[i], tuple(values[i]), move_masks[i], tuple(masks[i]), Move(name, chosen[i]), archs[i].hash
                    )
                )
        return log_prob, entropy, decisions

    def decide(self, archs: Sequence[Any], rng: np.random.Generator, choose: Chooser = sample) -> list[Decision | None]:
        """Sample one valid move for each architecture (None where no move applies); none for no architecture.
        Every draw comes from `rng` (a numpy Generator). `choose` picks each value from its categorical's
        probabilities (`choosers.py`: `sample`, the default, or `top_k(k)`; a function of your own)."""
        archs = check_networks(archs, self.tokenizer)
        check_rng(rng)
        if not archs:
            return []
        move_masks = np.stack([self.space.applicable(a) for a in archs])
        live = [i for i in range(len(archs)) if move_masks[i].any()]
        out: list[Decision | None] = [None] * len(archs)
        if not live:
            return out
        live_archs = [archs[i] for i in live]
        emb = self.embed(live_archs)
        with torch.no_grad():
            z = self.net.trunk(torch.stack([e[0] for e in emb]))
            _, _, decisions = self._heads(live_archs, z, [e[1] for e in emb], move_masks[live], None, rng, choose)
        for i, d in zip(live, decisions):
            out[i] = d
        return out

    def move_probabilities(self, arch: Any) -> np.ndarray:
        """π(operation | arch) over the enabled moves (masked), for inspection and tests."""
        move_mask = self.space.applicable(arch)
        h, _ = self.embed([arch])[0]
        with torch.no_grad():
            return masked_log_probs(self.net.move_head(self.net.trunk(h)), move_mask).exp().numpy()

    # ---- learning --------------------------------------------------------------------------------------
    @staticmethod
    def normalise(rewards: np.ndarray) -> np.ndarray:
        """Standardise one batch of rewards (whatever scale the objectives give). A batch whose rewards
        all agree (e.g. before any predictor is fitted) carries no signal: zeros, not noise blown up."""
        with np.errstate(over="ignore", invalid="ignore"):
            mean, std = float(np.mean(rewards)), float(np.std(rewards))
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise DataError(
                f"rewards from {float(np.min(rewards)):.3g} to {float(np.max(rewards)):.3g} overflow when "
                "standardised (their spread is not finite); give rewards on a smaller scale"
            )
        if std <= 1e-9 * (1.0 + abs(mean)):
            return np.zeros_like(rewards)
        return (rewards - mean) / std

    def update(
        self,
        states: Sequence[Any],
        decisions: Sequence[Decision],
        next_states: Sequence[Any],
        rewards: np.ndarray,
        gamma: float = 0.9,
        entropy_weight: float = 0.01,
        value_weight: float = 0.5,
        max_grad_norm: float = 1.0,
        advantages: np.ndarray | None = None,
        normalise: bool = True,
    ) -> dict[str, float]:
        """One actor-critic step on a batch of transitions (s, a, r, s'):
        A = r + γ·V(s') − V(s); loss = −A·log π(a|s) − β·H(π(·|s)) + c·(r + γ·V(s') − V(s))².
        `advantages` (one per transition), when given, is the actor's A instead (the critic still learns r).
        The rewards are standardised within the batch (`normalise`), unless `normalise=False`: the caller's
        rewards are already on a standard scale (one batch without spread would standardise to 0).
        What it is given is checked first (`inputs.check_transitions`: a `DataError` says what is wrong); a
        step whose loss is not finite is refused before it reaches the weights."""
        states = check_networks(states, self.tokenizer)
        next_states = check_networks(next_states, self.tokenizer, "next_states")
        weights = {"gamma": gamma, "entropy_weight": entropy_weight, "value_weight": value_weight}
        weights["max_grad_norm"] = max_grad_norm
        decisions, rewards, advantages = check_transitions(
            self.space, states, decisions, next_states, rewards, advantages, weights
        )
        r = torch.as_tensor(self.normalise(rewards) if normalise else rewards, dtype=torch.float32)
        self.net.train()
        # s and s' in one pass (the embedding of s' is only read detached, for the bootstrapped target)
        both = self.embed(states + next_states, grad=True)
        cur, nxt = both[: len(states)], both[len(states) :]
        h = torch.stack([c[0] for c in cur])
        z = self.net.trunk(h)
        v = self.net.value_head(z).squeeze(-1)
        with torch.no_grad():
            v_next = self.net.value_head(self.net.trunk(torch.stack([c[0].detach() for c in nxt]))).squeeze(-1)
        target = r + gamma * v_next
        advantage = (target - v).detach()
        if advantages is not None:
            advantage = torch.as_tensor(advantages, dtype=torch.float32)
        move_masks = np.stack([d.move_mask for d in decisions])
        log_prob, entropy, _ = self._heads(states, z, [c[1] for c in cur], move_masks, decisions, None)
        policy_loss = -(advantage * log_prob).mean()
        value_loss = ((target - v) ** 2).mean()
        loss = policy_loss - entropy_weight * entropy.mean() + value_weight * value_loss
        if not bool(torch.isfinite(loss)):
            raise DataError(
                f"the update's loss is {float(loss)} (policy {float(policy_loss)}, value {float(value_loss)}): "
                "refused before it reached the weights; check the rewards' scale"
            )
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self._trained, max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        self._invalidate()
        return {
            "policy_loss": float(policy_loss.detach()),
            "value_loss": float(value_loss.detach()),
            "entropy": float(entropy.mean().detach()),
            "advantage": float(advantage.abs().mean()),
        }

    # ---- persistence -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            # deep-copied: the optimizer's own state dict holds its live moment tensors
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "updates": self.updates,
            "space": self.space.describe(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take a `state_dict()` back. Everything is checked before anything is loaded (`inputs.check_state`):
        a state that does not fit is a `ConfigError` and leaves this controller as it was."""
        check_state(state, self.space, self.net, self._trained, self.train_embedding)
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self._cache.clear()

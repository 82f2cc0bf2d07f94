"""Weight inheritance through moves: a child starts from its parent's trained weights (Net2Net, Chen et al.
2016, ICLR, arXiv:1511.05641; network transformations for RL-driven search, Cai et al. 2018, AAAI,
arXiv:1707.04873).

A move type opts in with `MoveType.inherit_weights(parent, child, params, weights, rng)`: it maps the
parent's weights onto the child and says how well the child's function is kept (`Inherited.preservation`):
- "exact": right after the move the child computes what the parent computed (inference mode: batch norm on
  its running statistics, dropout off), up to float rounding;
- "approximate": the child starts from the parent's weights but computes something else (a narrowed layer,
  a removed layer that was near identity);
and returns None when it cannot ("none": the child trains from scratch). The base class returns None.

Everything here is numpy: weights are `NodeWeights`, node id -> parameter name -> array, named as the layer
type's torch module names them (its `state_dict` keys, as `LayerType.init_weights` draws them). The torch
side (`na_toolkit.evaluation.inherit`) turns a state dict into these and back. A node the mapping leaves out
keeps the child's fresh initialisation.

Helpers for move authors: `carry_over` (every node the move did not touch), `ChannelMap` and
`propagate_channels` (a layer whose output channels were replicated, selected or added: its consumers follow,
Net2Wider), `identity_conv` / `identity_batchnorm` (Net2Deeper), `nonnegative` (is a node's output >= 0, so
that a ReLU after it is the identity), `complete` (does the mapping cover every weight of the child).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..ir.architecture import Architecture

#: how well a move keeps the network's function (module docstring)
Preservation = Literal["exact", "approximate", "none"]
PRESERVATIONS: tuple[Preservation, ...] = ("exact", "approximate", "none")

#: node id -> parameter name -> array (named as the layer type's torch module's state_dict)
NodeWeights = dict[str, dict[str, np.ndarray]]

#: layer types whose output at each channel depends only on that channel of their input and that hold no
#: weights: a channel map passes through them unchanged
CHANNELWISE = frozenset(
    {"relu", "relu6", "sigmoid", "hardswish", "gelu", "maxpool2d", "avgpool2d", "global_avg_pool", "dropout"}
    | {"identity", "zero"}
    | {"leaky_relu", "elu", "tanh", "softplus", "mish"}  # na_toolkit.builtin.layers_activations
)
#: layer types whose output is >= 0 whatever their input
NONNEGATIVE = frozenset({"relu", "relu6", "sigmoid", "zero", "softplus"})
#: layer types that keep an input that is >= 0 non-negative (max / mean of non-negatives, inference dropout)
KEEP_NONNEGATIVE = frozenset({"maxpool2d", "avgpool2d", "global_avg_pool", "dropout", "identity", "flatten"})
#: layer types that are the identity at inference
IDENTITY_AT_INFERENCE = frozenset({"identity", "dropout"})


class NotInheritable(Exception):
    """Raised inside a mapping that meets a layer it cannot follow; `inherit_weights` turns it into None."""


@dataclass(frozen=True)
class Inherited:
    """What a move's `inherit_weights` gives: the child's weights (nodes left out keep their fresh
    initialisation) and how well the child keeps the parent's function ("exact" or "approximate")."""

    weights: NodeWeights
    preservation: Preservation


def weakest(levels: Iterable[Preservation]) -> Preservation:
    """The weakest of several preservation levels (a chain of moves is as exact as its least exact move)."""
    return max(levels, key=PRESERVATIONS.index, default="exact")


def carry_over(parent: Architecture, child: Architecture, weights: NodeWeights) -> NodeWeights:
    """The parent's weights of every child node with the same id, type and weight shapes (a copy per node
    dict; the arrays are shared: mappings build new arrays, never write into these)."""
    out: NodeWeights = {}
    for node in child.nodes:
        held = weights.get(node.id)
        if held is None or node.id not in parent or parent.node(node.id).type != node.type:
            continue
        want = expected_shapes(child, node.id)
        if all(k in held and held[k].shape == s for k, s in want.items()):
            out[node.id] = dict(held)
    return out


def expected_shapes(arch: Architecture, node_id: str) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of `node_id`'s floating-point weights (from its layer type's `init_weights`,
    which draws the torch module's names and shapes)."""
    lt = arch.layer_type(node_id)
    drawn = lt.init_weights(arch.attrs(node_id), arch.in_shapes(node_id), arch.shape(node_id), np.random.default_rng(0))
    return {k: tuple(np.shape(v)) for k, v in drawn.items()}


def complete(child: Architecture, mapped: NodeWeights) -> bool:
    """True when `mapped` holds every floating-point weight of every node of `child`, at its shape."""
    for node in child.nodes:
        want = expected_shapes(child, node.id)
        held = mapped.get(node.id, {})
        if any(k not in held or tuple(held[k].shape) != s for k, s in want.items()):
            return False
    return True


def nonnegative(arch: Architecture, node_id: str) -> bool:
    """Whether `node_id`'s output is >= 0 for every input (so a ReLU after it is the identity): a ReLU-like
    layer, or pooling / dropout / identity / flatten / add / concat of such outputs."""
    seen: dict[str, bool] = {}

    def walk(nid: str) -> bool:
        if nid not in arch:  # the network input
            return False
        if nid not in seen:
            node = arch.node(nid)
            if node.type in NONNEGATIVE:
                seen[nid] = True
            elif node.type in KEEP_NONNEGATIVE or node.type in ("add", "concat"):
                seen[nid] = all(walk(s) for s in node.inputs)
            else:
                seen[nid] = False
        return seen[nid]

    return walk(node_id)


# ---- Net2Deeper: layers that start as the identity -----------------------------------------------------
def identity_conv(arch: Architecture, node_id: str, source: np.ndarray) -> dict[str, np.ndarray]:
    """Weights of conv `node_id` (groups 1, stride 1, "same" padding, odd kernel) whose output channel j
    copies input channel `source[j]` (-1: a channel of zeros): the centre tap of a one-hot filter."""
    a = arch.attrs(node_id)
    k, c = a["kernel"], arch.in_shapes(node_id)[0][0]
    if a["groups"] != 1 or a["stride"] != 1 or k % 2 == 0 or a["padding"] not in (-1, a["dilation"] * (k - 1) // 2):
        raise NotInheritable(f"{node_id}: not a same-padded, odd-kernel, dense, stride-1 conv")
    w = np.zeros((a["filters"], c, k, k), dtype=np.float32)
    for j, s in enumerate(source):
        if s >= 0:
            w[j, s, k // 2, k // 2] = 1.0
    out = {"weight": w}
    if a["bias"]:
        out["bias"] = np.zeros(a["filters"], dtype=np.float32)
    return out


def identity_batchnorm(arch: Architecture, node_id: str) -> dict[str, np.ndarray]:
    """Batch-norm weights that are the identity at inference: (x - 0) / sqrt(1 + eps) * sqrt(1 + eps) + 0."""
    c, eps = arch.shape(node_id)[0], arch.attrs(node_id)["eps"]
    return {
        "weight": np.full(c, math.sqrt(1.0 + eps), dtype=np.float32),
        "bias": np.zeros(c, dtype=np.float32),
        "running_mean": np.zeros(c, dtype=np.float32),
        "running_var": np.ones(c, dtype=np.float32),
    }


# ---- Net2Wider: channel maps and their consumers -------------------------------------------------------
@dataclass(frozen=True)
class ChannelMap:
    """How a layer's new output channels come from its old ones: channel j of the child is channel
    `source[j]` of the parent (-1: a new channel), and the layers that read it (the first layer that mixes
    channels) weigh it by `split[j]`. Copies of one parent channel have splits summing to 1, so the sum the
    reader computes is unchanged (Net2Wider); the splits differ between copies, so that their gradients
    differ and the copies do not stay identical while fine-tuning (Net2Net adds noise for the same reason)."""

    source: np.ndarray
    split: np.ndarray
    #: the parent's number of channels (elements)
    parent_channels: int

    @property
    def exact(self) -> bool:
        """Every parent channel is kept (a widening or the same width): the readers' sums are unchanged."""
        kept = set(self.source.tolist())
        return -1 not in kept and kept == set(range(self.parent_channels))

    @classmethod
    def resize(cls, old: int, new: int, rng: np.random.Generator, importance: np.ndarray | None = None) -> ChannelMap:
        """`old` channels to `new`: a widening keeps them in place and replicates channels drawn at random; a
        narrowing (approximate) keeps the `new` most important (largest `importance`, in their order; without
        it the first `new`)."""
        if new <= old:
            if importance is None:
                return cls(np.arange(new), np.ones(new), old)
            return cls(np.sort(np.argsort(-np.asarray(importance), kind="stable")[:new]), np.ones(new), old)
        source = np.concatenate([np.arange(old), rng.integers(0, old, new - old)])
        weight = rng.uniform(0.5, 1.5, new)
        totals = np.zeros(old)
        np.add.at(totals, source, weight)
        return cls(source, weight / totals[source], old)

    @classmethod
    def extend(cls, old: int, new: int) -> ChannelMap:
        """`old` channels to `new`, in place; channels past `old` are new (-1), channels past `new` dropped."""
        source = np.where(np.arange(new) < old, np.arange(new), -1)
        return cls(source, np.ones(new), old)

    def same(self, other: ChannelMap) -> bool:
        return np.array_equal(self.source, other.source) and np.array_equal(self.split, other.split)

    def expand(self, per_channel: int) -> ChannelMap:
        """The map of `per_channel` consecutive elements per channel (a flatten of H*W per channel, a
        depthwise conv's channel multiplier)."""
        offsets = np.arange(per_channel)
        src = np.where(self.source[:, None] >= 0, self.source[:, None] * per_channel + offsets, -1)
        return ChannelMap(src.reshape(-1), np.repeat(self.split, per_channel), self.parent_channels * per_channel)


def take_rows(array: np.ndarray, source: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """`array[source]` along the first axis, `fill` where source is -1."""
    out = np.asarray(array)[np.maximum(source, 0)].copy()
    out[source < 0] = fill
    return out


def mix_columns(array: np.ndarray, cmap: ChannelMap) -> np.ndarray:
    """A reader's weights (out, in, ...) with input j taken from `cmap.source[j]` and weighed by its split."""
    a = np.asarray(array)
    out = a[:, np.maximum(cmap.source, 0)] * cmap.split.reshape((1, -1) + (1,) * (a.ndim - 2))
    out[:, cmap.source < 0] = 0.0
    return out.astype(a.dtype, copy=False)


_BN_FILL = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}


def propagate_channels(
    parent: Architecture,
    child: Architecture,
    readers: Iterable[str],
    cmap: ChannelMap,
    weights: NodeWeights,
    out: NodeWeights,
    source: str | None = None,
) -> None:
    """Make the child's `readers` (and what follows them) take a changed channel layout: channel-wise layers
    pass the map on, batch norms and depthwise convs select their per-channel weights (and pass it on), a
    flatten expands it, an add whose inputs all carry the same layout passes it on, and the first layer that
    mixes channels (a dense conv, a linear layer) takes its input columns through the map (`mix_columns`) and
    ends the walk. `source` is the node whose output took the layout (an add may read it directly: a skip
    from a widened conv around its own batch norm and ReLU). Writes into `out`; anything else (an add whose
    inputs change differently, a concat, a grouped conv, a plugin's layer) raises NotInheritable."""
    # in topological order, so that an add is reached after every input the change flows into
    pushed = itertools.count()  # ties (one node reached twice) never compare the maps
    todo = [(child.index(r), next(pushed), r, cmap) for r in readers]
    heapq.heapify(todo)
    done: dict[str, ChannelMap] = {source: cmap} if source is not None else {}
    while todo:
        _i, _n, nid, m = heapq.heappop(todo)
        if nid in done:
            if not done[nid].same(m):
                raise NotInheritable(f"{nid}: reached with two channel layouts")
            continue
        done[nid] = m
        node = child.node(nid)
        held = weights.get(nid, {})
        follow = True
        if node.type in CHANNELWISE:
            pass
        elif node.type == "add":  # every input must carry the same layout (both sides of a skip widened)
            for s in node.inputs:
                if s not in done or not done[s].same(m):
                    raise NotInheritable(f"{nid}: an add whose inputs do not change alike")
        elif node.type == "batchnorm2d":
            if nid not in parent or not held:
                raise NotInheritable(f"{nid}: a batch norm without parent weights")
            out[nid] = {k: take_rows(v, m.source, _BN_FILL.get(k, 0.0)) if v.ndim else v for k, v in held.items()}
        elif node.type == "flatten":
            _c, *spatial = child.in_shapes(nid)[0]
            if nid not in parent or parent.in_shapes(nid)[0][1:] != tuple(spatial):
                raise NotInheritable(f"{nid}: the flattened grid changes")
            m = m.expand(math.prod(spatial))
        elif node.type == "conv2d" and node.id in parent:
            a, c_in = child.attrs(nid), child.in_shapes(nid)[0][0]
            if a["groups"] == 1:
                out[nid] = {**held, "weight": mix_columns(held["weight"], m)}
                follow = False
            elif a["groups"] == c_in:  # a depthwise conv follows its input's channels
                m = m.expand(a["filters"] // c_in)
                out[nid] = {k: take_rows(v, m.source) for k, v in held.items()}
            else:
                raise NotInheritable(f"{nid}: a grouped conv")
        elif node.type == "linear" and node.id in parent:
            out[nid] = {**held, "weight": mix_columns(held["weight"], m)}
            follow = False
        else:
            raise NotInheritable(f"{nid} ({node.type}) cannot follow a change of its input's channels")
        if follow:
            if nid == child.output:
                raise NotInheritable("the network's output would change")
            for r in child.consumers[nid]:
                heapq.heappush(todo, (child.index(r), next(pushed), r, m))

"""How the built-in moves hand a parent's weights to its child (`MoveType.inherit_weights`; docs/moves.md,
"Weight inheritance"). Numpy only: `na_toolkit.moves.inherit` has the helpers and the meaning of "exact" and
"approximate".

- insert_conv (Net2Deeper, Chen et al. 2016 section 3.2): the conv starts as the identity (a one-hot centre
  tap per filter), its batch norm as the identity at inference; the ReLU after them is the identity when
  the input is non-negative (after a ReLU, a pooling of one, ...): exact. More filters than input channels
  replicate channels and the readers split their weights (Net2Wider): still exact; fewer filters, or an
  input that may be negative: approximate.
- scale channels (Net2Wider, section 3.1): new units replicate old ones, the readers split their weights
  (exact); fewer units keep some of them (approximate). scale kernel: a larger kernel is the old one
  zero-padded around its centre (exact with "same" padding); a smaller one its centre crop (approximate).
  Narrowing keeps the units with the largest L1 weight norm. scale rate: dropout is the identity at
  inference (exact).
- insert_add: the new add sums the skip into the target; the target branch is re-parameterised to compute
  target - skip, so the sum is unchanged: possible when the branch from the skip's source to the target is
  [a dense, same-padded conv] followed by per-channel affine layers (batch norm, identity, dropout), each read
  only by the next: the conv's centre tap gives up the identity scaled by the affine part, or the last batch
  norm its unit slope (exact). Any other branch (a ReLU in it): every weight is kept (an add has none) and
  the sum holds the skip (approximate).
- remove: the other layers keep their weights (approximate; exact for an identity / dropout, and a ReLU
  whose input is non-negative; a global average pool before flatten -> linear, whose averaging the linear
  layer takes over); a batch norm right after a conv is folded into it (its scale into the
  filters, its shift into the bias: exact when the conv has one, the shift lost otherwise); a layer whose
  removal changes the width its readers see hands them its input's channels in place (new ones
  zero-weighted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from na_toolkit.ir.architecture import Architecture
from na_toolkit.moves.inherit import (
    IDENTITY_AT_INFERENCE,
    ChannelMap,
    Inherited,
    NodeWeights,
    NotInheritable,
    carry_over,
    identity_batchnorm,
    identity_conv,
    nonnegative,
    propagate_channels,
    take_rows,
)

Mapping = Callable[[Architecture, Architecture, dict[str, Any], NodeWeights, np.random.Generator], Inherited]


def guarded(
    mapping: Mapping,
    parent: Architecture,
    child: Architecture,
    params: dict[str, Any],
    weights: NodeWeights,
    rng: np.random.Generator,
) -> Inherited | None:
    """`mapping(...)`, or None where it meets a layer it cannot follow (NotInheritable)."""
    try:
        return mapping(parent, child, params, weights, rng)
    except NotInheritable:
        return None


def _new_nodes(parent: Architecture, child: Architecture) -> list[str]:
    return [n.id for n in child.nodes if n.id not in parent]


# ---- insert_conv --------------------------------------------------------------------------------------
def insert_conv(parent, child, params, weights, rng) -> Inherited:
    node_id = parent.nodes[int(params["position"])].id
    new = _new_nodes(parent, child)
    conv = next(n for n in new if child.node(n).type == "conv2d" and child.node(n).inputs == (node_id,))
    bn = child.consumers[conv][0]
    relu = child.consumers[bn][0]
    out = carry_over(parent, child, weights)
    c, f = parent.shape(node_id)[0], child.shape(conv)[0]
    cmap = ChannelMap.resize(c, f, rng)
    out[conv] = identity_conv(child, conv, cmap.source)
    out[bn] = identity_batchnorm(child, bn)
    if f != c:
        propagate_channels(parent, child, child.consumers[relu], cmap, weights, out, source=relu)
    exact = cmap.exact and child.node(relu).type == "relu" and nonnegative(parent, node_id)
    return Inherited(out, "exact" if exact else "approximate")


# ---- scale --------------------------------------------------------------------------------------------
def scale(parent, child, params, weights, rng) -> Inherited:
    node_id = parent.nodes[int(params["position"])].id
    out = carry_over(parent, child, weights)
    attribute = params["attribute"]
    if attribute == "rate":  # dropout: the identity at inference, no weights
        return Inherited(out, "exact")
    held = weights.get(node_id)
    if not held:
        raise NotInheritable(f"{node_id}: no parent weights")
    if attribute == "kernel":
        return _rescale_kernel(parent, child, node_id, held, out)
    a = child.attrs(node_id)
    if child.node(node_id).type == "conv2d" and a["groups"] != 1:
        raise NotInheritable(f"{node_id}: a grouped conv's width")
    importance = np.abs(held["weight"].reshape(len(held["weight"]), -1)).sum(axis=1)
    cmap = ChannelMap.resize(parent.shape(node_id)[0], child.shape(node_id)[0], rng, importance)
    out[node_id] = {k: take_rows(v, cmap.source) for k, v in held.items()}
    propagate_channels(parent, child, child.consumers[node_id], cmap, weights, out, source=node_id)
    return Inherited(out, "exact" if cmap.exact else "approximate")


def _rescale_kernel(parent, child, node_id, held, out) -> Inherited:
    old, new = parent.attrs(node_id), child.attrs(node_id)
    centred = all(a["padding"] == -1 and a["kernel"] % 2 == 1 for a in (old, new))
    if child.shape(node_id) != parent.shape(node_id) or not centred:
        raise NotInheritable(f"{node_id}: the kernel change moves the output grid")
    w = held["weight"]
    k_old, k_new = old["kernel"], new["kernel"]
    d = abs(k_new - k_old) // 2
    if k_new > k_old:  # the old taps in the centre, zeros around: the same sums
        grown = np.zeros((*w.shape[:2], k_new, k_new), dtype=w.dtype)
        grown[:, :, d : d + k_old, d : d + k_old] = w
        out[node_id] = {**held, "weight": grown}
        return Inherited(out, "exact")
    out[node_id] = {**held, "weight": w[:, :, d : d + k_new, d : d + k_new].copy()}
    return Inherited(out, "approximate")


# ---- insert_add ---------------------------------------------------------------------------------------
_AFFINE = frozenset({"batchnorm2d"}) | IDENTITY_AT_INFERENCE


def _affine(arch: Architecture, node_id: str, weights: NodeWeights) -> tuple[np.ndarray, np.ndarray]:
    """A batch norm at inference as y = scale * x + shift, per channel (float64)."""
    w = weights.get(node_id)
    if not w:
        raise NotInheritable(f"{node_id}: no parent weights")
    eps = arch.attrs(node_id)["eps"]
    s = w["weight"].astype(np.float64) / np.sqrt(w["running_var"].astype(np.float64) + eps)
    return s, w["bias"].astype(np.float64) - s * w["running_mean"].astype(np.float64)


def _branch(parent: Architecture, source: str, target: str) -> list[str]:
    """The nodes from just after `source` to `target`, each with one input and (but the target) read only
    by the next; NotInheritable when the target is not reached that way."""
    chain: list[str] = []
    nid = target
    while nid != source:
        if nid not in parent or len(parent.node(nid).inputs) != 1:
            raise NotInheritable(f"{target} is not reached from {source} through a chain of layers")
        chain.append(nid)
        nid = parent.node(nid).inputs[0]
    chain.reverse()
    for a, b in zip(chain, chain[1:]):
        if parent.consumers[a] != (b,):
            raise NotInheritable(f"{a} is read outside the branch")
    return chain


def insert_add(parent, child, params, weights, rng) -> Inherited:
    out = carry_over(parent, child, weights)
    try:
        return _cancel_skip(parent, params, weights, out)
    except NotInheritable:
        # every weight is the parent's (an add has none); the sum now holds the skip: approximate
        return Inherited(carry_over(parent, child, weights), "approximate")


def _cancel_skip(parent, params, weights, out) -> Inherited:
    source = parent.nodes[int(params["source"])].id
    target = parent.nodes[int(params["target"])].id
    chain = _branch(parent, source, target)
    first = parent.node(chain[0])
    conv = first.id if first.type == "conv2d" else None
    affine = chain[1:] if conv else chain
    if any(parent.node(n).type not in _AFFINE for n in affine):
        raise NotInheritable("the branch holds a layer that is not per-channel affine")
    c = parent.shape(target)[0]
    bns = [n for n in affine if parent.node(n).type == "batchnorm2d"]
    if conv is not None:
        # branch(x) = A * conv(x) + B; conv'(x) = conv(x) - x / A gives branch'(x) = branch(x) - x
        scale_total = np.ones(c)
        for n in bns:
            scale_total = scale_total * _affine(parent, n, weights)[0]
        if np.abs(scale_total).min() < 1e-6:
            raise NotInheritable("the branch scales a channel to zero")
        held = weights.get(conv)
        a = parent.attrs(conv)
        k = a["kernel"]
        if not held or a["groups"] != 1 or k % 2 == 0 or a["padding"] not in (-1, a["dilation"] * (k - 1) // 2):
            raise NotInheritable(f"{conv}: not a dense, same-padded conv")
        w = held["weight"].astype(np.float64).copy()
        w[np.arange(c), np.arange(c), k // 2, k // 2] -= 1.0 / scale_total
        out[conv] = {**held, "weight": w.astype(held["weight"].dtype)}
        return Inherited(out, "exact")
    if not bns:
        raise NotInheritable("no weights in the branch to give up the identity")
    # the last batch norm b: y = s * u + t with u = A * x + B (the affine layers before it); s' = s - 1 / A
    # gives y' = y - x, and t' = t + (s - s') * B keeps the shift
    last = bns[-1]
    scale_before, shift_before = np.ones(c), np.zeros(c)
    for n in bns[:-1]:
        s, t = _affine(parent, n, weights)
        scale_before, shift_before = s * scale_before, s * shift_before + t
    if np.abs(scale_before).min() < 1e-6:
        raise NotInheritable("the branch scales a channel to zero")
    s, t = _affine(parent, last, weights)
    s_new = s - 1.0 / scale_before
    t_new = t + (s - s_new) * shift_before
    held = weights[last]
    root = np.sqrt(held["running_var"].astype(np.float64) + parent.attrs(last)["eps"])
    dtype = held["weight"].dtype
    out[last] = {
        **held,
        "weight": (s_new * root).astype(dtype),
        "bias": (t_new + s_new * held["running_mean"].astype(np.float64)).astype(dtype),
    }
    return Inherited(out, "exact")


# ---- remove -------------------------------------------------------------------------------------------
def _unpool_readers(parent, child, pool: str, source: str, weights: NodeWeights, out: NodeWeights) -> bool:
    """A removed global average pool read by flatten -> [identity / dropout] -> linear: the linear layer does
    the averaging (its weight for channel c spread over c's H*W flattened positions, divided by H*W): exact."""
    readers = parent.consumers[pool]
    if len(readers) != 1 or parent.node(readers[0]).type != "flatten":
        return False
    nid = readers[0]
    while child.node(nid).type != "linear":
        nxt = child.consumers[nid]
        if len(nxt) != 1 or nid == child.output:
            return False
        nid = nxt[0]
        if child.node(nid).type not in IDENTITY_AT_INFERENCE | {"linear"}:
            return False
    held = weights.get(nid)
    if not held:
        return False
    _c, h, w = parent.shape(source)
    weight = held["weight"]
    out[nid] = {**held, "weight": (np.repeat(weight.astype(np.float64), h * w, axis=1) / (h * w)).astype(weight.dtype)}
    return True


def _fold_batchnorm(parent, bn: str, source: str, weights: NodeWeights, out: NodeWeights) -> bool:
    """A removed batch norm right after a conv read only by it goes into the conv: its scale into the
    filters (y = s * conv(x) + t), its shift into the conv's bias when it has one. True when exact (a bias took
    the shift); without a bias the shift is lost (approximate)."""
    if source not in parent or parent.node(source).type != "conv2d" or parent.consumers[source] != (bn,):
        return False
    held = weights.get(source)
    if not held or not weights.get(bn):
        return False
    s, t = _affine(parent, bn, weights)
    w = held["weight"]
    folded = {**held, "weight": (w.astype(np.float64) * s.reshape(-1, 1, 1, 1)).astype(w.dtype)}
    if "bias" in held:
        folded["bias"] = (held["bias"].astype(np.float64) * s + t).astype(held["bias"].dtype)
    out[source] = folded
    return "bias" in held


def remove(parent, child, params, weights, rng) -> Inherited:
    node = parent.nodes[int(params["position"])]
    source = node.inputs[0]
    out = carry_over(parent, child, weights)
    old, new = parent.shape(node.id), parent.shape(source)
    if old == new:
        exact = node.type in IDENTITY_AT_INFERENCE or (node.type == "relu" and nonnegative(parent, source))
        if node.type == "batchnorm2d" and _fold_batchnorm(parent, node.id, source, weights, out):
            exact = True
        return Inherited(out, "exact" if exact else "approximate")
    if node.type == "global_avg_pool" and _unpool_readers(parent, child, node.id, source, weights, out):
        return Inherited(out, "exact")
    if old[1:] == new[1:]:  # only the width its readers see changes: they read its input's channels in place
        readers = [r for r in parent.consumers[node.id] if r in child]
        try:
            propagate_channels(parent, child, readers, ChannelMap.extend(old[0], new[0]), weights, out)
        except NotInheritable:
            pass  # those readers keep their fresh initialisation: approximate either way
    return Inherited(out, "approximate")

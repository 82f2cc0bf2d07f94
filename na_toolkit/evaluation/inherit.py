"""Evaluating a child from its parent's trained weights (docs/moves.md, "Weight inheritance").

The search attaches a `ParentWeights` to a candidate's evaluation task (plain data: the parent's
architecture JSON, its stored state dict and the moves from it to the child). `inherit_state` replays the
moves, asking each move type to map the weights (`MoveType.inherit_weights`, numpy: `na_toolkit.moves.inherit`)
and turns the result into a state dict of the child's torch module; `evaluate_with_parent` hands it to an
evaluator that can start from given weights (`evaluate_with_weights(arch, init_state=...)`, the torch
evaluator: fine-tuned for `inherit_epochs`, or, an approximate start far below its parent, recovered for
`inherit_recovery_epochs` at the full rate). Whatever happens, the result records it in `extra`:
`inherited` (true / false), `function_preserving` ("exact", "approximate", "none"), `recovery` (true / false)
and, when nothing was inherited or the start was recovered, `inherit_reason`. A parent without stored
weights, a move that cannot preserve the function or an evaluator that cannot start from weights all fall
back to training from scratch.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NAToolkitError
from ..ir.architecture import Architecture
from ..moves.inherit import NodeWeights, Preservation, complete, weakest
from .base import EvaluationResult, Evaluator
from .repair import ParentNetwork

if TYPE_CHECKING:  # pragma: no cover
    from ..moves import MoveType
    from ..registry import Registry

#: state dict key prefix of a node's module in `ArchitectureModule` (`layers.<key(node id)>.<parameter>`)
PREFIX = "layers."


@dataclass(frozen=True)
class ParentWeights:
    """What a child's evaluation may inherit from: the parent's architecture (JSON) and trained state dict
    (None: no stored weights, `reason` says why), the moves (`Move.to_json()`) from the parent to the
    child, and the parent's validation accuracy (the bar an approximately inherited child must start near).
    Plain data: it travels to a worker inside an executor task."""

    parent_hash: str | None
    arch_json: dict[str, Any] | None
    state: dict[str, Any] | None
    moves: tuple[dict[str, Any], ...]
    reason: str = ""
    valid_accuracy: float | None = None


@dataclass(frozen=True)
class InheritedState:
    """The child's initial weights (a state dict of its torch module; None: train from scratch), how well
    they keep the parent's function, and why nothing was inherited (when `state` is None)."""

    state: dict[str, Any] | None
    preservation: Preservation
    reason: str = ""
    #: ids of the child's nodes present in the parent and in every network in between: the same node
    shared: frozenset[str] = frozenset()

    @property
    def inherited(self) -> bool:
        return self.state is not None


def _key(node_id: str) -> str:
    return node_id.replace(".", "_")  # as ArchitectureModule.key (ModuleDict keys may not hold '.')


def node_weights(arch: Architecture, state: dict[str, Any]) -> NodeWeights:
    """A state dict of `arch.to_torch()` as node id -> parameter -> numpy array (floating-point tensors)."""
    out: NodeWeights = {}
    for node in arch.nodes:
        prefix = f"{PREFIX}{_key(node.id)}."
        params = {
            k[len(prefix) :]: v.detach().cpu().numpy()
            for k, v in state.items()
            if k.startswith(prefix) and v.dtype.is_floating_point
        }
        if params:
            out[node.id] = params
    return out


def to_state(arch: Architecture, weights: NodeWeights, seed: int) -> dict[str, Any]:
    """A state dict of `arch.to_torch(seed)` with the given nodes' weights in place of the fresh ones."""
    import torch

    state = arch.to_torch(seed=seed).state_dict()
    for nid, params in weights.items():
        for name, array in params.items():
            key = f"{PREFIX}{_key(nid)}.{name}"
            if key not in state or tuple(state[key].shape) != tuple(np.shape(array)):
                raise NAToolkitError(f"inherited weight {key} of shape {np.shape(array)} does not fit the child")
            state[key] = torch.as_tensor(np.asarray(array), dtype=state[key].dtype).clone()
    return state


def _rng(parent_hash: str, child_hash: str) -> np.random.Generator:
    """Randomness of a mapping (which channels a widening replicates) as a function of the two networks:
    the same child gets the same weights in a resumed run."""
    digest = hashlib.sha256(f"{parent_hash}->{child_hash}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def inherit_state(
    parent: Architecture,
    state: dict[str, Any],
    moves: tuple[dict[str, Any], ...],
    child: Architecture,
    move_types: Registry[MoveType],
    seed: int = 0,
) -> InheritedState:
    """The child's initial weights from the parent's `state`, through `moves` (Move JSON, in order): each
    move type maps them (`inherit_weights`); the first that cannot makes the child train from scratch.
    Nodes no mapping covers keep `child.to_torch(seed)`'s initialisation."""
    from ..moves import Move

    if not moves:
        return InheritedState(None, "none", "no moves from the parent")
    arch, weights = parent, node_weights(parent, state)
    levels: list[Preservation] = []
    shared = {n.id for n in parent.nodes}
    for doc in moves:
        move = Move(doc["operation"], dict(doc["params"]))
        try:
            op = move_types.get(move.name)
            nxt = op.apply(arch, **move.params)
        except NAToolkitError as exc:
            return InheritedState(None, "none", f"move {move.name} does not replay on the parent: {exc}")
        got = op.inherit_weights(arch, nxt, move.params, weights, _rng(arch.hash, nxt.hash))
        if got is None:
            return InheritedState(None, "none", f"move {move.name} {move.params} is not function-preserving here")
        levels.append(got.preservation)
        arch, weights = nxt, got.weights
        shared &= {n.id for n in arch.nodes}
    if arch.hash != child.hash:
        return InheritedState(None, "none", "the moves from the parent do not lead to this network")
    level = weakest(levels)
    if level == "exact" and not complete(child, weights):
        level = "approximate"  # a mapping that claims exact but leaves weights at their fresh initialisation
    return InheritedState(to_state(child, weights, seed), level, shared=frozenset(shared))


def evaluate_with_parent(
    evaluator: Evaluator,
    arch: Architecture,
    parent: ParentWeights,
    move_types: Registry[MoveType],
) -> tuple[EvaluationResult, dict[str, Any] | None]:
    """Evaluate `arch` starting from `parent`'s weights mapped through the moves where they can be (else from
    scratch), returning the result (with `inherited`, `function_preserving` and `inherit_reason` in `extra`)
    and the trained weights (None from an evaluator that gives none)."""
    with_weights = getattr(evaluator, "evaluate_with_weights", None)
    takes = set(inspect.signature(with_weights).parameters) if with_weights is not None else set()
    takes_init = "init_state" in takes
    inherited = InheritedState(None, "none", parent.reason or "the parent has no stored weights")
    parent_arch: Architecture | None = None
    if parent.state is not None and parent.arch_json is not None:
        if not takes_init:
            inherited = InheritedState(None, "none", f"evaluator {evaluator.name!r} cannot start from given weights")
        else:
            parent_arch = Architecture.from_json(parent.arch_json, layer_types=arch.layer_types)
            seed = int(evaluator.options.get("seed", 0))
            inherited = inherit_state(parent_arch, parent.state, parent.moves, arch, move_types, seed)
    weights: dict[str, Any] | None = None
    recovered: str | None = None
    if with_weights is not None and inherited.state is not None:
        # an approximate start far below the parent is recovered at the full rate, or dropped for training
        # from scratch (the evaluator checks it before fine-tuning: `inherit_max_drop`, `inherit_damaged`)
        bar = parent.valid_accuracy if inherited.preservation == "approximate" else None
        kwargs: dict[str, Any] = {"parent_accuracy": bar} if bar is not None and "parent_accuracy" in takes else {}
        if bar is not None and parent_arch is not None and "parent_network" in takes:
            # for the repair's layer reconstruction
            kwargs["parent_network"] = ParentNetwork(parent_arch, parent.state, inherited.shared)
        result, weights = with_weights(arch, init_state=inherited.state, **kwargs)
        fallback = result.extra.get("inherit_fallback")
        recovery = result.extra.get("inherit_recovery")
        if recovery is not None:
            recovered = (
                f"the {inherited.preservation} start reached {recovery['valid_accuracy']:.4f} validation accuracy, "
                f"more than inherit_max_drop below the parent's {recovery['parent_valid_accuracy']:.4f}: "
                f"recovered for {recovery['epochs']} epochs at the full learning rate"
            )
        if fallback is not None and fallback.get("diverged"):
            recovered = None
            inherited = InheritedState(
                None,
                inherited.preservation,
                f"training the {inherited.preservation} start (validation accuracy {fallback['valid_accuracy']:.4f}) "
                f"diverged after {fallback['epochs']} epochs (a non-finite loss): trained from scratch",
            )
        elif fallback is not None:
            inherited = InheritedState(
                None,
                inherited.preservation,
                f"the {inherited.preservation} start reached {fallback['valid_accuracy']:.4f} validation accuracy, "
                f"more than inherit_max_drop below the parent's {fallback['parent_valid_accuracy']:.4f}: "
                "trained from scratch",
            )
    elif with_weights is not None:
        result, weights = with_weights(arch)
    else:
        result = evaluator.evaluate(arch)
    record: dict[str, Any] = {
        "inherited": inherited.inherited,
        "function_preserving": inherited.preservation,
        "inherited_from": parent.parent_hash if inherited.inherited else None,
        "recovery": recovered is not None,
    }
    if not inherited.inherited:
        record["inherit_reason"] = inherited.reason
    elif recovered is not None:
        record["inherit_reason"] = recovered
    return replace(result, extra={**result.extra, **record}), weights

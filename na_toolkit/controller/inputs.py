"""Checks of what a caller hands the controller (library use: docs/controller.md, "Library use").

The controller is used from the strategy and directly, by a researcher's own loop. What it is given there is
checked before any torch code runs, so a wrong call is one `NAToolkitError` naming the argument and what to
do, not an exception from deep inside torch; and a NaN reward is refused before it reaches the optimizer,
where one step would turn every weight into NaN for good. Constructor arguments are `ConfigError`s, the
networks, decisions and rewards of a call `DataError`s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, DataError
from ..ir.architecture import Architecture, architectures
from ..moves import MoveType
from ..validation import is_finite_number

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from ..embedding import ArchitectureTokenizer
    from .action_space import ActionSpace
    from .policy import Decision


def check_move_types(move_types: Any) -> tuple[MoveType, ...]:
    """`ActionSpace.from_move_types`'s argument: MoveType objects, not their names."""
    if isinstance(move_types, str | MoveType):
        raise ConfigError("from_move_types takes a sequence of moves, not one (wrap it in a list)")
    ops = tuple(move_types)
    for i, op in enumerate(ops):
        if not isinstance(op, MoveType):
            hint = f" (toolkit.moves.get({op!r}))" if isinstance(op, str) else ""
            raise ConfigError(f"move {i} is a {type(op).__name__}, not a MoveType: pass the registered move{hint}")
    return ops


def check_settings(
    seed: Any, lr: Any, grad_steps: Any, embed_cache_size: Any, dims: dict[str, Any], tokenizer: Any, space: Any
) -> None:
    """The constructor's arguments (`Controller.__init__`)."""
    from ..embedding import ArchitectureTokenizer
    from .action_space import ActionSpace

    if not isinstance(tokenizer, ArchitectureTokenizer):
        raise ConfigError(
            f"the controller's tokenizer is a {type(tokenizer).__name__}, not an ArchitectureTokenizer: "
            "build one with ArchitectureTokenizer.for_registry(toolkit.layer_types)"
        )
    if not isinstance(space, ActionSpace):
        raise ConfigError(
            f"the controller's space is a {type(space).__name__}, not an ActionSpace: build one with "
            "ActionSpace.from_move_types([toolkit.moves.get(name), ...])"
        )
    if not _is_int(seed):
        raise ConfigError(f"the controller's seed must be an int (its initial weights), got {seed!r}")
    if not is_finite_number(lr) or lr <= 0:
        raise ConfigError(f"the controller's lr must be a finite number > 0, got {lr!r}")
    if grad_steps is not None and (not _is_int(grad_steps) or grad_steps < 1):
        raise ConfigError(
            f"grad_steps must be an int >= 1 (layers back-propagated from each network's end) or None (every "
            f"layer), got {grad_steps!r}"
        )
    if not _is_int(embed_cache_size) or embed_cache_size < 0:
        raise ConfigError(f"embed_cache_size must be an int >= 0, got {embed_cache_size!r}")
    for name, value in dims.items():
        if not _is_int(value) or value < 1:
            raise ConfigError(f"the controller's {name} must be an int >= 1, got {value!r}")


def check_embedding(embedding: Any, tokenizer: ArchitectureTokenizer, dims: dict[str, int]) -> None:
    """A given embedding (the neural predictor's, or the caller's) fits the tokenizer and the widths."""
    from ..embedding.network import NetworkEmbedding

    if not isinstance(embedding, NetworkEmbedding):
        raise ConfigError(
            f"the controller's embedding is a {type(embedding).__name__}, not a NetworkEmbedding: build one "
            "with make_network_embedding(tokenizer)"
        )
    embedding.check_tokenizer(tokenizer)
    widths = {
        "token_dim": embedding.token_dim,
        "layer_dim": embedding.layer_dim,
        "net_dim": embedding.net_dim,
    }
    wrong = [f"{k} {widths[k]} (the controller's {dims[k]})" for k in widths if widths[k] != dims[k]]
    if wrong:
        raise ConfigError(
            f"the embedding's widths differ from the controller's: {', '.join(wrong)}; pass the embedding's "
            "widths to Controller(token_dim=..., layer_dim=..., net_dim=...)"
        )


def check_module(net: nn.Module) -> None:
    """Every weight on the CPU in float32: masks and sampling are numpy, so the controller runs there."""
    places = sorted({f"{p.device}/{str(p.dtype).removeprefix('torch.')}" for p in net.parameters()})
    if places != ["cpu/float32"]:
        raise ConfigError(
            f"the controller runs on the CPU in float32, but its weights are on {', '.join(places)} (an "
            "embedding given on another device or dtype, or torch.set_default_device / set_default_dtype "
            "in force): pass embedding.cpu().float(), build it with torch's defaults"
        )


def check_networks(archs: Any, tokenizer: ArchitectureTokenizer, what: str = "states") -> list[Architecture]:
    """A sequence of Architectures whose layer types the tokenizer's vocabulary knows. A layer type outside
    it would get the type table's out-of-vocabulary token and none of its declared attributes: the
    controller could not tell its layers apart, nor see a move that edits one."""
    archs = architectures(archs, what)
    known = tokenizer.declarations
    # a network's layer types are among its registry's: a registry the vocabulary covers needs no node scan
    covered: dict[int, bool] = {}  # by id: the registries stay alive for the call
    for a in archs:
        registry = a.layer_types
        if id(registry) not in covered:
            covered[id(registry)] = all(name in known for name in registry.names())
        if covered[id(registry)]:
            continue
        unknown = sorted({n.type for n in a.nodes if n.type not in known})
        if unknown:
            raise DataError(
                f"{what}: network {a.hash} ({a.name or 'unnamed'}) has layer type(s) {', '.join(map(repr, unknown))} "
                "that the controller's embedding vocabulary does not know: build its tokenizer from a registry "
                "that holds them (ArchitectureTokenizer.for_registry(toolkit.layer_types), with their plugin "
                "loaded); a pretrained neural predictor sharing its embedding must be pretrained with them too"
            )
    return archs


def check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise DataError(
            f"rng must be a numpy Generator (np.random.default_rng(seed); a search's context.rng), got "
            f"{type(rng).__name__}: every draw comes from it, so a run is a function of its seed"
        )
    return rng


def check_transitions(
    space: ActionSpace,
    states: list[Architecture],
    decisions: Any,
    next_states: list[Architecture],
    rewards: Any,
    advantages: Any,
    weights: dict[str, Any],
) -> tuple[list[Decision], np.ndarray, np.ndarray | None]:
    """`Controller.update`'s batch: as many decisions, next states, rewards (and advantages) as states, at
    least one; each decision one this controller's space made for its state; every number finite."""
    from .policy import Decision

    decisions = list(decisions)
    n = len(states)
    if n == 0:
        raise DataError(
            "an update needs at least one transition (state, decision, next state, reward); got none: run "
            "episodes with decide() first, and leave out the states where it returned None"
        )
    counts = {"decisions": len(decisions), "next_states": len(next_states)}
    wrong = [f"{v} {k}" for k, v in counts.items() if v != n]
    if wrong:
        raise DataError(
            f"an update takes one decision and one next state per state: got {n} states, {', '.join(wrong)}"
        )
    for i, (a, d) in enumerate(zip(states, decisions)):
        if d is None:
            raise DataError(
                f"decision {i} is None (decide() found no valid move for that state): leave that transition out"
            )
        if not isinstance(d, Decision):
            raise DataError(f"decision {i} is a {type(d).__name__}, not a Decision from Controller.decide")
        _check_decision(space, i, a, d)
    for name, value in weights.items():
        if not is_finite_number(value) or value < 0 or (name == "gamma" and value > 1):
            bound = "in [0, 1]" if name == "gamma" else ">= 0"
            raise DataError(f"update: {name} must be a finite number {bound}, got {value!r}")
    r = _finite_vector("rewards", rewards, n)
    adv = None if advantages is None else _finite_vector("advantages", advantages, n)
    return decisions, r, adv


def _check_decision(space: ActionSpace, i: int, arch: Architecture, d: Decision) -> None:
    ops = space.move_types
    if d.state and d.state != arch.hash:  # masks of the same lengths would not tell two such networks apart
        raise DataError(
            f"decision {i} ({d.move}) was not made for state {i} (network {arch.hash}) but for network {d.state}: "
            "pass each state with the decision decide() returned for it, in the same order"
        )
    if not (0 <= d.op < len(ops)) or d.move.name != ops[d.op].name or len(d.values) != len(space.params[d.op]):
        raise DataError(
            f"decision {i} ({d.move.name}) was not made by a controller of these moves ({space.names}): "
            "update a controller with its own decisions"
        )
    fits = len(d.move_mask) == len(ops) and len(d.masks) == len(d.values)
    for p, mask, v in zip(space.params[d.op], d.masks, d.values):
        fits = fits and len(mask) == p.size_for(arch) and 0 <= v < len(mask) and bool(mask[v])
    if not fits:
        raise DataError(
            f"decision {i} ({d.move}) was not made for state {i} (network {arch.hash}): pass each state with "
            "the decision decide() returned for it, in the same order"
        )


def _finite_vector(name: str, values: Any, n: int) -> np.ndarray:
    """One finite float per transition, from a sequence, a numpy array or a torch tensor on any device."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor: read where it lives
        try:
            values = values.detach().cpu().numpy()
        except (RuntimeError, NotImplementedError, TypeError) as e:
            raise DataError(f"{name}: cannot read the tensor ({' '.join(str(e).split())[:120]})") from None
    if isinstance(values, list | tuple) and any(isinstance(v, bool | str | bytes) for v in values):
        raise DataError(f"{name} must be numbers, got {next(v for v in values if isinstance(v, bool | str | bytes))!r}")
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be numbers, one per transition") from None
    if out.shape != (n,):
        raise DataError(f"{name} must be one number per transition: expected shape ({n},), got {out.shape}")
    bad = np.flatnonzero(~np.isfinite(out))
    if len(bad):
        raise DataError(
            f"{name} hold NaN or infinite values (transitions {bad[:5].tolist()}): give those a finite value (e.g. "
            "the batch's lowest) or leave them out; one step on them would turn every weight into NaN"
        )
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_state(state: Any, space: ActionSpace, net: nn.Module, trained: list[Any], train_embedding: bool) -> None:
    """`Controller.load_state_dict`'s argument, checked whole before anything is loaded: a state that does not
    fit (other moves, another vocabulary, the hand-written Adam of older versions, an optimizer over other
    weights: a controller saved with another `train_embedding`) is a `ConfigError`, and the controller it was
    meant for stays as it was (torch's own loads would raise a bare error halfway, the weights already
    replaced)."""
    missing = sorted({"net", "optimizer", "updates", "space"} - set(state)) if isinstance(state, dict) else None
    if missing is None or missing:
        raise ConfigError(
            f"a controller's state is the dict its state_dict() returned; this one lacks {missing or 'everything'}"
        )
    if state.get("space") != space.describe():
        names = [s.get("operation") if isinstance(s, dict) else s for s in state.get("space") or []]
        raise ConfigError(
            f"the saved controller was built for other moves ({names}); this search enables {space.names}"
        )
    optimizer = state.get("optimizer")
    if not isinstance(optimizer, dict) or "param_groups" not in optimizer:
        raise ConfigError(
            "the saved controller's optimizer state is not torch.optim.Adam's (saved by an older na_toolkit, "
            "whose Adam was hand-written); start the search again rather than warm-starting from it"
        )
    mine = net.state_dict()
    theirs = state["net"]
    if (
        not isinstance(theirs, dict)
        or set(theirs) != set(mine)
        or any(getattr(theirs[k], "shape", None) != v.shape for k, v in mine.items())
    ):
        raise ConfigError(
            "the saved controller's networks do not fit this one (saved by another na_toolkit, with another "
            "embedding vocabulary or other layer types); start the search again rather than warm-starting from it"
        )
    _check_saved_optimizer(optimizer, net, trained, train_embedding)
    if not _is_int(state["updates"]) or state["updates"] < 0:
        raise ConfigError(f"the saved controller's update count must be an int >= 0, got {state['updates']!r}")


def _check_saved_optimizer(
    optimizer: dict[str, Any], net: nn.Module, trained: list[Any], train_embedding: bool
) -> None:
    """The saved Adam state covers the weights this controller trains, each moment of its weight's shape."""
    groups = optimizer.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ConfigError("the saved controller's optimizer state has no list of parameter groups: not Adam's")
    ids = [i for g in groups for i in g.get("params", ())]
    if len(ids) != len(trained):
        every = sum(1 for _ in net.parameters())
        frozen = every - sum(1 for _ in net.get_submodule("embedding").parameters())
        saved_with = {every: "true", frozen: "false"}.get(len(ids))
        why = f"it was saved with train_embedding = {saved_with}" if saved_with else "it trained other weights"
        raise ConfigError(
            f"the saved controller's optimizer holds the moments of {len(ids)} weights, this controller trains "
            f"{len(trained)} (train_embedding = {str(train_embedding).lower()}): {why}; build the controller "
            "with the same train_embedding as the saved one"
        )
    shapes = dict(zip(ids, (p.shape for p in trained)))
    for i, moments in (optimizer.get("state") or {}).items():
        wrong = (
            i not in shapes
            or not isinstance(moments, dict)
            or any(getattr(moments.get(k), "shape", shapes[i]) != shapes[i] for k in ("exp_avg", "exp_avg_sq"))
        )
        if wrong:
            raise ConfigError(f"the saved controller's optimizer state of weight {i!r} does not fit this controller")

"""Built-in moves: insert_conv, insert_add, scale, remove (docs/moves.md describes each).

Every move is a pure function IR -> IR with exact masks: a value is admitted only when some completion of
the remaining parameters applies. Validity comes from re-inferring shapes downstream of the edit
(`na_toolkit.ir.edit.propagate`) with the layer types' own code, the code the Architecture constructor
runs, so a plugin's layer type takes part without code here; the result is made by `ir.edit.rebuild` /
`insert_after`, the helpers a plugin's move uses too. Downstream layers adapt where they can: a conv or linear layer
absorbs a new input width, a depthwise conv follows it (its groups and filters change with it); an edit
that something downstream cannot take (an add of two shapes, a changed network output) is masked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import na_toolkit
from na_toolkit.builtin import moves_inherit
from na_toolkit.caches import lru_dict
from na_toolkit.errors import MoveError
from na_toolkit.ir import edit
from na_toolkit.ir.architecture import INPUT, Architecture, Attrs, Node
from na_toolkit.ir.layers import Shape
from na_toolkit.moves import MoveType, ParamSpec

FILTER_CHOICES = (8, 16, 24, 32, 48, 64, 96, 128)
KERNEL_CHOICES = (1, 3, 5, 7)
CHANNEL_CHOICES = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
RATE_CHOICES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
#: what `scale` changes and the values of each; the `value` parameter holds them all (disjoint sets:
#: channels >= 8, kernels odd <= 7, rates floats < 1)
SCALE_VALUES: dict[str, tuple[Any, ...]] = {"channels": CHANNEL_CHOICES, "kernel": KERNEL_CHOICES, "rate": RATE_CHOICES}
#: layer type -> the attribute that `scale channels` sets (the layer's output width)
WIDTH_ATTR = {"conv2d": "filters", "linear": "units"}


# ---- the moves' view of an architecture -----------------------------------------------------------------
class _View(edit.ArchView):
    """`edit.ArchView` plus the number of positions (every node: positions are not capped), and conv2d
    among the types (insert_conv adds one where the network may have none)."""

    __slots__ = ("n",)

    def __init__(self, arch: Architecture):
        super().__init__(arch)
        self.n = len(arch.nodes)
        self.layer_type("conv2d")


# id(arch) -> _View of the architectures masked most recently (sample() asks 2-3 masks of one); a view
# holds its architecture, so the id is not reused while the entry lives
_VIEWS = lru_dict("builtin.moves.views", 8)


def _view(arch: Architecture) -> _View:
    v = _VIEWS.get(id(arch))
    if v is None or v.arch is not arch:
        v = _VIEWS[id(arch)] = _View(arch)
    return v  # type: ignore[no-any-return]


def _node_at(arch: Architecture, op: str, position: Any) -> Node:
    try:
        i = int(position)
    except (TypeError, ValueError):
        raise MoveError(f"{op}: a position must be an int, got {position!r}") from None
    if not 0 <= i < len(arch.nodes):
        raise MoveError(f"{op}: position {i} is outside this architecture's {len(arch.nodes)} nodes")
    return arch.nodes[i]


def _choice(op: str, param: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """The choice `value` stands for (3.0 is 3); a MoveError naming the choices for anything else (a
    string, a bool, a number that is not one of them)."""
    if not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating):
        for c in choices:
            if c == value:
                return c
    raise MoveError(f"{op}: {param}={value!r} is not one of {list(choices)}")


class _BuiltinMove(MoveType):
    """Shared by the built-in moves: the first parameter is a position, decided per node by
    `_valid_position` and memoised per architecture."""

    def _valid_position(self, view: _View, i: int) -> bool:
        raise NotImplementedError

    def _positions(self, view: _View) -> np.ndarray:
        def compute():
            return np.array([self._valid_position(view, i) for i in range(view.n)], dtype=bool)

        return view.cached((self.name, "positions"), compute)

    def is_applicable(self, arch: Architecture) -> bool:
        # stops at the first valid position: the full mask is only built for the move actually sampled
        view = _view(arch)
        done = view.memo.get((self.name, "positions"))
        if done is not None:
            return bool(done.any())
        return any(self._valid_position(view, i) for i in range(view.n))

    def check_names(self, params: dict[str, Any]) -> None:
        names = [p.name for p in self.params()]
        if set(params) != set(names):
            raise MoveError(f"{self.name}: expected parameters {names}, got {sorted(params)}")

    def sample(self, arch: Architecture, rng: np.random.Generator) -> dict[str, Any] | None:
        """As `MoveType.sample`: uniform over the admitted values, one parameter at a time. The position is
        drawn by rejection (uniform proposals, the first valid one kept, falling back to the full mask),
        which is uniform over the valid positions too but checks ~1 node instead of all of them."""
        chosen: dict[str, Any] = {}
        specs = self.params()
        view = _view(arch)
        # the same draws whether or not this network's position mask is memoised already (the memo is a
        # process-wide cache: what it holds must never change a search's random numbers)
        done = view.memo.get((self.name, "positions"))
        if view.n:
            for _ in range(8):
                i = int(rng.integers(view.n))
                if done[i] if done is not None else self._valid_position(view, i):
                    chosen[specs[0].name] = specs[0].value_at(i)
                    break
        for p in specs:
            if p.name in chosen:
                continue
            idx = np.flatnonzero(self.mask(arch, p.name, chosen))
            if idx.size == 0:
                return None
            chosen[p.name] = p.value_at(int(idx[rng.integers(idx.size)]))
        return chosen


# ---- insert_conv --------------------------------------------------------------------------------------
# (conv layer type, input shape, filters, kernel) -> the inserted conv keeps H, W
_CONV_FITS = lru_dict("builtin.moves.conv_fits", 10_000)
_INSERT_ATTRS = {(f, k): Attrs(filters=f, kernel=k) for f in FILTER_CHOICES for k in KERNEL_CHOICES}


class InsertConv(_BuiltinMove):
    """Insert conv2d(filters, kernel, stride 1, same padding, no bias) -> batchnorm2d -> relu after the node
    at `position` (a feature map, not the output); the node's consumers read the relu instead. Filters
    other than the node's channel count are admitted when every consumer adapts."""

    name = "insert_conv"
    description = "insert conv+batchnorm+relu after a layer producing a feature map"
    _params = (
        ParamSpec.position("position"),
        ParamSpec("filters", FILTER_CHOICES),
        ParamSpec("kernel", KERNEL_CHOICES),
    )

    def params(self) -> tuple[ParamSpec, ...]:
        return self._params

    @staticmethod
    def _filters_changes(view: _View, i: int, filters: int) -> dict[str, Attrs] | None:
        node = view.nodes[i]
        shape = view.shapes[node.id]
        if node.id == view.arch.output or len(shape) != 3:
            return None
        if "conv2d" not in view.types:
            return None
        if filters == shape[0]:
            return {}
        widened = {node.id: (filters, *shape[1:])}
        return view.cached(("insert_conv", i, filters), lambda: edit.propagate(view, widened, {}))

    @staticmethod
    def _conv_fits(view: _View, i: int, filters: int, kernel: int) -> bool:
        """The inserted conv maps the node's (C, H, W) to (filters, H, W)."""
        shape = view.shapes[view.nodes[i].id]
        conv = view.types["conv2d"]
        key = (conv, shape, filters, kernel)
        ok = _CONV_FITS.get(key)
        if ok is None:
            ok = edit.try_infer(conv, _INSERT_ATTRS[filters, kernel], (shape,)) == (filters, *shape[1:])
            _CONV_FITS[key] = ok
        return ok

    def _filters_ok(self, view: _View, i: int, f: int) -> bool:
        if self._filters_changes(view, i, f) is None:
            return False
        return any(self._conv_fits(view, i, f, k) for k in KERNEL_CHOICES)

    def _valid_position(self, view: _View, i: int) -> bool:
        node = view.nodes[i]
        shape = view.shapes[node.id]
        conv = view.types.get("conv2d")
        if node.id == view.arch.output or len(shape) != 3 or conv is None:
            return False
        # the node's own width with a 3x3 kernel fits and needs nothing downstream: the common case first
        if shape[0] in FILTER_CHOICES:
            if _CONV_FITS.get((conv, shape, shape[0], 3)) or self._filters_ok(view, i, shape[0]):
                return True
        return any(self._filters_ok(view, i, f) for f in FILTER_CHOICES)

    def mask(self, arch, param, chosen):
        view = _view(arch)
        if param == "position":
            return self._positions(view)
        i = int(chosen["position"])
        if param not in ("filters", "kernel"):
            raise MoveError(f"{self.name} has no parameter {param!r}")
        if not 0 <= i < view.n or "conv2d" not in view.types:
            return np.zeros(len(self.param(param)), dtype=bool)
        if param == "filters":
            return np.array([self._filters_ok(view, i, f) for f in FILTER_CHOICES])
        f = int(chosen["filters"])
        fits = self._filters_changes(view, i, f) is not None
        return np.array([fits and self._conv_fits(view, i, f, k) for k in KERNEL_CHOICES])

    def apply(self, arch, **params):
        self.check_names(params)
        node = _node_at(arch, self.name, params["position"])
        view = _view(arch)
        filters = _choice(self.name, "filters", params["filters"], FILTER_CHOICES)
        kernel = _choice(self.name, "kernel", params["kernel"], KERNEL_CHOICES)
        i = view.index[node.id]
        changes = self._filters_changes(view, i, filters)
        if changes is None or not self._conv_fits(view, i, filters, kernel):
            raise MoveError(
                f"{self.name}: cannot insert a {kernel}x{kernel} conv of {filters} filters after {node.id!r}: "
                "it is the output or not a (C, H, W) map, or a consumer cannot take that many channels"
            )
        conv = Node(arch.new_id("conv2d"), "conv2d", _INSERT_ATTRS[filters, kernel], (node.id,))
        bn = Node(arch.new_id("batchnorm2d"), "batchnorm2d", Attrs(), (conv.id,))
        relu = Node(arch.new_id("relu"), "relu", Attrs(), (bn.id,))
        return edit.insert_after(arch, node.id, [conv, bn, relu], changes)

    def inherit_weights(self, parent, child, params, weights, rng):
        return moves_inherit.guarded(moves_inherit.insert_conv, parent, child, params, weights, rng)


# ---- insert_add ---------------------------------------------------------------------------------------
class InsertAdd(_BuiltinMove):
    """A skip connection: the output of the node at `source` is added to the output of a later node at
    `target` (a new add node right after `target`, read by target's consumers). Pairs of different shapes
    are masked: no projection is inserted, so a skip never adds parameters."""

    name = "insert_add"
    description = "add a residual (skip) connection from an earlier layer into a later one of the same shape"
    _params = (ParamSpec.position("source"), ParamSpec.position("target"))

    def params(self) -> tuple[ParamSpec, ...]:
        return self._params

    @staticmethod
    def _shapes(view: _View) -> list[Shape]:
        return view.cached(("shapes",), lambda: [view.shapes[view.nodes[i].id] for i in range(view.n)])

    def _positions(self, view: _View) -> np.ndarray:
        def compute():  # a source needs a later node of its shape: one backward scan
            later: set[Shape] = set()
            flags = []
            for shape in reversed(self._shapes(view)):
                flags.append(shape in later)
                later.add(shape)
            return np.array(flags[::-1], dtype=bool)

        return view.cached((self.name, "positions"), compute)

    def _valid_position(self, view: _View, i: int) -> bool:
        shapes = self._shapes(view)
        return shapes[i] in shapes[i + 1 :]

    def is_applicable(self, arch: Architecture) -> bool:
        shapes = self._shapes(_view(arch))
        return len(set(shapes)) < len(shapes)  # two nodes of one shape: the earlier is a valid source

    def mask(self, arch, param, chosen):
        view = _view(arch)
        shapes = self._shapes(view)
        if param == "source":
            return self._positions(view)
        if param == "target":
            i = int(chosen["source"])
            m = np.zeros(view.n, dtype=bool)
            if 0 <= i < view.n:
                m[i + 1 : view.n] = [s == shapes[i] for s in shapes[i + 1 :]]
            return m
        raise MoveError(f"{self.name} has no parameter {param!r}")

    def apply(self, arch, **params):
        self.check_names(params)
        src = _node_at(arch, self.name, params["source"])
        dst = _node_at(arch, self.name, params["target"])
        if arch.index(dst.id) <= arch.index(src.id):
            raise MoveError(f"{self.name}: the target {dst.id!r} must come after the source {src.id!r}")
        if arch.shape(src.id) != arch.shape(dst.id):
            raise MoveError(
                f"{self.name}: shapes differ ({src.id!r} {arch.shape(src.id)}, {dst.id!r} {arch.shape(dst.id)}); "
                "a skip joins two layers of one shape"
            )
        add = Node(arch.new_id("add"), "add", Attrs(), (dst.id, src.id))
        return edit.insert_after(arch, dst.id, [add])

    def inherit_weights(self, parent, child, params, weights, rng):
        return moves_inherit.guarded(moves_inherit.insert_add, parent, child, params, weights, rng)


# ---- scale --------------------------------------------------------------------------------------------
class Scale(_BuiltinMove):
    """Set one attribute of the layer at `position` to `value`: `channels` (conv filters / linear units;
    consumers adapt, a depthwise conv follows; never the network's output width), `kernel` (conv; with
    same padding the shape is kept) or `rate` (dropout; never 0, the same function as `remove`ing it). The
    value must differ from the current one."""

    name = "scale"
    description = "change a layer's channels, conv kernel size or dropout rate"
    _params = (
        ParamSpec.position("position"),
        ParamSpec("attribute", tuple(SCALE_VALUES)),
        ParamSpec("value", tuple(v for values in SCALE_VALUES.values() for v in values)),
    )

    def params(self) -> tuple[ParamSpec, ...]:
        return self._params

    @staticmethod
    def _target(node: Node, attribute: str) -> str | None:
        """The attribute of `node` that `scale attribute` sets (None: not applicable to this layer)."""
        if attribute == "channels":
            return WIDTH_ATTR.get(node.type)
        if attribute == "kernel" and node.type == "conv2d":
            return "kernel"
        if attribute == "rate" and node.type == "dropout":
            return "rate"
        return None

    @classmethod
    def _changes(cls, view: _View, i: int, attribute: str, value: Any) -> dict[str, Attrs] | None:
        node = view.nodes[i]
        key = cls._target(node, attribute)
        if key is None or view.norm[node.id][key] == value:
            return None
        if key == "rate" and value == 0.0:  # dropout at rate 0 is the network without it (`remove`'s): another
            return None  # hash for the same function, which a search would pay to train twice
        return view.cached(("scale", i, attribute, value), lambda: edit.edit_changes(view, node, key, value))

    def _attribute_ok(self, view: _View, i: int, attribute: str) -> bool:
        return any(self._changes(view, i, attribute, v) is not None for v in SCALE_VALUES[attribute])

    def _valid_position(self, view: _View, i: int) -> bool:
        node = view.nodes[i]
        t = node.type
        if t == "dropout":
            keeps = edit.shape_keeping_value_exists(view, node, "rate", RATE_CHOICES)
            return keeps or self._attribute_ok(view, i, "rate")
        if t == "conv2d":
            # the cheap check first: a kernel change that keeps the output shape needs nothing downstream
            if edit.shape_keeping_value_exists(view, node, "kernel", KERNEL_CHOICES):
                return True
            if self._attribute_ok(view, i, "kernel"):
                return True
        return t in WIDTH_ATTR and self._attribute_ok(view, i, "channels")

    def mask(self, arch, param, chosen):
        view = _view(arch)
        if param == "position":
            return self._positions(view)
        i = int(chosen["position"])
        if param == "attribute":
            return np.array([0 <= i < view.n and self._attribute_ok(view, i, a) for a in SCALE_VALUES])
        if param == "value":
            attribute = chosen["attribute"]
            allowed = SCALE_VALUES.get(attribute, ())
            return np.array(
                [
                    0 <= i < view.n
                    and isinstance(v, float) == (attribute == "rate")  # 1 == 1.0: a kernel must not pass as a rate
                    and v in allowed
                    and self._changes(view, i, attribute, v) is not None
                    for v in self.param("value").choices
                ]
            )
        raise MoveError(f"{self.name} has no parameter {param!r}")

    def apply(self, arch, **params):
        self.check_names(params)
        node = _node_at(arch, self.name, params["position"])
        attribute, value = params["attribute"], params["value"]
        if attribute not in SCALE_VALUES:
            raise MoveError(f"{self.name}: attribute must be one of {list(SCALE_VALUES)}, got {attribute!r}")
        value = _choice(self.name, f"value (of {attribute})", value, SCALE_VALUES[attribute])
        view = _view(arch)
        changes = self._changes(view, view.index[node.id], attribute, value)
        if changes is None:
            raise MoveError(
                f"{self.name}: cannot set {attribute}={value!r} on {node.id!r} ({node.type}): not such a layer, "
                "already that value, or a layer downstream cannot adapt"
            )
        return edit.rebuild(arch, changes)

    def inherit_weights(self, parent, child, params, weights, rng):
        return moves_inherit.guarded(moves_inherit.scale, parent, child, params, weights, rng)


# ---- remove -------------------------------------------------------------------------------------------
class Remove(_BuiltinMove):
    """Remove the layer at `position`: its consumers read its first input instead (for an add, the main
    branch: the skip branch goes too if nothing else reads it). Admitted when every consumer adapts to
    the new shape (identity-shaped layers always do) and the network's output shape is kept."""

    name = "remove"
    description = "remove a layer whose removal leaves a valid network"
    _params = (ParamSpec.position("position"),)

    def params(self) -> tuple[ParamSpec, ...]:
        return self._params

    @staticmethod
    def _changes(view: _View, i: int) -> dict[str, Attrs] | None:
        node = view.nodes[i]
        if not node.inputs:
            return None
        src = node.inputs[0]
        shapes = view.shapes
        if node.id == view.arch.output:
            return {} if src != INPUT and shapes[src] == shapes[node.id] else None
        if shapes[src] == shapes[node.id]:  # identity-shaped: nothing downstream changes
            return {}
        return view.cached(("remove", i), lambda: edit.propagate(view, {node.id: shapes[src]}, {}))

    def _valid_position(self, view: _View, i: int) -> bool:
        node = view.nodes[i]
        if node.inputs and node.id != view.arch.output and view.shapes[node.inputs[0]] == view.shapes[node.id]:
            return True  # identity-shaped: the common case first
        return self._changes(view, i) is not None

    def mask(self, arch, param, chosen):
        if param != "position":
            raise MoveError(f"{self.name} has no parameter {param!r}")
        view = _view(arch)
        return self._positions(view)

    def apply(self, arch, **params):
        self.check_names(params)
        node = _node_at(arch, self.name, params["position"])
        view = _view(arch)
        changes = self._changes(view, view.index[node.id])
        if changes is None:
            raise MoveError(
                f"{self.name}: removing {node.id!r} ({node.type}) would break the network: a consumer cannot "
                "take its input's shape, or the output would change"
            )
        src = node.inputs[0]
        output = src if node.id == arch.output else None
        return edit.rebuild(arch, changes, rewire={node.id: src}, drop=node.id, output=output)

    def inherit_weights(self, parent, child, params, weights, rng):
        return moves_inherit.guarded(moves_inherit.remove, parent, child, params, weights, rng)


MOVE_TYPES: tuple[type[MoveType], ...] = (InsertConv, InsertAdd, Scale, Remove)


@na_toolkit.hookimpl
def na_register_moves(registry):
    for cls in MOVE_TYPES:
        registry.add(cls())

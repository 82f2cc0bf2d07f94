"""The parts an architecture is made of: immutable attribute maps, nodes, costs, and the memoised
per-node shape inference that makes validating a move's child cheap."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..caches import MemoDict, memo_dict
from ..errors import ArchitectureError
from .layers import LayerCost, Shape

INPUT = "input"


# attribute content -> its interned key (see Attrs.cache_key); ids are never reused, so emptying the table
# (clear_caches, or when full) leaves old keys valid
_ATTRS_KEYS: MemoDict = memo_dict("ir.attrs_keys", 1_000_000)
_attrs_key_counter = itertools.count(1)


class Attrs(Mapping[str, Any]):
    """An immutable, hashable attribute mapping."""

    __slots__ = ("_d", "_h", "_k")

    def __init__(self, data: Mapping[str, Any] | None = None, **kw: Any):
        self._d = dict(data or {}, **kw)
        self._h: int | None = None
        self._k: Any = None

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._h is None:
            self._h = hash(tuple(sorted(self._d.items())))
        return self._h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._d == dict(other)

    def __repr__(self) -> str:
        return f"Attrs({self._d!r})"

    def replace(self, **changes: Any) -> Attrs:
        return Attrs(self._d, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._d)

    def cache_key(self) -> int | None:
        """A key (an interned int: cheap to hash inside memo keys) equal only for attribute mappings of
        equal keys, values AND value types (`True` and `1` differ: the schema treats them differently);
        None when a value is unhashable."""
        if self._k is None:
            try:
                content = tuple(sorted((k, type(v), v) for k, v in self._d.items()))
                key = _ATTRS_KEYS.get(content)
                if key is None:
                    key = _ATTRS_KEYS[content] = next(_attrs_key_counter)
            except TypeError:
                key = False
            self._k = key
        return None if self._k is False else self._k


@dataclass(frozen=True)
class Node:
    """One layer: a unique id, a registered layer type, its attributes and the ids of its inputs."""

    id: str
    type: str
    attrs: Attrs
    inputs: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.attrs, Attrs):
            object.__setattr__(self, "attrs", Attrs(self.attrs))
        if not isinstance(self.inputs, tuple):
            if isinstance(self.inputs, str):  # tuple("relu_0") would read it as the inputs 'r', 'e', 'l', ...
                raise ArchitectureError(
                    f"node {self.id!r}: inputs is a sequence of node ids, got the string {self.inputs!r} "
                    f"(one input: ({self.inputs!r},))"
                )
            object.__setattr__(self, "inputs", tuple(self.inputs))

    def replace(self, **changes: Any) -> Node:
        fields: dict[str, Any] = {"id": self.id, "type": self.type, "attrs": self.attrs, "inputs": self.inputs}
        fields.update(changes)
        return Node(**fields)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "attrs": self.attrs.to_dict(), "inputs": list(self.inputs)}


@dataclass(frozen=True)
class ArchitectureCost:
    """Per-node and total cost of a network for one sample."""

    per_node: dict[str, LayerCost]
    total: LayerCost

    @property
    def params(self) -> int:
        return self.total.params

    @property
    def macs(self) -> int:
        return self.total.macs

    @property
    def flops(self) -> int:
        return self.total.flops

    @property
    def weight_bytes(self) -> int:
        return self.total.weight_bytes

    @property
    def activation_bytes(self) -> int:
        return self.total.activation_bytes

    @property
    def model_size_bytes(self) -> int:
        """Size of the fp32 weights (what the paper's 16 MB model-size budget measures)."""
        return self.total.weight_bytes


# Shape inference, normalisation and cost are pure functions of (layer type, attributes, input shapes), and
# a move's result shares almost every node with its parent: memoising them makes validating a candidate
# cost a dictionary lookup per unchanged node (`moves_per_s` in `na-toolkit bench ir`). Keys hold the
# LayerType object itself, so two registries with different types of one name never share entries.
_MEMO_LIMIT = 100_000


class _NodeRecord:
    """What one (layer type, attributes, input shapes) gives: normalised attributes, output shape, and
    lazily the cost and the canonical-JSON head used by `Architecture.hash`."""

    __slots__ = ("norm", "shape", "positive", "cost", "cost_tuple", "head", "features")

    def __init__(self, norm: dict[str, Any], shape: Shape):
        self.norm, self.shape = norm, shape
        self.positive = all(d > 0 for d in shape)
        self.cost: LayerCost | None = None
        self.cost_tuple: tuple[int, ...] = ()
        self.head: str | None = None
        # what `na_toolkit.predictors.features` derives from this node alone (it fills it on first use)
        self.features: Any = None


_node_memo: MemoDict = memo_dict("ir.node_records", _MEMO_LIMIT)


def _node_record(layer_type: Any, attrs: Attrs, in_shapes: tuple[Shape, ...]) -> _NodeRecord:
    akey = attrs._k if attrs._k is not None else attrs.cache_key()
    key: tuple[Any, ...] | None
    if akey is not False and akey is not None:
        key = (layer_type, akey, in_shapes)
        try:
            rec = _node_memo.get(key)
        except TypeError:  # an unhashable plugin layer type
            key, rec = None, None
        if rec is not None:
            return rec
    else:
        key = None
    norm = layer_type.normalize_attrs(attrs.to_dict())
    rec = _NodeRecord(norm, tuple(layer_type.infer_shape(norm, list(in_shapes))))
    if key is not None:
        _node_memo[key] = rec  # bounded (MemoDict): a long search must not grow memory without limit
    return rec


def infer_node(layer_type: Any, attrs: Attrs, in_shapes: tuple[Shape, ...]) -> tuple[dict[str, Any], Shape]:
    """Normalised attributes and output shape of one node: `layer_type.normalize_attrs` then
    `infer_shape`, memoised. Raises what the layer type raises. The returned dict is shared: do not
    mutate it."""
    rec = _node_record(layer_type, attrs, in_shapes)
    return rec.norm, rec.shape


def topological_order(nodes: list[Node], by_id: dict[str, Node]) -> list[Node]:
    """Kahn's algorithm, stable: among ready nodes the earliest given comes first. Raises on a cycle."""
    # Fast path: nodes already in topological order (builders and moves keep it) are their own stable
    # order, since Kahn's min-position choice then pops them in the given sequence.
    seen = {INPUT}
    for n in nodes:
        for s in n.inputs:
            if s not in seen:
                break
        else:
            seen.add(n.id)
            continue
        break
    else:
        return nodes
    pos = {n.id: i for i, n in enumerate(nodes)}
    indeg = {n.id: sum(1 for s in n.inputs if s != INPUT) for n in nodes}
    users: dict[str, list[str]] = {n.id: [] for n in nodes}
    for n in nodes:
        for s in n.inputs:
            if s != INPUT:
                users[s].append(n.id)
    ready = [pos[n.id] for n in nodes if indeg[n.id] == 0]
    heapq.heapify(ready)
    out: list[Node] = []
    while ready:
        n = nodes[heapq.heappop(ready)]
        out.append(n)
        for u in users[n.id]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, pos[u])
    if len(out) != len(nodes):
        stuck = next(n.id for n in nodes if indeg[n.id] > 0)
        raise ArchitectureError("is part of a cycle", stuck)
    return out

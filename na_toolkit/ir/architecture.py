"""The architecture IR: an immutable, validated DAG of layer nodes.

Every `Architecture` instance is valid: the constructor checks structure (ids, dangling inputs, cycles),
attributes against the layer type's schema (filling defaults) and shapes; errors name the node and the
reason. The input tensor is the reserved node id `input`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from ..errors import ArchitectureError, DataError, ShapeError, UnknownComponentError, did_you_mean
from ..files import ARCHITECTURE, parse_json, read_as, read_text
from .layers import BYTES_PER_ELEMENT, LayerCost, Shape, numel, require_layer_types
from .nodes import (
    INPUT,
    ArchitectureCost,
    Attrs,
    Node,
    _node_memo,
    _node_record,
    _NodeRecord,
    infer_node,
    topological_order,
)

__all__ = ["INPUT", "SCHEMA_VERSION", "Architecture", "ArchitectureCost", "Attrs", "Node", "infer_node"]

if TYPE_CHECKING:  # pragma: no cover
    from .layers import LayerType, LayerTypeRegistry

SCHEMA_VERSION = 1
#: the most elements one tensor (the input, or a node's output, per sample) may hold: past it, building or
#: exporting the network would allocate tens of GiB (an input of 1x1e9x1e9 is a typo, not a network)
MAX_TENSOR_ELEMENTS = 2**31


class Architecture:
    """An immutable DAG of nodes with an input spec (C, H, W) and an output node.

    Nodes are kept in a deterministic topological order (stable with respect to the given order).
    """

    # filled by `_check_and_infer` (declared here: a derived architecture reads its parent's)
    _layer_types: LayerTypeRegistry
    _shapes: dict[str, Shape]
    _norm: dict[str, dict[str, Any]]
    _records: list[_NodeRecord]
    _types: dict[str, Any]

    def __init__(
        self,
        input_shape: Iterable[int],
        nodes: Iterable[Node],
        output: str | None = None,
        name: str = "",
        layer_types: LayerTypeRegistry | None = None,
        *,
        _parent: Architecture | None = None,
    ):
        input_shape = tuple(input_shape)
        if len(input_shape) not in (1, 3) or not all(isinstance(d, int) and d > 0 for d in input_shape):
            raise ArchitectureError(f"input shape must be (C, H, W) or (F,) of positive ints, got {input_shape}")
        if numel(input_shape) > MAX_TENSOR_ELEMENTS:
            raise ArchitectureError(
                f"input shape {input_shape} holds {numel(input_shape):,} elements, more than the "
                f"{MAX_TENSOR_ELEMENTS:,} a tensor may hold here; give the shape of one sample (C, H, W)"
            )
        nodes = list(nodes)
        if not nodes:
            raise ArchitectureError("an architecture needs at least one node")
        try:
            by_id: dict[str, Node] = {node.id: node for node in nodes}
            ids_ok = len(by_id) == len(nodes) and INPUT not in by_id and "" not in by_id
            ids_ok = ids_ok and set(map(type, by_id)) == {str}
        except TypeError:  # an unhashable id: the loop below names it
            ids_ok = False
        if not ids_ok:
            by_id = {}
            for node in nodes:
                if not isinstance(node.id, str) or not node.id or node.id == INPUT:
                    raise ArchitectureError(f"bad node id {node.id!r} (non-empty string, not {INPUT!r})")
                if node.id in by_id:
                    raise ArchitectureError("duplicate node id", node.id)
                by_id[node.id] = node
        # dangling inputs (the first in node order is reported), and whether the given order is already
        # topological (builders and moves keep it: no sort needed)
        seen = {INPUT}
        in_order = True
        for node in nodes:
            for src in node.inputs:
                if src not in seen:
                    if src not in by_id:
                        raise ArchitectureError(f"input {src!r} does not exist (dangling input)", node.id)
                    in_order = False
            seen.add(node.id)
        output = output if output is not None else nodes[-1].id
        if output not in by_id:
            raise ArchitectureError(f"output {output!r} is not a node")
        ordered = nodes if in_order else topological_order(nodes, by_id)
        self.input_shape: Shape = input_shape
        self.nodes: tuple[Node, ...] = tuple(ordered)
        self.output: str = output
        self.name: str = name
        self._by_id = by_id
        if layer_types is None:
            if _parent is None:
                raise TypeError(
                    "Architecture needs its layer types: pass layer_types=toolkit.layer_types "
                    "(or na_toolkit.builtin.layers.builtin_layer_types() for the built-in ones alone)"
                )
            layer_types = _parent._layer_types
        self._check_and_infer(require_layer_types(layer_types), _parent)

    #: what an architecture is made of: set once in `__init__`, never again (its hash, shapes and costs are
    #: derived from them and kept)
    _FIELDS = frozenset({"input_shape", "nodes", "output", "name"})

    def __setattr__(self, key: str, value: Any) -> None:
        if key in Architecture._FIELDS and key in self.__dict__:
            raise AttributeError(
                f"Architecture is immutable: {key} cannot be changed (its hash, shapes and costs derive from it); "
                "build a new one: arch.with_nodes(nodes, output=..., name=...), or Architecture(...)"
            )
        object.__setattr__(self, key, value)

    def __delattr__(self, key: str) -> None:
        if key in Architecture._FIELDS:
            raise AttributeError(f"Architecture is immutable: {key} cannot be deleted")
        object.__delattr__(self, key)

    # ---- validation ---------------------------------------------------------------------------------
    def _check_and_infer(self, layer_types: LayerTypeRegistry, parent: Architecture | None = None) -> None:
        shapes: dict[str, Shape] = {INPUT: self.input_shape}
        norm: dict[str, dict[str, Any]] = {}
        records: list[_NodeRecord] = []
        types: dict[str, Any] = {}
        arity: dict[str, tuple[Any, int, int]] = {}
        memo = _node_memo
        nodes = self.nodes
        start = 0
        self._inherited_hash_parts: list[str] = []
        if parent is not None and parent._layer_types is layer_types and parent.input_shape == self.input_shape:
            # A derived architecture (`with_nodes`) shares a prefix of identical nodes with its parent; in
            # topological order their inputs lie in the prefix too, so the parent's checks and shapes hold.
            parent_nodes = parent.nodes
            limit = min(len(parent_nodes), len(nodes))
            while start < limit and parent_nodes[start] is nodes[start]:
                start += 1
            p_shapes, p_norm = parent._shapes, parent._norm
            for node in nodes[:start]:
                shapes[node.id] = p_shapes[node.id]
                norm[node.id] = p_norm[node.id]
            records = parent._records[:start]
            types = dict(parent._types)
            self._inherited_hash_parts = parent.__dict__.get("_hash_parts", [])[:start]
        for node in nodes[start:] if start else nodes:
            info = arity.get(node.type)  # (layer type, min inputs, max inputs)
            if info is None:
                try:
                    lt = types[node.type] = layer_types.get(node.type)
                except UnknownComponentError as exc:
                    raise ArchitectureError(str(exc), node.id) from None
                info = arity[node.type] = (lt, lt.min_inputs, lt.max_inputs if lt.max_inputs is not None else 1 << 30)
            lt, lo, hi = info
            inputs = node.inputs
            if not lo <= len(inputs) <= hi:
                want = (
                    f"{lt.min_inputs}" if lt.max_inputs == lt.min_inputs else f"{lt.min_inputs}..{lt.max_inputs or 'n'}"
                )
                raise ArchitectureError(f"{node.type} takes {want} input(s), got {len(inputs)}", node.id)
            in_shapes = (shapes[inputs[0]],) if len(inputs) == 1 else tuple([shapes[s] for s in inputs])
            akey = node.attrs._k
            # the memo hit inlined (the common case: a node unchanged from the parent architecture)
            rec = None
            if akey is not None and akey is not False:
                try:
                    rec = memo.get((lt, akey, in_shapes))
                except TypeError:  # an unhashable plugin layer type: _node_record computes it unmemoised
                    pass
            if rec is None:
                try:
                    rec = _node_record(lt, node.attrs, in_shapes)
                except ShapeError as exc:
                    raise ShapeError(str(exc), node.id) from None
                except ArchitectureError as exc:
                    if exc.node is not None:
                        raise
                    raise ArchitectureError(str(exc), node.id) from None
            if not rec.positive:
                raise ShapeError(f"{node.type} produces an empty tensor of shape {rec.shape}", node.id)
            if numel(rec.shape) > MAX_TENSOR_ELEMENTS:
                raise ShapeError(
                    f"{node.type} produces a tensor of shape {rec.shape}: more than the "
                    f"{MAX_TENSOR_ELEMENTS:,} elements a tensor may hold here",
                    node.id,
                )
            shapes[node.id] = rec.shape
            norm[node.id] = rec.norm
            records.append(rec)
        consumed = {s for n in nodes for s in n.inputs}
        consumed.discard(INPUT)
        # every node but the output is read by some node: counting settles it without a scan
        if len(consumed) + (self.output not in consumed) != len(nodes):
            dead = [n.id for n in nodes if n.id not in consumed and n.id != self.output]
            raise ArchitectureError(f"node output is never used (only {self.output!r} may be a sink)", dead[0])
        self._shapes = shapes
        self._norm = norm
        self._records = records
        self._types = types
        self._layer_types = layer_types

    # ---- access -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._by_id

    def node(self, node_id: str) -> Node:
        try:
            return self._by_id[node_id]
        except KeyError:
            close = did_you_mean(str(node_id), self._by_id)
            raise ArchitectureError(f"no node {node_id!r} in this architecture.{close}") from None

    def index(self, node_id: str) -> int:
        return self._index[node_id]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {n.id: i for i, n in enumerate(self.nodes)}

    def attrs(self, node_id: str) -> dict[str, Any]:
        """The node's attributes with defaults filled in (a fresh dict: the normalised attributes are
        shared between architectures through the inference memo)."""
        return dict(self._norm[node_id])

    def shape(self, node_id: str) -> Shape:
        return self._shapes[node_id]

    def in_shapes(self, node_id: str) -> list[Shape]:
        return [self._shapes[s] for s in self._by_id[node_id].inputs]

    @property
    def shapes(self) -> dict[str, Shape]:
        return dict(self._shapes)

    @property
    def output_shape(self) -> Shape:
        return self._shapes[self.output]

    @cached_property
    def consumers(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, Any] = dict.fromkeys(self._shapes, ())  # "input" and every node, in order
        for n in self.nodes:
            nid = n.id
            for s in n.inputs:
                out[s] += (nid,)
        return out

    def node_records(self) -> list[_NodeRecord]:
        """Package-internal: the inference record of each node, in `nodes` order (shared between
        architectures with the same layer, attributes and input shapes: never mutate what they hold)."""
        return self._records

    def layer_type(self, node_id: str) -> LayerType:
        return self._layer_types.get(self._by_id[node_id].type)

    @property
    def layer_types(self) -> LayerTypeRegistry:
        return self._layer_types

    # ---- cost ---------------------------------------------------------------------------------------
    @cached_property
    def cost(self) -> ArchitectureCost:
        shapes, records = self._shapes, self._records
        for n, rec in zip(self.nodes, records):
            if rec.cost is None:  # memoised with the node's shape inference: rare after the first network
                rec.cost = self._types[n.type].cost(rec.norm, [shapes[s] for s in n.inputs], rec.shape)
                rec.cost_tuple = rec.cost.astuple()
        # every record's cost is set by the loop above
        per_node = cast("dict[str, LayerCost]", {n.id: rec.cost for n, rec in zip(self.nodes, records)})
        # column sums over the per-node tuples: much cheaper than chaining LayerCost.__add__
        total = LayerCost(*map(sum, zip(*[rec.cost_tuple for rec in records])))
        return ArchitectureCost(per_node, total)

    @property
    def params(self) -> int:
        return self.cost.params

    @property
    def flops(self) -> int:
        return self.cost.flops

    @cached_property
    def peak_activation_bytes(self) -> int:
        """Largest sum of live activations during a topological forward pass (batch 1, fp32)."""
        remaining = {k: len(v) for k, v in self.consumers.items()}
        live = {INPUT: numel(self.input_shape) * BYTES_PER_ELEMENT}
        total = peak = live[INPUT]  # the live bytes, kept as a running sum
        shapes = self._shapes
        for n in self.nodes:
            size = live[n.id] = numel(shapes[n.id]) * BYTES_PER_ELEMENT
            total += size
            if total > peak:
                peak = total
            for s in n.inputs:
                remaining[s] -= 1
                if remaining[s] == 0 and s in live:
                    total -= live.pop(s)
        return peak

    # ---- identity -----------------------------------------------------------------------------------
    def canonical(self) -> dict[str, Any]:
        """Structure without ids and names: nodes by topological position. Two architectures with the same
        canonical form are the same network."""
        pos = {INPUT: -1}
        nodes = []
        for i, n in enumerate(self.nodes):
            pos[n.id] = i
            nodes.append([n.type, sorted(self._norm[n.id].items()), [pos[s] for s in n.inputs]])
        return {"input": list(self.input_shape), "nodes": nodes, "output": pos[self.output]}

    @cached_property
    def hash(self) -> str:
        """Stable content hash (hex sha256, 16 chars) of the canonical form: ids and name do not matter."""
        return hashlib.sha256(self._canonical_blob().encode()).hexdigest()[:16]

    def _canonical_blob(self) -> str:
        """`json.dumps(self.canonical(), separators=(",", ":"), sort_keys=True)`, byte for byte, assembled
        from memoised per-node fragments (the hash of every candidate goes through here)."""
        pos = {INPUT: "-1"}
        parts = self._inherited_hash_parts  # the parent's fragments for the shared prefix of nodes
        start = len(parts)
        for i in range(start):
            pos[self.nodes[i].id] = str(i)
        for i in range(start, len(self.nodes)):
            n, rec = self.nodes[i], self._records[i]
            head = rec.head
            if head is None:
                # '["type",[[k,v],...]' without its closing bracket; the input positions follow
                head = rec.head = json.dumps([n.type, sorted(rec.norm.items())], separators=(",", ":"), sort_keys=True)[
                    :-1
                ]
            inputs = n.inputs
            if len(inputs) == 1:
                parts.append(f"{head},[{pos[inputs[0]]}]]")
            else:
                parts.append(f"{head},[{','.join([pos[s] for s in inputs])}]]")
            pos[n.id] = str(i)
        self._hash_parts = parts
        inp = json.dumps(list(self.input_shape), separators=(",", ":"))
        return f'{{"input":{inp},"nodes":[{",".join(parts)}],"output":{pos[self.output]}}}'

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Architecture) and self.hash == other.hash

    def __hash__(self) -> int:
        return hash(self.hash)

    def __repr__(self) -> str:
        label = f" {self.name}" if self.name else ""
        return f"<Architecture{label} {len(self.nodes)} nodes params={self.params} hash={self.hash}>"

    # ---- editing (pure: every method returns a new Architecture) ------------------------------------
    def with_nodes(self, nodes: Iterable[Node], output: str | None = None, name: str | None = None) -> Architecture:
        return Architecture(
            self.input_shape,
            nodes,
            output=output if output is not None else self.output,
            name=self.name if name is None else name,
            layer_types=self._layer_types,
            _parent=self,
        )

    def new_id(self, prefix: str) -> str:
        """A node id not used in this architecture, `prefix_N`."""
        i = len(self.nodes)
        while f"{prefix}_{i}" in self._by_id:
            i += 1
        return f"{prefix}_{i}"

    # ---- JSON ---------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "input_shape": list(self.input_shape),
            "output": self.output,
            "nodes": [n.to_json() for n in self.nodes],
        }

    def dumps(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_json(), indent=indent)

    @classmethod
    def from_json(cls, doc: Any, layer_types: LayerTypeRegistry) -> Architecture:
        from .serialize import architecture_from_json

        return architecture_from_json(doc, layer_types=layer_types)

    @classmethod
    def loads(cls, text: str | bytes, layer_types: LayerTypeRegistry) -> Architecture:
        doc = parse_json(text, "malformed architecture JSON: the text", ArchitectureError)
        return cls.from_json(doc, layer_types=layer_types)

    @classmethod
    def load(cls, path: Any, layer_types: LayerTypeRegistry) -> Architecture:
        """Read an architecture JSON file (what `save` writes); `layer_types`: `toolkit.layer_types`, or
        `builtin_layer_types()` without a toolkit. A missing or malformed file is an ArchitectureError."""
        text = read_text(path, "architecture file", ArchitectureError)
        try:
            return cls.loads(text, layer_types=layer_types)
        except ArchitectureError as exc:  # which file: a CSV or a profile given where an architecture goes
            with read_as(path, ARCHITECTURE, "architecture file", ArchitectureError):  # a profile: said so
                raise ArchitectureError(f"architecture file {str(path)!r}: {exc}") from None

    def save(self, path: Any) -> None:
        """Write the architecture as JSON to `path` (`Architecture.load` reads it back; no weights)."""
        with open(path, "w") as f:
            f.write(self.dumps())

    # ---- builders (conveniences, import torch / onnx lazily) ----------------------------------------
    def to_torch(self, seed: int | None = 0) -> Any:
        """A fresh `torch.nn.Module` of this network, weights initialised from `seed` (None: torch's global
        RNG; a seed leaves the global RNG as it was). Input (N, C, H, W) float32, output the logits."""
        from .torch_build import to_torch

        return to_torch(self, seed=seed)

    def to_onnx(self, model: Any = None, seed: int = 0, batch_size: int | None = 1) -> Any:
        """An `onnx.ModelProto` of this network: weights from `model` (a trained `to_torch()` module), else
        drawn from `seed`; `batch_size=None` makes the batch dimension symbolic. `onnx.save(m, "net.onnx")`."""
        from .onnx_export import to_onnx

        return to_onnx(self, model=model, seed=seed, batch_size=batch_size)

    @classmethod
    def from_onnx(cls, source: Any, layer_types: LayerTypeRegistry, return_weights: bool = False) -> Any:
        """Import an ONNX graph (path, bytes or ModelProto); see `na_toolkit.ir.onnx_import.from_onnx`."""
        from .onnx_import import from_onnx

        return from_onnx(source, layer_types=layer_types, return_weights=return_weights)


def architectures(archs: Any, what: str = "architectures") -> list[Architecture]:
    """`archs` as a list of Architectures, or a DataError naming `what` (the argument) and what is wrong with
    it: a single Architecture where a sequence is due, a string, an item of another type."""
    if isinstance(archs, Architecture):
        raise DataError(f"{what}: expected a sequence of architectures, got a single Architecture (wrap it in a list)")
    if isinstance(archs, str | bytes):
        raise DataError(f"{what}: expected a sequence of architectures, got a {type(archs).__name__}")
    try:
        archs = list(archs)
    except TypeError:
        raise DataError(f"{what}: expected a sequence of architectures, got {type(archs).__name__}") from None
    for i, a in enumerate(archs):
        if not isinstance(a, Architecture):
            raise DataError(f"{what}: item {i} is a {type(a).__name__}, not an Architecture")
    return archs

"""Graph editing for move authors: re-infer shapes downstream of an edit, then rebuild the architecture.

A move (`na_toolkit.moves.MoveType`) is a pure function IR -> IR with exact masks. Both halves need the
same two steps, and this module gives them to built-in and plugin moves alike (docs/moves.md, "Editing
helpers"):

1. *Will the edit work?* `propagate(view, seen_shapes, attr_changes)` re-infers the shapes downstream of
   an edit with the layer types' own code (the code the `Architecture` constructor runs), so every
   layer type takes part, a plugin's included. It returns every attribute change the edit needs (a
   depthwise conv follows a change of its input width) or None when the edit breaks the network.
   `edit_changes` does this for "set one attribute of one node"; `local_edit` and `try_infer` answer
   the one-node questions, memoised.
2. *Make it:* `rebuild(arch, changes, rewire=..., insert_after=..., drop=..., output=...)` or, for the
   common "put these nodes after that one", `insert_after(arch, node_id, nodes)`: a new architecture that
   shares every untouched node with its parent (so the parent's memoised facts are reused).

`view(arch)` gives the memoised facts the steps read (`ArchView`: nodes, positions, consumers, shapes,
normalised attributes, layer types, and a per-architecture memo for a move's own questions).
Architectures are immutable, so none of this goes stale. The memo tables are bounded LRU caches
registered with `na_toolkit.caches` (`clear_caches()` empties them).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import Any

from ..caches import lru_dict
from ..errors import ArchitectureError, NAToolkitError, did_you_mean
from .architecture import INPUT, Architecture, Attrs, Node, infer_node
from .layers import LayerType, Shape

#: node id -> its new attributes (what `propagate` and `edit_changes` return, what `rebuild` applies)
Changes = dict[str, Attrs]

__all__ = [
    "ArchView",
    "Changes",
    "edit_changes",
    "insert_after",
    "local_edit",
    "propagate",
    "rebuild",
    "shape_keeping_value_exists",
    "try_infer",
    "view",
]

# (layer type, attributes key, input shapes) -> output shape, or None when the layer rejects them
_INFERRED = lru_dict("ir.edit.inferred", 100_000)
# (layer type, attributes key, input shapes, attribute, value) -> (new attributes, output shape or None)
_LOCAL_EDITS = lru_dict("ir.edit.local_edits", 50_000)
# (layer type, attributes key, input shapes, attribute) -> some other value keeps the output shape
_SHAPE_KEEPING = lru_dict("ir.edit.shape_keeping", 50_000)
# id(arch) -> ArchView: the architectures looked at most recently (a view holds its architecture, so
# the id cannot be reused while the entry lives). A move's sample() asks 2-3 masks of one architecture.
_VIEWS = lru_dict("ir.edit.views", 8)


def try_infer(layer_type: LayerType, attrs: Attrs, in_shapes: tuple[Shape, ...]) -> Shape | None:
    """The output shape of a node of `layer_type` with `attrs` reading `in_shapes`, or None when the layer
    rejects them (or gives an empty dimension). Memoised both ways: masks try the same combinations on
    candidate after candidate."""
    akey = attrs.cache_key()
    key = (layer_type, akey, in_shapes)
    if akey is not None:
        try:  # one lookup on a hit (the common case); `.get` would make two
            return _INFERRED[key]
        except KeyError:
            pass
    try:
        _norm, shape = infer_node(layer_type, attrs, in_shapes)
        out = shape if all(d > 0 for d in shape) else None
    except NAToolkitError:
        out = None
    if akey is not None:
        _INFERRED[key] = out
    return out


class ArchView:
    """Facts about one architecture that edits read, memoised (an Architecture is immutable, so they never
    go stale): `nodes` (topological order), `index` (id -> position), `consumers` (id -> ids reading it),
    `shapes` (id -> shape, "input" included), `norm` (id -> normalised attributes: shared, never mutate
    them), `types` (layer type name -> LayerType, for the types in the network) and `memo` / `cached` for
    a move's own per-architecture questions. Reads the architecture's internal tables to stay cheap.

    Get one with `view(arch)`; a move with facts of its own may subclass it and keep its own views."""

    __slots__ = ("arch", "nodes", "index", "consumers", "shapes", "norm", "types", "memo")

    def __init__(self, arch: Architecture):
        self.arch = arch
        self.nodes: tuple[Node, ...] = arch.nodes
        self.index: dict[str, int] = arch._index
        self.consumers: dict[str, tuple[str, ...]] = arch.consumers
        self.shapes: dict[str, Shape] = arch._shapes
        self.norm: dict[str, dict[str, Any]] = arch._norm
        self.types: dict[str, LayerType] = dict(arch._types)
        self.memo: dict[tuple[Any, ...], Any] = {}

    def layer_type(self, name: str) -> LayerType | None:
        """The layer type `name` (in the network, or registered with its layer types), None if unknown:
        what an edit that adds a node of a type the network does not have yet checks."""
        lt = self.types.get(name)
        if lt is None and name in self.arch.layer_types:
            lt = self.types[name] = self.arch.layer_types.get(name)
        return lt

    def cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """`compute()` once per key for this architecture."""
        try:
            return self.memo[key]
        except KeyError:
            value = self.memo[key] = compute()
            return value


def view(arch: Architecture) -> ArchView:
    """The memoised `ArchView` of `arch` (one of the few architectures looked at most recently)."""
    v = _VIEWS.get(id(arch))
    if v is None or v.arch is not arch:
        v = _VIEWS[id(arch)] = ArchView(arch)
    return v


def _as_view(arch_or_view: Architecture | ArchView) -> ArchView:
    return arch_or_view if isinstance(arch_or_view, ArchView) else view(arch_or_view)


def _follow_attrs(v: ArchView, node: Node, in_shape: Shape) -> Attrs | None:
    """A depthwise conv whose input width changed follows it: groups and filters change with it (the
    channel multiplier is kept). None when `node` is no such conv or its input width is unchanged."""
    old_c = v.shapes[node.inputs[0]][0]
    if len(in_shape) != 3 or in_shape[0] == old_c:
        return None
    a = v.norm[node.id]
    groups = a["groups"]
    if groups == 1 or groups != old_c:
        return None
    return node.attrs.replace(groups=in_shape[0], filters=a["filters"] // groups * in_shape[0])


def propagate(
    arch_or_view: Architecture | ArchView, seen_shapes: dict[str, Shape], attr_changes: Changes
) -> Changes | None:
    """Re-infer shapes downstream of an edit.

    `seen_shapes`: node id -> the shape its consumers read after the edit (e.g. a node whose width a move
    changes, or one a removed node's consumers now read instead); `attr_changes`: node id -> its new
    attributes. Returns every node's new attributes (`attr_changes` plus the depthwise convs that follow
    their input width), or None when the edit breaks the network: a layer rejects its new input, or the
    network's output shape changes. Layers that take any input width (a conv, a linear layer) absorb the
    change; the walk stops where shapes are back to what they were."""
    v = _as_view(arch_or_view)
    nodes, index, consumers, shapes, types = v.nodes, v.index, v.consumers, v.shapes, v.types
    output = v.arch.output
    new_shape: dict[str, Shape] = dict(seen_shapes)
    changes = dict(attr_changes)
    queued = {index[c] for nid in seen_shapes for c in consumers[nid]}
    queued.update(index[nid] for nid in attr_changes)
    heap = sorted(queued)  # a sorted list is a valid heap
    while heap:
        node = nodes[heapq.heappop(heap)]
        nid = node.id
        in_shapes = tuple([new_shape.get(s) or shapes[s] for s in node.inputs])
        attrs = changes.get(nid)
        if attrs is None:
            attrs = node.attrs
            if node.type == "conv2d":
                follow = _follow_attrs(v, node, in_shapes[0])
                if follow is not None:
                    changes[nid] = attrs = follow
        out = try_infer(types[node.type], attrs, in_shapes)
        if out is None:
            return None
        if out != shapes[nid]:
            if nid == output:
                return None
            new_shape[nid] = out
            for c in consumers[nid]:
                i = index[c]
                if i not in queued:
                    queued.add(i)
                    heapq.heappush(heap, i)
    return changes


def local_edit(arch_or_view: Architecture | ArchView, node: Node, key: str, value: Any) -> tuple[Attrs, Shape | None]:
    """`node`'s attributes with `key=value`, and the output shape they give (None: rejected). A local edit
    depends on nothing but the node and its input shapes: memoised across architectures, since a move's
    result shares its nodes with its parent."""
    v = _as_view(arch_or_view)
    lt = v.types[node.type]
    in_shapes = tuple([v.shapes[s] for s in node.inputs])
    akey = node.attrs.cache_key()
    mkey = (lt, akey, in_shapes, key, value) if akey is not None else None
    if mkey is not None:
        try:
            return _LOCAL_EDITS[mkey]
        except KeyError:
            pass
    attrs = node.attrs.replace(**{key: value})
    result = (attrs, try_infer(lt, attrs, in_shapes))
    if mkey is not None:
        _LOCAL_EDITS[mkey] = result
    return result


def shape_keeping_value_exists(
    arch_or_view: Architecture | ArchView, node: Node, key: str, values: Iterable[Any]
) -> bool:
    """Some value of `values` other than the current one keeps `node`'s output shape (so setting it needs
    nothing downstream). Memoised per node content across architectures: pass the same `values` for the
    same `key` (a move's fixed choices)."""
    v = _as_view(arch_or_view)
    lt = v.types[node.type]
    in_shapes = tuple([v.shapes[s] for s in node.inputs])
    akey = node.attrs.cache_key()
    mkey = (lt, akey, in_shapes, key)
    found = _SHAPE_KEEPING.get(mkey) if akey is not None else None
    if found is None:
        current, shape = v.norm[node.id][key], v.shapes[node.id]
        found = any(x != current and local_edit(v, node, key, x)[1] == shape for x in values)
        if akey is not None:
            _SHAPE_KEEPING[mkey] = found
    return bool(found)


def edit_changes(arch_or_view: Architecture | ArchView, node: Node, key: str, value: Any) -> Changes | None:
    """Every attribute change that setting `key=value` on `node` needs (the node's own included), or None
    if the network breaks (the layer rejects the value, a layer downstream cannot take the new shape, or
    the network's output shape would change). Apply the result with `rebuild(arch, changes)`."""
    v = _as_view(arch_or_view)
    attrs, out = local_edit(v, node, key, value)
    if out is None:
        declared = v.types[node.type].attrs
        if key not in declared:  # the caller's slip, not a network the edit would break
            raise ArchitectureError(
                f"layer type {node.type!r} (node {node.id!r}) has no attribute {key!r}.{did_you_mean(key, declared)}"
                f" Known: {', '.join(sorted(declared)) or 'none'}"
            )
        return None
    if out == v.shapes[node.id]:
        return {node.id: attrs}
    if node.id == v.arch.output:
        return None
    changes = propagate(v, {node.id: out}, {})
    if changes is not None:
        changes[node.id] = attrs
    return changes


def rebuild(
    arch: Architecture,
    changes: Changes,
    rewire: dict[str, str] | None = None,
    insert_after: dict[str, list[Node]] | None = None,
    drop: str | None = None,
    output: str | None = None,
) -> Architecture:
    """A new architecture from `arch`: attributes replaced (`changes`, as `propagate` returns them), inputs
    renamed (`rewire`: every node reading `old` reads `new` instead; inserted nodes are left alone), new
    nodes placed right after a given node (`insert_after`: keeps topological order), one node dropped
    (`drop`), the output moved (`output`), then the nodes that no longer reach the output collected.
    Untouched nodes are the parent's own objects (their memoised facts carry over). The result is
    validated as every Architecture is (ArchitectureError / ShapeError when the edit is invalid)."""
    if changes is None:  # what propagate / edit_changes return for an edit that breaks the network
        raise ArchitectureError(
            "rebuild: changes is None: the edit breaks the network (propagate / edit_changes "
            "said so); check for None before rebuilding"
        )
    rewire = rewire or {}
    insert_after = insert_after or {}
    for nid in (*changes, *rewire, *insert_after, *([drop] if drop is not None else [])):
        if nid not in arch:  # an edit of a node the network lacks was silently left out (or a bare KeyError)
            raise ArchitectureError(
                f"no node {nid!r} to edit in architecture {arch.name!r}.{did_you_mean(nid, (n.id for n in arch))}"
            )
    consumers = arch.consumers
    touched = {*changes, *insert_after, *(c for src in rewire for c in consumers[src])}
    if drop is not None:
        touched.add(drop)
    out_nodes: list[Node] = []
    for node in arch.nodes:
        nid = node.id
        if nid not in touched:  # most nodes: kept as they are (the same objects: memo hits downstream)
            out_nodes.append(node)
            continue
        if nid == drop:
            continue
        attrs = changes.get(nid, node.attrs)
        inputs = node.inputs
        if any(s in rewire for s in inputs):
            inputs = tuple([rewire.get(x, x) for x in inputs])
        same = attrs is node.attrs and inputs is node.inputs
        out_nodes.append(node if same else Node(nid, node.type, attrs, inputs))
        if nid in insert_after:
            out_nodes.extend(insert_after[nid])
    output = output or arch.output
    if drop is not None:  # dropping a multi-input node may leave a branch that nothing reads
        by_id = {n.id: n for n in out_nodes}
        live: set[str] = set()
        stack = [output]
        while stack:
            nid = stack.pop()
            if nid not in live and nid != INPUT:
                live.add(nid)
                stack.extend(by_id[nid].inputs)
        out_nodes = [n for n in out_nodes if n.id in live]
    return arch.with_nodes(out_nodes, output=output)


def insert_after(arch: Architecture, node_id: str, nodes: list[Node], changes: Changes | None = None) -> Architecture:
    """Insert `nodes` (a chain whose first node reads `node_id`, each new id from `arch.new_id`) right after
    `node_id`: every consumer of `node_id` reads the last inserted node instead, and so does the network
    output when `node_id` was it. `changes` (from `propagate`) adapt the layers downstream when the chain
    changes the shape."""
    if not nodes:
        return arch
    last = nodes[-1].id
    return rebuild(
        arch,
        changes or {},
        rewire={node_id: last},
        insert_after={node_id: list(nodes)},
        output=last if node_id == arch.output else None,
    )

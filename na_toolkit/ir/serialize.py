"""JSON → Architecture with errors that name the field. Every malformed document raises ArchitectureError."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import ArchitectureError
from .architecture import SCHEMA_VERSION, Architecture, Attrs, Node
from .layers import require_layer_types

if TYPE_CHECKING:  # pragma: no cover
    from .layers import LayerTypeRegistry

_SCALARS = (int, float, str, bool)
_NODE_FIELDS = frozenset({"id", "type", "attrs", "inputs"})


def _expect(cond: bool, message: str, node: str | None = None) -> None:
    if not cond:
        raise ArchitectureError(message, node)


def _fail(message: str, node: str | None = None) -> NoReturn:
    raise ArchitectureError(message, node)


def architecture_from_json(doc: Any, layer_types: LayerTypeRegistry) -> Architecture:
    require_layer_types(layer_types)
    _expect(isinstance(doc, dict), f"architecture JSON must be an object, got {type(doc).__name__}")
    _expect(
        "schema_version" in doc or "nodes" in doc,
        f"not an architecture document (keys {', '.join(map(repr, list(doc)[:6])) or 'none'}; an architecture has "
        "schema_version, input_shape, nodes and output: what Architecture.save and `na-toolkit arch import` write)",
    )
    version = doc.get("schema_version")
    _expect(
        type(version) is int and version == SCHEMA_VERSION,  # `true` and 1.0 equal 1 in Python, not in a schema
        f"unsupported architecture schema_version {version!r} (this toolkit reads {SCHEMA_VERSION})",
    )
    unknown = set(doc) - {"schema_version", "name", "input_shape", "output", "nodes"}
    _expect(not unknown, f"unknown architecture field(s) {sorted(unknown)}")
    shape = doc.get("input_shape")
    _expect(
        isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) for d in shape),
        f"'input_shape' must be a list of ints, got {shape!r}",
    )
    name = doc.get("name", "")
    _expect(isinstance(name, str), f"'name' must be a string, got {name!r}")
    raw_nodes = doc.get("nodes")
    _expect(isinstance(raw_nodes, list), f"'nodes' must be a list, got {type(raw_nodes).__name__}")
    nodes = []
    for i, raw in enumerate(raw_nodes):
        # each check's message is formatted only when it fails: a stored evaluation's network is read back
        # node by node, and formatting the messages of a few hundred valid nodes cost most of the read
        if not isinstance(raw, dict):
            _fail(f"nodes[{i}] must be an object")
        nid = raw.get("id")
        if not (isinstance(nid, str) and nid != ""):
            _fail(f"nodes[{i}] needs a non-empty string 'id', got {nid!r}")
        if not raw.keys() <= _NODE_FIELDS:
            _fail(f"unknown node field(s) {sorted(set(raw) - _NODE_FIELDS)}", nid)
        ntype = raw.get("type")
        if not isinstance(ntype, str):
            _fail(f"'type' must be a string, got {ntype!r}", nid)
        attrs = raw.get("attrs", {})
        if not isinstance(attrs, dict):
            _fail("'attrs' must be an object", nid)
        for k, v in attrs.items():
            if not isinstance(v, _SCALARS):
                _fail(f"attribute {k!r} must be a number, string or bool, got {v!r}", nid)
        inputs = raw.get("inputs", [])
        if not (isinstance(inputs, list) and all(isinstance(s, str) for s in inputs)):
            _fail(f"'inputs' must be a list of node ids, got {inputs!r}", nid)
        nodes.append(Node(nid, ntype, Attrs(attrs), tuple(inputs)))
    output = doc.get("output")
    _expect(output is None or isinstance(output, str), f"'output' must be a node id, got {output!r}")
    return Architecture(tuple(shape), nodes, output=output, name=name, layer_types=layer_types)

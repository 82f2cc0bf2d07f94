"""JSON → Architecture with errors that name the field. Every malformed document raises ArchitectureError."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ArchitectureError
from .architecture import SCHEMA_VERSION, Architecture, Attrs, Node
from .layers import require_layer_types

if TYPE_CHECKING:  # pragma: no cover
    from .layers import LayerTypeRegistry

_SCALARS = (int, float, str, bool)


def _expect(cond: bool, message: str, node: str | None = None) -> None:
    if not cond:
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
        _expect(isinstance(raw, dict), f"nodes[{i}] must be an object")
        nid = raw.get("id")
        _expect(isinstance(nid, str) and nid != "", f"nodes[{i}] needs a non-empty string 'id', got {nid!r}")
        extra = set(raw) - {"id", "type", "attrs", "inputs"}
        _expect(not extra, f"unknown node field(s) {sorted(extra)}", nid)
        ntype = raw.get("type")
        _expect(isinstance(ntype, str), f"'type' must be a string, got {ntype!r}", nid)
        attrs = raw.get("attrs", {})
        _expect(isinstance(attrs, dict), "'attrs' must be an object", nid)
        for k, v in attrs.items():
            _expect(isinstance(v, _SCALARS), f"attribute {k!r} must be a number, string or bool, got {v!r}", nid)
        inputs = raw.get("inputs", [])
        _expect(
            isinstance(inputs, list) and all(isinstance(s, str) for s in inputs),
            f"'inputs' must be a list of node ids, got {inputs!r}",
            nid,
        )
        nodes.append(Node(nid, ntype, Attrs(attrs), tuple(inputs)))
    output = doc.get("output")
    _expect(output is None or isinstance(output, str), f"'output' must be a node id, got {output!r}")
    return Architecture(tuple(shape), nodes, output=output, name=name, layer_types=layer_types)

"""Import an ONNX graph into the IR: `from_onnx(source, layer_types) -> Architecture`.

The import goes through the layer types, as the export does: each `LayerType` declares the ONNX op types
it imports (`onnx_ops`) and turns such a node into IR nodes in `import_onnx(ctx, onnx_node)`, returning
False to decline (another layer type may take it). This module only walks the graph: it reads the
initializers and `Constant` nodes, hands each other node to the layer types that declare its op type (the
last registered first, as pluggy calls hooks: a plugin's layer type can claim a pattern, e.g. a squeeze-
excite block that starts with a global pool, before the built-in type of that op), and checks the result.
A node that no layer type imports raises `OnnxImportError` naming the op type and the node; so does a
file that is not ONNX (truncated, garbage).

The built-in layer types import what `torch.onnx.export` makes of a `to_torch()` build (eval mode: batch
norm folded into the conv before it, which imports as a conv2d with bias) and what our own `to_onnx`
emits (see `na_toolkit.builtin.layers_onnx`). What an importer works with is `OnnxImportContext`:
`value`, `constant`, `shape`, `attr`, `consumers`, `producer`, `sole_consumer` to read the graph;
`add`, `alias` to write IR; `absorb` for the later nodes of a pattern it consumed; `defer` / `claim` for a
node that only a later pattern can explain; `error` for a message naming the node.

With `return_weights=True` the result is `(arch, state_dict)`: a state dict that
`arch.to_torch().load_state_dict` accepts, so the import can be checked numerically.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NAToolkitError, OnnxImportError
from .architecture import INPUT, Architecture, Attrs, Node, infer_node
from .layers import require_layer_types
from .onnx_shapes import SHAPE_OPS, fold_shape_op

if TYPE_CHECKING:  # pragma: no cover
    import onnx

    from .layers import LayerType, LayerTypeRegistry, Shape

#: op types the walk itself handles (not layers): constants are read before the walk
STRUCTURAL_OPS = ("Constant",)


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def importers_by_op(layer_types: LayerTypeRegistry) -> dict[str, list[LayerType]]:
    """ONNX op type -> the layer types that import it (`onnx_ops`), in the order they are asked: the
    last registered first."""
    out: dict[str, list[LayerType]] = {}
    for _name, lt in reversed(layer_types.items()):
        for op in lt.onnx_ops:
            out.setdefault(op, []).append(lt)
    return out


class OnnxImportContext:
    """What a layer type's `import_onnx` works with: the ONNX tensors seen so far (IR node ids or
    constants), and the IR nodes made so far with their shapes and weights."""

    def __init__(self, model: onnx.ModelProto, layer_types: LayerTypeRegistry):
        self.model = model
        self.graph = model.graph
        self.layer_types = layer_types
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.constants: dict[str, np.ndarray] = {}
        self.tensors: dict[str, str] = {}  # ONNX tensor name -> IR node id (or "input")
        self.shapes: dict[str, Shape] = {}  # IR node id -> shape
        self.nodes: list[list[Any]] = []  # [id, type, attrs dict, inputs] (mutable until the end)
        self.node_index: dict[str, int] = {}
        self.weights: dict[str, dict[str, np.ndarray]] = {}  # IR node id -> torch param name -> array
        self._consumers: dict[str, list[Any]] = {}
        self._producer: dict[str, Any] = {}
        self._absorbed: set[int] = set()
        self._deferred: dict[int, tuple[Any, str]] = {}  # id(node) -> (node, why only a pattern explains it)
        self._counts: dict[str, int] = {}
        self.current: Any = None
        self.input_shape: Shape = ()
        self.output = INPUT
        # one list of the node messages, used everywhere: patterns mark nodes by identity
        self.onnx_nodes = list(self.graph.node)
        for n in self.onnx_nodes:
            for t in n.input:
                self._consumers.setdefault(t, []).append(n)
            for t in n.output:
                self._producer[t] = n
        self.graph_outputs = {o.name for o in self.graph.output}

    # ---- reading the graph ------------------------------------------------------------------------
    def error(self, message: str, node: Any = None) -> OnnxImportError:
        """An OnnxImportError naming the node (default: the one being imported) and its op type."""
        node = node if node is not None else self.current
        where = f"ONNX node {node.name or '(unnamed)'!r} ({node.op_type}): " if node is not None else ""
        return OnnxImportError(where + message)

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        """The value of an attribute of an ONNX node (strings decoded), `default` when absent."""
        return _attr(node, name, default)

    def constant(self, tensor: str) -> np.ndarray | None:
        """The value of a constant tensor (initializer or Constant output, or shape arithmetic on those and on
        the shapes of tensors imported so far: `onnx_shapes`), None if computed at run time."""
        if tensor not in self.constants:
            producer = self._producer.get(tensor)
            if producer is not None and producer.op_type in SHAPE_OPS:  # folded ahead of the walk, for a pattern
                fold_shape_op(self, producer)
        return self.constants.get(tensor)

    def value(self, tensor: str) -> str:
        """The IR node id computing `tensor` (raises if it is a constant or not yet computed)."""
        if tensor in self.tensors:
            return self.tensors[tensor]
        if tensor in self.constants:
            raise self.error(f"input {tensor!r} is a constant where a computed tensor is expected")
        raise self.error(f"input {tensor!r} is not computed by any supported node before this one")

    def shape(self, tensor: str) -> Shape:
        """The IR shape (no batch dimension) of a computed tensor."""
        return self.shapes[self.value(tensor)]

    def consumers(self, tensor: str) -> list[Any]:
        """The ONNX nodes reading `tensor`."""
        return self._consumers.get(tensor, [])

    def producer(self, tensor: str) -> Any:
        """The ONNX node writing `tensor` (None for the graph input and initializers)."""
        return self._producer.get(tensor)

    def sole_consumer(self, tensor: str) -> Any:
        """The one ONNX node reading `tensor`, None when several do or it is a graph output (a pattern
        may only swallow a tensor nothing else sees)."""
        users = self.consumers(tensor)
        return users[0] if len(users) == 1 and tensor not in self.graph_outputs else None

    def absorb(self, node: Any) -> None:
        """Mark a later ONNX node as imported already (part of a pattern an earlier handler turned into IR)."""
        self._absorbed.add(id(node))

    def defer(self, node: Any, why: str) -> None:
        """Accept `node` for now: only a pattern that starts at a later node can explain it (e.g. the
        `x / sqrt(2)` before the Erf of a written-out GELU). That pattern `claim`s it; a node still
        deferred at the end fails the import as unsupported (`why` says what it could have been)."""
        self._deferred[id(node)] = (node, why)

    def claim(self, node: Any) -> None:
        """A deferred node is part of the pattern being imported now."""
        self._deferred.pop(id(node), None)

    # ---- writing IR -------------------------------------------------------------------------------
    def add(
        self,
        layer_type: str,
        inputs: list[str],
        attrs: dict[str, Any] | None = None,
        weights: dict[str, np.ndarray] | None = None,
        output: str | None = None,
    ) -> str:
        """Add an IR node (inputs are IR ids); map ONNX tensor `output` to it; return its id. `weights` are
        named as in the layer type's torch module (its state_dict keys)."""
        n = self._counts.get(layer_type, 0)
        self._counts[layer_type] = n + 1
        nid = f"{layer_type}_{n}"
        attrs = dict(attrs or {})
        try:
            lt = self.layer_types.get(layer_type)
            in_shapes = tuple(self.shapes[s] for s in inputs)
            _norm, shape = infer_node(lt, Attrs(attrs), in_shapes)
        except NAToolkitError as exc:
            raise self.error(f"cannot be imported as {layer_type}: {exc}") from None
        self.shapes[nid] = shape
        self.node_index[nid] = len(self.nodes)
        self.nodes.append([nid, layer_type, attrs, list(inputs)])
        if weights:
            self.weights[nid] = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        if output is not None:
            self.tensors[output] = nid
        return nid

    def alias(self, tensor: str, ir_id: str) -> None:
        """ONNX `tensor` is the value of IR node `ir_id` (no new node)."""
        self.tensors[tensor] = ir_id

    # ---- the import -------------------------------------------------------------------------------
    def run(self) -> None:
        from onnx import numpy_helper

        for init in self.graph.initializer:
            self.constants[init.name] = numpy_helper.to_array(init)
        inputs = [i for i in self.graph.input if i.name not in self.constants]
        if len(inputs) != 1:
            raise OnnxImportError(
                f"the ONNX graph has {len(inputs)} inputs; na_toolkit imports graphs of exactly one input"
            )
        self.input_shape = _input_shape(inputs[0])
        self.tensors[inputs[0].name] = INPUT
        self.shapes[INPUT] = self.input_shape
        # constants first: patterns (GELU) look ahead at constants that torch defines after their use
        folded: set[int] = set()
        for node in self.onnx_nodes:
            self.current = node
            if node.op_type == "Constant":
                _load_constant(self, node)
                folded.add(id(node))
            elif node.op_type == "Identity" and node.input[0] in self.constants:  # torch shares equal initializers
                self.constants[node.output[0]] = self.constants[node.input[0]]
                folded.add(id(node))
            elif node.op_type in SHAPE_OPS and node.op_type != "Shape" and fold_shape_op(self, node):
                folded.add(id(node))  # shape targets built of constants, which patterns look ahead at
        if len(self.graph.output) != 1:
            raise OnnxImportError(
                f"the ONNX graph has {len(self.graph.output)} outputs; na_toolkit imports single-output graphs"
            )
        importers = importers_by_op(self.layer_types)
        for node in self.onnx_nodes:
            if id(node) in self._absorbed or id(node) in folded:
                continue
            self.current = node
            if node.domain not in ("", "ai.onnx"):
                raise self.error(f"op domain {node.domain!r} is not supported (only the default ONNX domain)")
            if node.op_type in SHAPE_OPS and fold_shape_op(self, node):  # x.view(x.size(0), -1) unfolded
                continue
            candidates = importers.get(node.op_type, ())
            if not any(lt.import_onnx(self, node) for lt in candidates):
                supported = sorted({*importers, *STRUCTURAL_OPS})
                if candidates:  # an op the toolkit imports, but not with these inputs or attributes
                    takers = ", ".join(sorted(lt.name for lt in candidates))
                    attributes = [a.name for a in node.attribute]
                    raise self.error(
                        f"this {node.op_type} (inputs {list(node.input)}, attributes {attributes})"
                        f" is no layer the toolkit has: the layer types that import {node.op_type} ({takers}) take "
                        f"other forms of it; remove it from the model (a constant scale or shift folds into the "
                        f"layer before or after it), or {REGISTER_TODO}"
                    )
                final_softmax = node.op_type in SOFTMAX_OPS and node.output[0] == self.graph.output[0].name
                todo = (
                    f"it is group normalisation, {GROUP_NORM_TODO}"
                    if node.op_type == "GroupNormalization"
                    else unsupported_op_todo(final_softmax, node.op_type)
                )
                raise self.error(f"unsupported ONNX op {node.op_type!r}; {todo}; supported: {', '.join(supported)}")
        self.current = None
        for node, why in self._deferred.values():
            raise self.error(f"unsupported ONNX op {node.op_type!r} ({why})", node)
        out = self.graph.output[0].name
        if out not in self.tensors:
            raise OnnxImportError(f"the graph output {out!r} is not computed by the imported nodes")
        self.output = self.tensors[out]
        if self.output == INPUT:
            raise OnnxImportError("the ONNX graph computes nothing (its output is its input)")


def _input_shape(value_info: Any) -> tuple[int, ...]:
    from onnx import TensorProto

    t = value_info.type.tensor_type
    if t.elem_type != TensorProto.FLOAT:
        kind = TensorProto.DataType.Name(t.elem_type) if t.elem_type in TensorProto.DataType.values() else t.elem_type
        raise OnnxImportError(
            f"graph input {value_info.name!r} must be float32, got {kind}: export the model in float32 "
            "(model.float() before torch.onnx.export)"
        )
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if len(dims) not in (2, 4) or any(d is None or d <= 0 for d in dims[1:]):
        raise OnnxImportError(
            f"graph input {value_info.name!r} must be (N, C, H, W) or (N, F) with fixed C, H, W / F; got {dims}: "
            "export with only the batch axis dynamic (dynamic_axes={'input': {0: 'N'}}, or none)"
        )
    return tuple(int(d) for d in dims[1:] if d is not None)  # all given: checked above


def _load_constant(ctx: OnnxImportContext, node: Any) -> None:
    from onnx import numpy_helper

    for a in node.attribute:
        if a.name == "value":
            ctx.constants[node.output[0]] = numpy_helper.to_array(a.t)
        elif a.name in ("value_float", "value_int", "value_floats", "value_ints"):
            ctx.constants[node.output[0]] = np.array(_attr(node, a.name))
        else:
            raise ctx.error(f"Constant with {a.name!r} is not supported")


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- entry point --------------------------------------------------------------------------------------
def _load(source: Any) -> onnx.ModelProto:
    import onnx

    if isinstance(source, onnx.ModelProto):
        model = source
    elif isinstance(source, (bytes, bytearray)):
        model = onnx.ModelProto()
        try:
            model.ParseFromString(bytes(source))
        except Exception as exc:  # protobuf raises its own DecodeError family
            raise OnnxImportError(f"not an ONNX model (truncated or not ONNX): {_one_line(exc)}") from None
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise OnnxImportError(f"cannot read ONNX file {path!r}: no such file")
        try:
            model = onnx.load(path)
        except Exception as exc:  # DecodeError on garbage, OSError, missing external data...
            raise OnnxImportError(
                f"cannot read ONNX file {path!r}: not a valid ONNX model (truncated or not ONNX): {_one_line(exc)}"
            ) from None
    else:
        raise OnnxImportError(f"from_onnx needs a path, bytes or an onnx.ModelProto, got {type(source).__name__}")
    if not len(model.graph.node) or not len(model.graph.output):
        raise OnnxImportError("not an ONNX model: it has no graph nodes or no output (truncated or not ONNX?)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError and friends
        raise OnnxImportError(f"invalid ONNX model: {_one_line(exc)}") from None
    return model


#: the graph names exporters give every model (torch.onnx.export: "main_graph", older versions "torch_jit"):
#: a model read from a file with one of them is named after the file instead
EXPORTER_GRAPH_NAMES = frozenset({"", "main_graph", "torch_jit"})


#: what to do about a group normalisation (torch's nn.GroupNorm: exported as Reshape -> InstanceNormalization
#: -> Reshape -> Mul -> Add, or the GroupNormalization op of opset 18+), which no built-in layer type imports
#: the way out of any op or form no layer type imports
REGISTER_TODO = "register a layer type that imports it (a plugin's import_onnx; docs/plugin_hooks.md, ONNX import)"
GROUP_NORM_TODO = (
    "which na_toolkit has no layer type for; replace nn.GroupNorm with nn.BatchNorm2d in the model (a batch norm "
    "after a convolution is imported folded into it), or register a layer type that imports the pattern "
    "(a plugin's import_onnx; docs/plugin_hooks.md, ONNX import)"
)

#: what to do about a PReLU (torch's nn.PReLU, ONNX PRelu), which no built-in layer type imports
PRELU_TODO = (
    "PReLU's slopes are learned weights, which no built-in layer type holds; replace nn.PReLU with "
    "nn.LeakyReLU(negative_slope=s) (s its learned slope: the same network when num_parameters=1), or register "
    "a layer type that imports it (a plugin's import_onnx; docs/plugin_hooks.md, ONNX import)"
)

#: ONNX ops that turn logits into probabilities: a network's last op, they get their own advice
SOFTMAX_OPS = frozenset({"Softmax", "LogSoftmax"})


def unsupported_op_todo(final_softmax: bool, op_type: str = "") -> str:
    """What to do about an op no layer type imports (from_onnx and from_torch say the same)."""
    if op_type == "PRelu":
        return PRELU_TODO
    if final_softmax:
        return (
            "the networks here output logits (the evaluator's cross-entropy applies the softmax, and exports "
            "output logits): remove the final softmax from the model"
        )
    return f"replace it in the model with supported ops, or {REGISTER_TODO}"


def from_onnx(source: Any, layer_types: LayerTypeRegistry, return_weights: bool = False) -> Any:
    """The Architecture of an ONNX graph (path, bytes or `onnx.ModelProto`), its nodes imported by the
    layer types of `layer_types` (`toolkit.layer_types`; `builtin_layer_types()` for the built-in ones). It is
    named after the graph, or after the file where the graph has an exporter's default name.
    With `return_weights=True`, `(arch, state_dict)` where `arch.to_torch().load_state_dict(state_dict)`
    gives the imported network."""
    model = _load(source)
    ctx = OnnxImportContext(model, require_layer_types(layer_types))
    ctx.run()
    # nodes that do not reach the output (e.g. a torch export's unused branch) are dropped
    by_id = {rec[0]: rec for rec in ctx.nodes}
    live: set[str] = set()
    stack = [ctx.output]
    while stack:
        nid = stack.pop()
        if nid not in live and nid != INPUT:
            live.add(nid)
            stack.extend(by_id[nid][3])
    nodes = [Node(rec[0], rec[1], Attrs(rec[2]), tuple(rec[3])) for rec in ctx.nodes if rec[0] in live]
    name = model.graph.name or ""
    if name in EXPORTER_GRAPH_NAMES and isinstance(source, (str, os.PathLike)):
        name = os.path.splitext(os.path.basename(os.fspath(source)))[0]  # every torch export has that name
    try:
        arch = Architecture(ctx.input_shape, nodes, output=ctx.output, name=name, layer_types=layer_types)
    except NAToolkitError as exc:
        raise OnnxImportError(f"the imported graph is not a valid architecture: {exc}") from None
    if not return_weights:
        return arch
    return arch, _state_dict(arch, {k: v for k, v in ctx.weights.items() if k in live})


def _state_dict(arch: Architecture, weights: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    import torch

    model = arch.to_torch(seed=0)
    state = model.state_dict()
    for nid, params in weights.items():
        for name, array in params.items():
            key = f"layers.{model.key(nid)}.{name}"
            want = state[key].shape
            value = torch.tensor(np.asarray(array, dtype=np.float32))  # a copy: constants may be read-only
            if tuple(value.shape) != tuple(want):
                value = value.reshape(want)  # e.g. a (1, U) Gemm bias
            state[key] = value
    return state

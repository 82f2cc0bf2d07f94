"""Import an ONNX graph into the IR: `from_onnx(path or ModelProto) -> Architecture`.

Reads what `torch.onnx.export` makes of a `to_torch()` build (eval mode: batch norm folded into the conv
before it, which imports as a conv2d with bias) and what our own `to_onnx` emits. Supported ops: Conv,
BatchNormalization, Gemm, MatMul (+ Add as its bias), Relu, Clip (0..6: relu6, 0..inf: relu), Gelu or
its erf expansion, Sigmoid, HardSwish, MaxPool, AveragePool, GlobalAveragePool, ReduceMean over H and W,
Flatten, Reshape to (N, -1), Add, Sum, Concat, Identity, Dropout, Mul by zero (the `zero` layer),
Constant. Anything else raises `OnnxImportError` naming the op type and the node; so does a file that
is not ONNX (truncated, garbage).

A plugin's layer type imports its own ops: `LayerType.import_onnx(ctx, onnx_node)` for the op types in
its `onnx_ops`, using the `OnnxImportContext` methods (`value`, `constant`, `shape`, `attr`, `add`,
`alias`, `consumers`, `absorb`); it is asked before the built-in mappings and returns False to decline.

With `return_weights=True` the result is `(arch, state_dict)`: a state dict that
`arch.to_torch().load_state_dict` accepts, so the import can be checked numerically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NAToolkitError, OnnxImportError
from .architecture import INPUT, Architecture, Attrs, Node, infer_node

if TYPE_CHECKING:  # pragma: no cover
    import onnx

    from ..registry import LayerTypeRegistry
    from .layers import Shape


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _close(value: np.ndarray | None, target: float, tol: float = 1e-4) -> bool:
    return value is not None and value.size == 1 and abs(float(value.reshape(())) - target) <= tol * max(1.0, abs(target))


class OnnxImportContext:
    """What an import handler (built-in or a layer type's `import_onnx`) works with: the ONNX tensors
    seen so far (IR node ids or constants), and the IR nodes made so far with their shapes and weights."""

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
        self.origin: dict[str, str] = {}  # IR node id -> ONNX op type that made it
        self._consumers: dict[str, list[Any]] = {}
        self._producer: dict[str, Any] = {}
        self._absorbed: set[int] = set()
        self.deferred: dict[int, Any] = {}  # id(node) -> node: scalings waiting for an Erf to claim them
        self._counts: dict[str, int] = {}
        self.current: Any = None
        self.input_shape: Shape = ()
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
        node = node if node is not None else self.current
        where = f"ONNX node {node.name or '(unnamed)'!r} ({node.op_type}): " if node is not None else ""
        return OnnxImportError(where + message)

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        return _attr(node, name, default)

    def constant(self, tensor: str) -> np.ndarray | None:
        """The value of a constant tensor (initializer or Constant output), None if computed at run time."""
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
        return self._consumers.get(tensor, [])

    def producer(self, tensor: str) -> Any:
        return self._producer.get(tensor)

    def sole_consumer(self, tensor: str) -> Any:
        users = self.consumers(tensor)
        return users[0] if len(users) == 1 and tensor not in self.graph_outputs else None

    def absorb(self, node: Any) -> None:
        """Mark a later ONNX node as imported already (part of a pattern an earlier handler turned into IR)."""
        self._absorbed.add(id(node))

    # ---- writing IR -------------------------------------------------------------------------------
    def add(
        self,
        layer_type: str,
        inputs: list[str],
        attrs: dict[str, Any] | None = None,
        weights: dict[str, np.ndarray] | None = None,
        output: str | None = None,
    ) -> str:
        """Add an IR node (inputs are IR ids); map ONNX tensor `output` to it; return its id."""
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
        self.origin[nid] = self.current.op_type if self.current is not None else ""
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
            raise OnnxImportError(f"the ONNX graph has {len(inputs)} inputs; na_toolkit imports graphs of exactly one input")
        self.input_shape = _input_shape(inputs[0])
        self.tensors[inputs[0].name] = INPUT
        self.shapes[INPUT] = self.input_shape
        # constants first: patterns (GELU) look ahead at constants that torch defines after their use
        for node in self.onnx_nodes:
            self.current = node
            if node.op_type == "Constant":
                _load_constant(self, node)
            elif node.op_type == "Identity" and node.input[0] in self.constants:  # torch shares equal initializers
                self.constants[node.output[0]] = self.constants[node.input[0]]
        if len(self.graph.output) != 1:
            raise OnnxImportError(f"the ONNX graph has {len(self.graph.output)} outputs; na_toolkit imports single-output graphs")
        plugin_importers = _plugin_importers(self.layer_types)
        for node in self.onnx_nodes:
            if id(node) in self._absorbed:
                continue
            self.current = node
            if node.domain not in ("", "ai.onnx"):
                raise self.error(f"op domain {node.domain!r} is not supported (only the default ONNX domain)")
            if any(lt.import_onnx(self, node) for lt in plugin_importers.get(node.op_type, ())):
                continue
            handler = _HANDLERS.get(node.op_type)
            if handler is None or not handler(self, node):
                raise self.error(
                    f"unsupported ONNX op {node.op_type!r}"
                    + ("" if handler is None else " in this form")
                    + f"; supported: {', '.join(sorted(_HANDLERS))}"
                )
        self.current = None
        for node in self.deferred.values():
            raise self.error(f"unsupported ONNX op {node.op_type!r} (a scaling that is not part of a GELU)", node)
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
        raise OnnxImportError(f"graph input {value_info.name!r} must be float32 (elem_type {t.elem_type})")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if len(dims) not in (2, 4) or any(d is None or d <= 0 for d in dims[1:]):
        raise OnnxImportError(
            f"graph input {value_info.name!r} must be (N, C, H, W) or (N, F) with fixed C, H, W / F; got {dims}"
        )
    return tuple(dims[1:])


def _plugin_importers(layer_types: LayerTypeRegistry) -> dict[str, list[Any]]:
    from .layers import LayerType

    out: dict[str, list[Any]] = {}
    for _name, lt in layer_types.items():
        if type(lt).import_onnx is not LayerType.import_onnx:
            for op in lt.onnx_ops:
                out.setdefault(op, []).append(lt)
    return out


# ---- built-in op mappings -----------------------------------------------------------------------------
def _square(ctx: OnnxImportContext, values: list[int] | None, what: str, default: int) -> int:
    values = list(values) if values is not None else [default, default]
    if len(values) != 2 or values[0] != values[1]:
        raise ctx.error(f"only square 2-D {what} are supported, got {values}")
    return int(values[0])


def _pads(ctx: OnnxImportContext, node: Any, kernel: int, stride: int, dilation: int) -> int:
    auto = ctx.attr(node, "auto_pad", "NOTSET")
    if auto == "VALID":
        return 0
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if stride != 1 or (dilation * (kernel - 1)) % 2:
            raise ctx.error(f"auto_pad={auto} with stride {stride} and kernel {kernel} pads unevenly; not supported")
        return dilation * (kernel - 1) // 2
    pads = list(ctx.attr(node, "pads", [0, 0, 0, 0]))
    if len(pads) != 4 or len(set(pads)) != 1:
        raise ctx.error(f"only equal padding on all sides is supported, got pads={pads}")
    return int(pads[0])


def _conv(ctx: OnnxImportContext, node: Any) -> bool:
    x = ctx.value(node.input[0])
    w = ctx.constant(node.input[1])
    if w is None or w.ndim != 4:
        raise ctx.error("Conv weights must be a constant 4-D initializer")
    b = ctx.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if len(node.input) > 2 and node.input[2] and b is None:
        raise ctx.error("Conv bias must be a constant initializer")
    kernel = _square(ctx, ctx.attr(node, "kernel_shape", list(w.shape[2:])), "kernels", 1)
    stride = _square(ctx, ctx.attr(node, "strides"), "strides", 1)
    dilation = _square(ctx, ctx.attr(node, "dilations"), "dilations", 1)
    pad = _pads(ctx, node, kernel, stride, dilation)
    attrs: dict[str, Any] = {"filters": int(w.shape[0]), "kernel": kernel}
    if stride != 1:
        attrs["stride"] = stride
    if pad != dilation * (kernel - 1) // 2:  # otherwise the IR's default "same" padding (-1)
        attrs["padding"] = pad
    if dilation != 1:
        attrs["dilation"] = dilation
    groups = int(ctx.attr(node, "group", 1))
    if groups != 1:
        attrs["groups"] = groups
    weights = {"weight": w}
    if b is not None:
        attrs["bias"] = True
        weights["bias"] = b.reshape(-1)
    ctx.add("conv2d", [x], attrs, weights, output=node.output[0])
    return True


def _batchnorm(ctx: OnnxImportContext, node: Any) -> bool:
    x = ctx.value(node.input[0])
    params = [ctx.constant(t) for t in node.input[1:5]]
    if len(params) != 4 or any(p is None for p in params):
        raise ctx.error("BatchNormalization needs constant scale, bias, mean and variance")
    if ctx.attr(node, "training_mode", 0):
        raise ctx.error("BatchNormalization in training mode is not supported (export the model in eval mode)")
    attrs: dict[str, Any] = {}
    eps = float(f"{ctx.attr(node, 'epsilon', 1e-5):.6g}")  # undo the float32 round trip (1e-5 stays 1e-5)
    if eps != 1e-5:
        attrs["eps"] = eps
    momentum = ctx.attr(node, "momentum")
    if momentum is not None and round(1.0 - momentum, 6) != 0.1:  # ONNX keeps 1 - torch's momentum
        attrs["momentum"] = round(1.0 - momentum, 6)
    scale, bias, mean, var = params
    weights = {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var}
    ctx.add("batchnorm2d", [x], attrs, weights, output=node.output[0])
    return True


def _unary(layer_type: str) -> Callable[[OnnxImportContext, Any], bool]:
    def handler(ctx: OnnxImportContext, node: Any) -> bool:
        ctx.add(layer_type, [ctx.value(node.input[0])], output=node.output[0])
        return True

    return handler


def _gelu(ctx: OnnxImportContext, node: Any) -> bool:
    if ctx.attr(node, "approximate", "none") != "none":
        raise ctx.error("only the exact (erf) GELU is supported, not approximate='tanh'")
    return _unary("gelu")(ctx, node)


def _clip(ctx: OnnxImportContext, node: Any) -> bool:
    if ctx.opset >= 11 or len(node.input) > 1:
        bounds = [ctx.constant(t) if t else None for t in list(node.input[1:3]) + [""] * (3 - len(node.input))]
        lo = None if bounds[0] is None else float(bounds[0].reshape(()))
        hi = None if bounds[1] is None else float(bounds[1].reshape(()))
        if any(t and ctx.constant(t) is None for t in node.input[1:3]):
            raise ctx.error("Clip bounds must be constants")
    else:
        lo, hi = ctx.attr(node, "min"), ctx.attr(node, "max")
    x = ctx.value(node.input[0])
    if lo == 0.0 and hi == 6.0:
        ctx.add("relu6", [x], output=node.output[0])
    elif lo == 0.0 and (hi is None or math.isinf(hi)):
        ctx.add("relu", [x], output=node.output[0])
    else:
        raise ctx.error(f"Clip to [{lo}, {hi}] is not supported (only relu6's [0, 6] and relu's [0, inf))")
    return True


def _erf(ctx: OnnxImportContext, node: Any) -> bool:
    """GELU written out: 0.5 * x * (1 + erf(x / sqrt(2))), in the orders torch and our emitter use."""
    pre = ctx.producer(node.input[0])
    if pre is None or ctx.sole_consumer(node.input[0]) is not node:
        return False
    x = None
    if pre.op_type == "Div" and _close(ctx.constant(pre.input[1]), math.sqrt(2)):
        x = pre.input[0]
    elif pre.op_type == "Mul":
        for a, b in (pre.input, reversed(pre.input)):
            if _close(ctx.constant(b), 1 / math.sqrt(2)):
                x = a
    if x is None or x in ctx.constants:
        return False
    add = ctx.sole_consumer(node.output[0])
    if add is None or add.op_type != "Add" or not any(_close(ctx.constant(t), 1.0) for t in add.input):
        return False
    m1 = ctx.sole_consumer(add.output[0])
    if m1 is None or m1.op_type != "Mul":
        return False
    other = next((t for t in m1.input if t != add.output[0]), None)
    if other == x:  # torch: (x * (1 + erf)) * 0.5
        m2 = ctx.sole_consumer(m1.output[0])
        if m2 is None or m2.op_type != "Mul" or not any(_close(ctx.constant(t), 0.5) for t in m2.input):
            return False
        absorbed, final = [add, m1, m2], m2
    else:  # na_toolkit's emitter: (x * 0.5) * (1 + erf)
        half = ctx.producer(other) if other else None
        if (
            half is None
            or half.op_type != "Mul"
            or x not in half.input
            or not any(_close(ctx.constant(t), 0.5) for t in half.input)
            or ctx.sole_consumer(other) is not m1
        ):
            return False
        absorbed, final = [add, half, m1], m1
    ctx.deferred.pop(id(pre), None)  # the pattern's first node (x / sqrt 2) came first: deferred until now
    for n in absorbed:
        ctx.absorb(n)
    ctx.add("gelu", [ctx.value(x)], output=final.output[0])
    return True


def _gelu_prefix(ctx: OnnxImportContext, node: Any) -> bool:
    """A Div/Mul of a tensor by a constant that feeds an Erf may begin a written-out GELU: deferred; the
    Erf claims it, and one left unclaimed is reported as unsupported at the end."""
    if sum(t in ctx.constants for t in node.input) == 1 and any(c.op_type == "Erf" for c in ctx.consumers(node.output[0])):
        ctx.deferred[id(node)] = node
        return True
    return False


def _mul(ctx: OnnxImportContext, node: Any) -> bool:
    if _gelu_prefix(ctx, node):
        return True
    for a, b in (node.input, reversed(node.input)):
        c = ctx.constant(b)
        if c is not None and a not in ctx.constants and c.size >= 1 and not np.any(c):
            ctx.add("zero", [ctx.value(a)], output=node.output[0])
            return True
    return False


def _pool(layer_type: str) -> Callable[[OnnxImportContext, Any], bool]:
    def handler(ctx: OnnxImportContext, node: Any) -> bool:
        x = ctx.value(node.input[0])
        kernel = _square(ctx, ctx.attr(node, "kernel_shape"), "kernels", 1)
        stride = _square(ctx, ctx.attr(node, "strides"), "strides", 1)
        if _square(ctx, ctx.attr(node, "dilations"), "dilations", 1) != 1:
            raise ctx.error("dilated pooling is not supported")
        if ctx.attr(node, "ceil_mode", 0):
            raise ctx.error("ceil_mode=1 pooling is not supported")
        attrs: dict[str, Any] = {"kernel": kernel, "stride": stride, "padding": _pads(ctx, node, kernel, stride, 1)}
        if layer_type == "avgpool2d":
            attrs["count_include_pad"] = bool(ctx.attr(node, "count_include_pad", 0))
        ctx.add(layer_type, [x], attrs, output=node.output[0])
        return True

    return handler


def _reduce_mean(ctx: OnnxImportContext, node: Any) -> bool:
    x = node.input[0]
    if len(node.input) > 1 and node.input[1]:
        axes = ctx.constant(node.input[1])
        if axes is None:
            raise ctx.error("ReduceMean axes must be a constant")
        axes = [int(a) for a in axes.reshape(-1)]
    else:
        axes = list(ctx.attr(node, "axes", []))
    if len(ctx.shape(x)) != 3 or sorted(a % 4 for a in axes) != [2, 3]:
        raise ctx.error(f"ReduceMean is supported over H and W of a (N, C, H, W) tensor only, got axes {axes}")
    if ctx.attr(node, "keepdims", 1):
        ctx.add("global_avg_pool", [ctx.value(x)], output=node.output[0])
    else:
        ctx.add("flatten", [ctx.add("global_avg_pool", [ctx.value(x)])], output=node.output[0])
    return True


def _flatten(ctx: OnnxImportContext, node: Any) -> bool:
    rank = len(ctx.shape(node.input[0])) + 1
    if ctx.attr(node, "axis", 1) % rank != 1 and rank > 2:
        raise ctx.error(f"Flatten is supported with axis=1 only, got axis={ctx.attr(node, 'axis', 1)}")
    ctx.add("flatten", [ctx.value(node.input[0])], output=node.output[0])
    return True


def _reshape(ctx: OnnxImportContext, node: Any) -> bool:
    target = ctx.constant(node.input[1])
    shape = ctx.shape(node.input[0])
    size = int(np.prod(shape))
    if target is None or target.ndim != 1 or len(target) != 2 or int(target[1]) not in (-1, size):
        raise ctx.error(f"Reshape is supported as a flatten to (N, -1) only, got target {None if target is None else target.tolist()}")
    ctx.add("flatten", [ctx.value(node.input[0])], output=node.output[0])
    return True


def _linear(ctx: OnnxImportContext, node: Any, weight: np.ndarray, bias: np.ndarray | None) -> str:
    x = ctx.value(node.input[0])
    attrs = {"units": int(weight.shape[0]), "bias": bias is not None}
    weights = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    return ctx.add("linear", [x], attrs, weights, output=node.output[0])


def _gemm(ctx: OnnxImportContext, node: Any) -> bool:
    b = ctx.constant(node.input[1])
    if b is None or b.ndim != 2:
        raise ctx.error("Gemm weights must be a constant 2-D initializer")
    if ctx.attr(node, "transA", 0):
        raise ctx.error("Gemm with transA=1 is not supported")
    alpha, beta = float(ctx.attr(node, "alpha", 1.0)), float(ctx.attr(node, "beta", 1.0))
    weight = (b if ctx.attr(node, "transB", 0) else b.T) * alpha
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = ctx.constant(node.input[2])
        if c is None or c.size not in (1, weight.shape[0]):
            raise ctx.error("Gemm bias must be a constant of one value or one per output")
        bias = np.broadcast_to(c.reshape(-1), (weight.shape[0],)) * beta
    _linear(ctx, node, weight, bias)
    return True


def _matmul(ctx: OnnxImportContext, node: Any) -> bool:
    b = ctx.constant(node.input[1])
    if b is None or b.ndim != 2:
        raise ctx.error("MatMul is supported with a constant 2-D right operand (a linear layer) only")
    _linear(ctx, node, b.T, None)
    return True


def _add(ctx: OnnxImportContext, node: Any) -> bool:
    consts = [ctx.constant(t) for t in node.input]
    if all(c is None for c in consts):
        if node.op_type == "Sum" and len(node.input) == 1:
            ctx.alias(node.output[0], ctx.value(node.input[0]))
        else:
            ctx.add("add", [ctx.value(t) for t in node.input], output=node.output[0])
        return True
    if len(node.input) != 2 or all(c is not None for c in consts):
        return False
    x, c = (node.input[0], consts[1]) if consts[0] is None else (node.input[1], consts[0])
    nid = ctx.value(x)
    # MatMul + Add: the bias of the linear layer the MatMul started (if nothing else reads the MatMul)
    rec = ctx.nodes[ctx.node_index[nid]] if nid in ctx.node_index else None
    if rec is not None and rec[1] == "linear" and not rec[2]["bias"] and ctx.origin[nid] == "MatMul" and ctx.sole_consumer(x) is node:
        units = rec[2]["units"]
        if c.size in (1, units):
            rec[2]["bias"] = True
            ctx.weights[nid]["bias"] = np.broadcast_to(c.reshape(-1), (units,)).astype(np.float32)
            ctx.alias(node.output[0], nid)
            return True
    if not np.any(c):  # adding zeros
        ctx.alias(node.output[0], nid)
        return True
    return False


def _concat(ctx: OnnxImportContext, node: Any) -> bool:
    rank = len(ctx.shape(node.input[0])) + 1
    if ctx.attr(node, "axis") % rank != 1:
        raise ctx.error(f"Concat is supported along channels (axis 1) only, got axis={ctx.attr(node, 'axis')}")
    ctx.add("concat", [ctx.value(t) for t in node.input], output=node.output[0])
    return True


def _identity(ctx: OnnxImportContext, node: Any) -> bool:
    src = node.input[0]
    if src in ctx.constants:  # loaded with the constants
        return True
    if node.output[0] in ctx.graph_outputs:  # only names the graph output (our emitter adds one)
        ctx.alias(node.output[0], ctx.value(src))
    else:
        ctx.add("identity", [ctx.value(src)], output=node.output[0])
    return True


def _dropout(ctx: OnnxImportContext, node: Any) -> bool:
    if len(node.input) > 1 and node.input[1]:
        ratio = ctx.constant(node.input[1])
        rate = 0.5 if ratio is None else float(ratio.reshape(()))
    else:
        rate = float(ctx.attr(node, "ratio", 0.5))
    ctx.add("dropout", [ctx.value(node.input[0])], {"rate": round(rate, 6)}, output=node.output[0])
    return True


def _load_constant(ctx: OnnxImportContext, node: Any) -> None:
    from onnx import numpy_helper

    for a in node.attribute:
        if a.name == "value":
            ctx.constants[node.output[0]] = numpy_helper.to_array(a.t)
        elif a.name in ("value_float", "value_int", "value_floats", "value_ints"):
            ctx.constants[node.output[0]] = np.array(_attr(node, a.name))
        else:
            raise ctx.error(f"Constant with {a.name!r} is not supported")


def _div(ctx: OnnxImportContext, node: Any) -> bool:
    return _gelu_prefix(ctx, node)


_HANDLERS: dict[str, Callable[[OnnxImportContext, Any], bool]] = {
    "Conv": _conv,
    "BatchNormalization": _batchnorm,
    "Relu": _unary("relu"),
    "Sigmoid": _unary("sigmoid"),
    "HardSwish": _unary("hardswish"),
    "Gelu": _gelu,
    "Clip": _clip,
    "Erf": _erf,
    "Div": _div,
    "Mul": _mul,
    "MaxPool": _pool("maxpool2d"),
    "AveragePool": _pool("avgpool2d"),
    "GlobalAveragePool": _unary("global_avg_pool"),
    "ReduceMean": _reduce_mean,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _add,
    "Sum": _add,
    "Concat": _concat,
    "Identity": _identity,
    "Dropout": _dropout,
    "Constant": lambda ctx, node: True,  # loaded before the walk
}


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


def from_onnx(source: Any, layer_types: LayerTypeRegistry | None = None, return_weights: bool = False):
    """The Architecture of an ONNX graph (path, bytes or `onnx.ModelProto`). With `return_weights=True`,
    `(arch, state_dict)` where `arch.to_torch().load_state_dict(state_dict)` gives the imported network."""
    from .architecture import _default_layer_types

    model = _load(source)
    layer_types = layer_types or _default_layer_types()
    ctx = OnnxImportContext(model, layer_types)
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
    try:
        arch = Architecture(ctx.input_shape, nodes, output=ctx.output, name=model.graph.name or "", layer_types=layer_types)
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

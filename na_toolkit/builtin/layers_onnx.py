"""ONNX import of the built-in layer types: the body of each one's `import_onnx` (`na_toolkit.builtin.layers`
declares the op types in `onnx_ops`; this module is imported only when an ONNX graph is imported).

Each importer is `importer(ctx, node, layer_type) -> bool` with `ctx` the `OnnxImportContext`: True when
it turned the node into IR, False to decline (another layer type declaring the op may take it; if none
does, the import fails naming the op and the node). A form that is recognisably this layer's but cannot be
represented raises `ctx.error(...)` saying why.

What each layer type imports: conv2d `Conv`; batchnorm2d `BatchNormalization`; relu, sigmoid, hardswish
their op; relu6 `Clip` (0..6, and 0..inf as relu); gelu `Gelu`, or its erf expansion `Div`/`Mul` ->
`Erf` -> `Add` -> `Mul` -> `Mul` in the orders torch and our emitter write it; maxpool2d / avgpool2d
`MaxPool` / `AveragePool` (one averaging a whole map wider than avgpool2d's largest kernel is a
global_avg_pool); global_avg_pool `GlobalAveragePool` and `ReduceMean` over H and W; flatten
`Flatten` and `Reshape` to (N, -1); linear `Gemm`, and `MatMul` with the `Add` of its bias; add `Add`,
`Sum` (and an `Add` of zeros, an alias); concat `Concat` on channels; dropout `Dropout`; identity
`Identity`; zero `Mul` by a constant zero.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from na_toolkit.ir.onnx_import import GROUP_NORM_TODO, REGISTER_TODO

if TYPE_CHECKING:  # pragma: no cover
    from na_toolkit.ir.onnx_import import OnnxImportContext


def _close(value: np.ndarray | None, target: float, tol: float = 1e-4) -> bool:
    if value is None or value.size != 1:
        return False
    return abs(float(value.reshape(())) - target) <= tol * max(1.0, abs(target))


def _square(ctx: OnnxImportContext, values: list[int] | None, what: str, default: int) -> int:
    values = list(values) if values is not None else [default, default]
    if len(values) != 2 or values[0] != values[1]:
        raise ctx.error(
            f"only square 2-D {what} are supported, got {values}: the layer types hold one size for both sides; "
            f"use a square one (e.g. {max(values[:2], default=default)}x{max(values[:2], default=default)}), or "
            "register a layer type that takes two"
        )
    return int(values[0])


def _pads(ctx: OnnxImportContext, node: Any, kernel: int, stride: int, dilation: int) -> int:
    auto = ctx.attr(node, "auto_pad", "NOTSET")
    if auto == "VALID":
        return 0
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if stride != 1 or (dilation * (kernel - 1)) % 2:
            raise ctx.error(f"auto_pad={auto} with stride {stride} and kernel {kernel} pads unevenly; not supported")
        return dilation * (kernel - 1) // 2
    if auto not in ("NOTSET", ""):
        raise ctx.error(f"auto_pad={auto!r} is not an ONNX padding mode (NOTSET, SAME_UPPER, SAME_LOWER, VALID)")
    pads = list(ctx.attr(node, "pads", [0, 0, 0, 0]))
    if len(pads) != 4 or len(set(pads)) != 1:
        raise ctx.error(f"only equal padding on all sides is supported, got pads={pads}")
    return int(pads[0])


# ---- one importer per layer type -----------------------------------------------------------------------
def conv2d(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    x = ctx.value(node.input[0])
    w = ctx.constant(node.input[1])
    if w is None or w.ndim != 4:
        raise ctx.error("Conv weights must be a constant 4-D initializer")
    b = ctx.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if len(node.input) > 2 and node.input[2] and b is None:
        raise ctx.error("Conv bias must be a constant initializer")
    kernel_shape = ctx.attr(node, "kernel_shape", list(w.shape[2:]))
    if list(kernel_shape) != list(w.shape[2:]):
        raise ctx.error(f"kernel_shape {list(kernel_shape)} does not match the weights' {list(w.shape[2:])}")
    kernel = _square(ctx, kernel_shape, "kernels", 1)
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
    ctx.add(layer_type, [x], attrs, weights, output=node.output[0])
    return True


def batchnorm2d(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
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
    ctx.add(layer_type, [x], attrs, weights, output=node.output[0])
    return True


def unary(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    """An op that is the layer itself (Relu, Sigmoid, HardSwish, GlobalAveragePool)."""
    ctx.add(layer_type, [ctx.value(node.input[0])], output=node.output[0])
    return True


def relu6(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    """`Clip` to [0, 6] (relu6, what the relu6 emitter writes) or to [0, inf) (a relu)."""
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
        ctx.add(layer_type, [x], output=node.output[0])
    elif lo == 0.0 and (hi is None or math.isinf(hi)):
        ctx.add("relu", [x], output=node.output[0])
    else:
        raise ctx.error(
            f"Clip to [{lo}, {hi}] is not supported (only relu6's [0, 6] and relu's [0, inf)): use nn.ReLU6 or "
            f"nn.ReLU in the model, or {REGISTER_TODO}"
        )
    return True


def gelu(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    """`Gelu` (opset 20), or the erf expansion 0.5 * x * (1 + erf(x / sqrt(2))): its Div/Mul prefix is
    deferred until the Erf that follows claims it."""
    if node.op_type == "Gelu":
        if ctx.attr(node, "approximate", "none") != "none":
            raise ctx.error("only the exact (erf) GELU is supported, not approximate='tanh': use nn.GELU()")
        return unary(ctx, node, layer_type)
    if node.op_type == "Erf":
        return _erf(ctx, node, layer_type)
    # Div / Mul of a tensor by a constant that feeds an Erf: may begin a written-out GELU
    feeds_erf = any(c.op_type == "Erf" for c in ctx.consumers(node.output[0]))
    if sum(t in ctx.constants for t in node.input) == 1 and feeds_erf:
        ctx.defer(node, "a scaling that is not part of a GELU")
        return True
    return False


def _erf(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
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
    ctx.claim(pre)  # the pattern's first node (x / sqrt 2) came first: deferred until now
    for n in absorbed:
        ctx.absorb(n)
    ctx.add(layer_type, [ctx.value(x)], output=final.output[0])
    return True


def zero(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    """`Mul` of a tensor by a constant of zeros."""
    for a, b in (node.input, reversed(node.input)):
        c = ctx.constant(b)
        if c is not None and a not in ctx.constants and c.size >= 1 and not np.any(c):
            ctx.add(layer_type, [ctx.value(a)], output=node.output[0])
            return True
    return False


def pool2d(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    x = ctx.value(node.input[0])
    kernel = _square(ctx, ctx.attr(node, "kernel_shape"), "kernels", 1)
    stride = _square(ctx, ctx.attr(node, "strides"), "strides", 1)
    if _square(ctx, ctx.attr(node, "dilations"), "dilations", 1) != 1:
        raise ctx.error(f"dilated pooling is not supported: use dilation=1 in the model, or {REGISTER_TODO}")
    if ctx.attr(node, "ceil_mode", 0):
        raise ctx.error(
            "ceil_mode=1 pooling is not supported: use ceil_mode=False in the model (padding=1 gives the same "
            f"output size where the input's is odd), or {REGISTER_TODO}"
        )
    attrs: dict[str, Any] = {"kernel": kernel, "stride": stride, "padding": _pads(ctx, node, kernel, stride, 1)}
    largest = ctx.layer_types.get(layer_type).attrs["kernel"].max
    if node.op_type == "AveragePool" and largest is not None and kernel > largest:
        if ctx.shape(node.input[0])[1:] == (kernel, kernel) and attrs["padding"] == 0:
            # the mean of the whole map (F.avg_pool2d(x, 16) on 16x16), wider than a pooling layer's kernel
            ctx.add("global_avg_pool", [x], output=node.output[0])
            return True
    if node.op_type == "AveragePool":
        attrs["count_include_pad"] = bool(ctx.attr(node, "count_include_pad", 0))
    ctx.add(layer_type, [x], attrs, output=node.output[0])
    return True


def global_avg_pool(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    """`GlobalAveragePool`, or `ReduceMean` over H and W (+ a flatten when it drops the dimensions)."""
    if node.op_type == "GlobalAveragePool":
        return unary(ctx, node, layer_type)
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
        ctx.add(layer_type, [ctx.value(x)], output=node.output[0])
    else:
        ctx.add("flatten", [ctx.add(layer_type, [ctx.value(x)])], output=node.output[0])
    return True


def flatten(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    """`Flatten` with axis 1, or `Reshape` to (N, -1)."""
    shape = ctx.shape(node.input[0])
    if node.op_type == "Flatten":
        rank = len(shape) + 1
        if ctx.attr(node, "axis", 1) % rank != 1 and rank > 2:
            raise ctx.error(f"Flatten is supported with axis=1 only, got axis={ctx.attr(node, 'axis', 1)}")
    else:
        target = ctx.constant(node.input[1])
        size = int(np.prod(shape))
        if target is None or target.ndim != 1 or len(target) != 2 or int(target[1]) not in (-1, size):
            got = None if target is None else target.tolist()
            group_norm = group_norm_message(ctx, node, target)
            if group_norm:
                raise ctx.error(group_norm)
            raise ctx.error(
                f"Reshape is supported as a flatten to (N, -1) only, got target {got}: other reshapes (a channel "
                f"shuffle) are no layer the toolkit has; replace it in the model, or {REGISTER_TODO}"
            )
    ctx.add(layer_type, [ctx.value(node.input[0])], output=node.output[0])
    return True


def group_norm_message(ctx: OnnxImportContext, node: Any, target: np.ndarray | None) -> str | None:
    """What to say of a `Reshape` to (N, G, -1) that feeds an `InstanceNormalization`: the form torch's
    exporter gives `nn.GroupNorm(G, C)` (Reshape -> InstanceNormalization -> Reshape -> Mul -> Add), which
    the user wrote as one GroupNorm, not as a Reshape; None for any other Reshape."""
    norm = ctx.sole_consumer(node.output[0])
    if norm is None or norm.op_type != "InstanceNormalization":
        return None
    groups = int(target[1]) if target is not None and target.ndim == 1 and len(target) == 3 else None
    channels = ctx.shape(node.input[0])[0] if ctx.shape(node.input[0]) else None
    written = f"nn.GroupNorm({groups if groups is not None else 'G'}, {channels if channels else 'C'})"
    return (
        f"this Reshape and the InstanceNormalization after it ({norm.name or 'unnamed'!r}) are how torch exports "
        f"{written}: group normalisation, {GROUP_NORM_TODO}"
    )


def linear(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    """`Gemm` (alpha, beta and transB folded into the weights), or `MatMul` by a constant 2-D matrix, with
    the `Add` of a bias that reads nothing but the MatMul absorbed into the same layer."""
    b = ctx.constant(node.input[1])
    bias: np.ndarray | None = None
    output = node.output[0]
    if node.op_type == "Gemm":
        if b is None or b.ndim != 2:
            raise ctx.error("Gemm weights must be a constant 2-D initializer")
        if ctx.attr(node, "transA", 0):
            raise ctx.error(f"Gemm with transA=1 is not supported: {REGISTER_TODO}")
        alpha, beta = float(ctx.attr(node, "alpha", 1.0)), float(ctx.attr(node, "beta", 1.0))
        weight = (b if ctx.attr(node, "transB", 0) else b.T) * alpha
        if len(node.input) > 2 and node.input[2]:
            c = ctx.constant(node.input[2])
            if c is None or c.size not in (1, weight.shape[0]):
                raise ctx.error("Gemm bias must be a constant of one value or one per output")
            bias = np.broadcast_to(c.reshape(-1), (weight.shape[0],)) * beta
    else:
        if b is None or b.ndim != 2:
            raise ctx.error("MatMul is supported with a constant 2-D right operand (a linear layer) only")
        weight = b.T
        add = ctx.sole_consumer(node.output[0])
        if add is not None and add.op_type == "Add" and len(add.input) == 2:
            other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
            c = ctx.constant(other) if other != node.output[0] else None
            if c is not None and c.size in (1, weight.shape[0]):
                bias = np.broadcast_to(c.reshape(-1), (weight.shape[0],)).astype(np.float32)
                ctx.absorb(add)
                output = add.output[0]
    x = ctx.value(node.input[0])
    attrs = {"units": int(weight.shape[0]), "bias": bias is not None}
    weights = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    ctx.add(layer_type, [x], attrs, weights, output=output)
    if output != node.output[0]:
        ctx.alias(node.output[0], ctx.value(output))
    return True


def add(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    """`Add` / `Sum` of computed tensors; a one-input `Sum` or an `Add` of zeros is an alias."""
    consts = [ctx.constant(t) for t in node.input]
    if all(c is None for c in consts):
        if node.op_type == "Sum" and len(node.input) == 1:
            ctx.alias(node.output[0], ctx.value(node.input[0]))
        else:
            ctx.add(layer_type, [ctx.value(t) for t in node.input], output=node.output[0])
        return True
    if len(node.input) != 2 or all(c is not None for c in consts):
        return False
    x, c = (node.input[0], consts[1]) if consts[0] is None else (node.input[1], consts[0])
    if c is not None and not np.any(c):  # adding zeros
        ctx.alias(node.output[0], ctx.value(x))
        return True
    return False


def concat(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    rank = len(ctx.shape(node.input[0])) + 1
    if ctx.attr(node, "axis") % rank != 1:
        raise ctx.error(f"Concat is supported along channels (axis 1) only, got axis={ctx.attr(node, 'axis')}")
    ctx.add(layer_type, [ctx.value(t) for t in node.input], output=node.output[0])
    return True


def identity(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    src = node.input[0]
    if src in ctx.constants:  # an alias of a constant: read with the constants
        return True
    if node.output[0] in ctx.graph_outputs:  # only names the graph output (our emitter adds one)
        ctx.alias(node.output[0], ctx.value(src))
    else:
        ctx.add(layer_type, [ctx.value(src)], output=node.output[0])
    return True


def dropout(ctx: OnnxImportContext, node: Any, layer_type: str) -> bool:
    if len(node.input) > 1 and node.input[1]:
        ratio = ctx.constant(node.input[1])
        rate = 0.5 if ratio is None else float(ratio.reshape(()))
    else:
        rate = float(ctx.attr(node, "ratio", 0.5))
    ctx.add(layer_type, [ctx.value(node.input[0])], {"rate": round(rate, 6)}, output=node.output[0])
    return True

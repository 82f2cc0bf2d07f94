"""Built-in layer types of the mobile ImageNet networks (MobileNetV3, EfficientNet): hardsigmoid, silu
(swish) and squeeze_excitation. Registered exactly like `na_toolkit.builtin.layers` (a plugin of their own
in `DEFAULT_PLUGINS`, after it, so their ONNX importers are asked before the generic ones of the same op
types: silu before sigmoid for a `Sigmoid`, squeeze_excitation before global_avg_pool for a global pool).

Depthwise convolution is conv2d with groups = input channels, global average pooling and hardswish are in
`na_toolkit.builtin.layers`. hardsigmoid's importer also takes relu6(x + 3) / 6 written out (and x times it, as
a hardswish), and squeeze_excitation's the block written with linear layers as well as 1x1 convolutions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import na_toolkit
from na_toolkit.ir.layers import BYTES_PER_ELEMENT as B
from na_toolkit.ir.layers import AttrSpec, LayerCost, LayerType, LayerTypeRegistry, check_feature_map, numel
from na_toolkit.ir.layers import EmbeddedCategorical as Categorical
from na_toolkit.ir.layers import EmbeddedInt as IntRange

from .layers import _Activation, _io_bytes

#: torch's hardsigmoid, relu6(x + 3) / 6, as ONNX's HardSigmoid max(0, min(1, alpha * x + beta))
HARDSIGMOID_ALPHA, HARDSIGMOID_BETA = 1.0 / 6.0, 0.5
#: activations of the squeeze (the first fully connected layer) and gates of squeeze_excitation
SE_ACTIVATIONS = ("relu", "silu")
SE_GATES = ("sigmoid", "hardsigmoid")


def _close(value: Any, target: float, tol: float = 1e-4) -> bool:
    return value is not None and abs(float(value) - target) <= tol


class HardSigmoid(_Activation):
    name, description, torch_class = "hardsigmoid", "relu6(x + 3) / 6 (Howard et al. 2019)", "Hardsigmoid"
    # Add: the written-out forms (below), asked before the add layer type's import of an Add
    onnx_ops = ("HardSigmoid", "Add")

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node("HardSigmoid", inputs, node_id, alpha=HARDSIGMOID_ALPHA, beta=HARDSIGMOID_BETA)

    def import_onnx(self, ctx, onnx_node):
        """HardSigmoid with torch's constants; or an `Add` that begins one written out, relu6(x + 3) / 6
        (the h_sigmoid of MobileNetV3 code written before torch had one), or x * relu6(x + 3) / 6 (its
        h_swish), which imports as a hardswish."""
        if onnx_node.op_type == "Add":
            found = written_out_hard_activation(ctx, onnx_node)
            if found is None:
                return False
            layer_type, x, nodes = found
            for node in nodes:
                ctx.absorb(node)
            ctx.add(layer_type, [ctx.value(x)], output=nodes[-1].output[0])
            return True
        alpha, beta = ctx.attr(onnx_node, "alpha", 0.2), ctx.attr(onnx_node, "beta", 0.5)
        if not (_close(alpha, HARDSIGMOID_ALPHA) and _close(beta, HARDSIGMOID_BETA)):
            raise ctx.error(
                f"HardSigmoid with alpha={alpha:.6g}, beta={beta:.6g} is not supported (only torch's hardsigmoid: "
                "alpha=1/6, beta=0.5)"
            )
        ctx.add(self.name, [ctx.value(onnx_node.input[0])], output=onnx_node.output[0])
        return True


def _constant_operand(ctx: Any, node: Any, value: float) -> str | None:
    """The computed operand of a binary `node` whose other operand is the constant `value`, else None."""
    if node is None or len(node.input) != 2:
        return None
    consts = [ctx.constant(t) for t in node.input]
    for i in (0, 1):
        c = consts[1 - i]
        if consts[i] is None and c is not None and c.size == 1 and _close(c.reshape(()), value):
            return str(node.input[i])
    return None


def _sixth(ctx: Any, node: Any) -> bool:
    """`node` divides by 6 or multiplies by 1/6 (the last step of relu6(x + 3) / 6)."""
    if node is None:
        return False
    if node.op_type == "Div":  # x / 6, not 6 / x
        return _constant_operand(ctx, node, 6.0) == node.input[0]
    return node.op_type == "Mul" and _constant_operand(ctx, node, 1.0 / 6.0) is not None


def _times(node: Any, x: str, t: str) -> bool:
    return node is not None and node.op_type == "Mul" and sorted(node.input) == sorted([x, t])


def written_out_hard_activation(ctx: Any, add: Any) -> tuple[str, str, list[Any]] | None:
    """`(layer type, x, the ONNX nodes from the Add on)` of relu6(x + 3) / 6 ("hardsigmoid") or x times it,
    in either order ("hardswish"), written out from `add` (x + 3), each node read only by the next; else
    None. relu6 is a Clip to [0, 6]; / 6 is a Div by 6 or a Mul by 1/6."""
    x = _constant_operand(ctx, add, 3.0)
    clip = ctx.sole_consumer(add.output[0]) if x is not None else None
    if x is None or clip is None or clip.op_type != "Clip" or len(clip.input) != 3:
        return None
    bounds = [ctx.constant(t) for t in clip.input[1:]]
    if any(b is None or b.size != 1 for b in bounds):
        return None
    if not (_close(bounds[0].reshape(()), 0.0) and _close(bounds[1].reshape(()), 6.0)):
        return None
    nodes, t = [add, clip], clip.output[0]
    step = ctx.sole_consumer(t)
    if _sixth(ctx, step):  # relu6(x + 3) / 6, and perhaps x * that
        nodes.append(step)
        mul = ctx.sole_consumer(step.output[0])
        if _times(mul, x, step.output[0]):
            return "hardswish", x, [*nodes, mul]
        return "hardsigmoid", x, nodes
    if _times(step, x, t):  # x * relu6(x + 3), then / 6
        sixth = ctx.sole_consumer(step.output[0])
        if _sixth(ctx, sixth):
            return "hardswish", x, [*nodes, step, sixth]
    return None


def _silu_product(ctx: Any, sigmoid: Any) -> Any:
    """The `Mul(x, Sigmoid(x))` that makes `sigmoid` (a Sigmoid node) half of a silu, or None."""
    x = sigmoid.input[0]
    mul = ctx.sole_consumer(sigmoid.output[0])
    if mul is None or mul.op_type != "Mul" or sorted(mul.input) != sorted([x, sigmoid.output[0]]):
        return None
    return mul


class SiLU(_Activation):
    name, description, torch_class = "silu", "x * sigmoid(x): swish (Ramachandran et al. 2017), SiLU", "SiLU"
    # opset 17 has no Swish op: Sigmoid then Mul, as torch.onnx.export writes it too
    onnx_ops = ("Sigmoid",)

    def cost(self, attrs, in_shapes, out_shape):
        i, o = _io_bytes(in_shapes, out_shape)
        return LayerCost(flops=2 * numel(out_shape), input_bytes=i, output_bytes=o)  # the sigmoid and the product

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        gate = ctx.node("Sigmoid", inputs, f"{node_id}.sigmoid")
        return ctx.node("Mul", [inputs[0], gate], node_id)

    def import_onnx(self, ctx, onnx_node):
        """A Sigmoid whose only reader multiplies it by its own input; any other Sigmoid is declined (the
        sigmoid layer type imports it)."""
        mul = _silu_product(ctx, onnx_node)
        if mul is None:
            return False
        ctx.absorb(mul)
        ctx.add(self.name, [ctx.value(onnx_node.input[0])], output=mul.output[0])
        return True


class SqueezeExcitation(LayerType):
    """Squeeze-and-excitation (Hu et al. 2018, "Squeeze-and-Excitation Networks", Fig. 3): per-channel gates
    from the spatial mean, through a bottleneck of `squeeze_channels` 1x1 convolutions with bias:

        y = x * gate(fc2(activation(fc1(mean_hw(x)))))

    MobileNetV3 (Howard et al. 2019, Sec. 5.3) uses relu and hardsigmoid, squeezing to a quarter of the
    expanded width; EfficientNet (Tan & Le 2019, from MnasNet) silu and sigmoid, squeezing to a quarter of the
    block's input width. The squeeze width is absolute, so a move that changes the channels before the block
    keeps it valid."""

    name = "squeeze_excitation"
    description = "squeeze-and-excitation gates (Hu et al. 2018): mean, 1x1 squeeze, activation, 1x1, gate, scale"
    attrs = {
        "squeeze_channels": AttrSpec(int, min=1, max=65536, doc="width of the bottleneck (fc1's outputs)"),
        "activation": AttrSpec(str, "relu", choices=SE_ACTIVATIONS, doc="after fc1"),
        "gate": AttrSpec(str, "sigmoid", choices=SE_GATES, doc="after fc2: the per-channel scale"),
    }
    has_weights = True
    # one block is six ONNX ops (seven with a silu); the import starts at the squeeze: GlobalAveragePool (our
    # emitter, torch.onnx.export of adaptive_avg_pool2d) or ReduceMean over H and W (x.mean((2, 3)))
    onnx_ops = ("GlobalAveragePool", "ReduceMean")
    embedded = (
        IntRange("squeeze_channels", 1, 1024),  # every width the seeds use (8 .. 144), one token each
        Categorical("activation", SE_ACTIVATIONS),
        Categorical("gate", SE_GATES),
    )

    def infer_shape(self, attrs, in_shapes):
        return check_feature_map(self.name, in_shapes[0])

    def cost(self, attrs, in_shapes, out_shape):
        c, h, w = in_shapes[0]
        s = attrs["squeeze_channels"]
        params = c * s + s + s * c + c
        macs = 2 * c * s  # the two 1x1 convolutions on the pooled 1x1 map
        act = (2 if attrs["activation"] == "silu" else 1) * s
        # the mean (1 add / element), the scale (1 mul / element), the convolutions with their biases, the
        # activation and the gate (1 each per element, as the activation layer types count them)
        flops = 2 * c * h * w + 2 * macs + (s + c) + act + c
        x_bytes = numel(in_shapes[0]) * B
        # x is read twice, once to pool it and once to scale it (a real feature map rarely stays in cache)
        return LayerCost(params, macs, flops, params * B, 2 * x_bytes, numel(out_shape) * B)

    def build_torch(self, attrs, in_shapes, out_shape):
        from .layers_mobile_torch import SqueezeExcitation as Module

        return Module(in_shapes[0][0], attrs["squeeze_channels"], attrs["activation"], attrs["gate"])

    def init_weights(self, attrs, in_shapes, out_shape, rng):
        # the names, shapes and uniform(-1/sqrt(fan_in), +) bounds of torch's Conv2d default initialisation
        c, s = in_shapes[0][0], attrs["squeeze_channels"]
        b1, b2 = 1 / math.sqrt(c), 1 / math.sqrt(s)
        return {
            "fc1.weight": rng.uniform(-b1, b1, (s, c, 1, 1)),
            "fc1.bias": rng.uniform(-b1, b1, (s,)),
            "fc2.weight": rng.uniform(-b2, b2, (c, s, 1, 1)),
            "fc2.bias": rng.uniform(-b2, b2, (c,)),
        }

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        def conv1x1(x: str, fc: str) -> str:
            w = ctx.initializer(f"{node_id}.{fc}.weight", weights[f"{fc}.weight"])
            b = ctx.initializer(f"{node_id}.{fc}.bias", weights[f"{fc}.bias"])
            return ctx.node("Conv", [x, w, b], f"{node_id}.{fc}", kernel_shape=[1, 1])

        x = inputs[0]
        hidden = conv1x1(ctx.node("GlobalAveragePool", [x], f"{node_id}.squeeze"), "fc1")
        if attrs["activation"] == "relu":
            hidden = ctx.node("Relu", [hidden], f"{node_id}.relu")
        else:
            hidden = ctx.node("Mul", [hidden, ctx.node("Sigmoid", [hidden], f"{node_id}.sig")], f"{node_id}.silu")
        scale = conv1x1(hidden, "fc2")
        if attrs["gate"] == "sigmoid":
            gate = ctx.node("Sigmoid", [scale], f"{node_id}.gate")
        else:
            gate = ctx.node("HardSigmoid", [scale], f"{node_id}.gate", alpha=HARDSIGMOID_ALPHA, beta=HARDSIGMOID_BETA)
        return ctx.node("Mul", [x, gate], node_id)  # (N, C, 1, 1) broadcast over (N, C, H, W)

    def import_onnx(self, ctx, onnx_node):
        """The block from its squeeze: mean -> Conv 1x1 -> Relu | Sigmoid*x -> Conv 1x1 -> Sigmoid |
        HardSigmoid -> Mul(x, gate), each reading only the one before; or its form with linear layers (the
        SENet paper's code): the mean as a vector (Flatten, Reshape to (N, C), or ReduceMean dropping H and
        W) -> Gemm -> ... -> Gemm -> gate -> back to (N, C, 1, 1) (Reshape, Unsqueeze) -> Mul(x, gate).
        Anything else is declined (a plain global pool imports as global_avg_pool)."""
        x = onnx_node.input[0]
        if x in ctx.constants or len(ctx.shape(x)) != 3:
            return False
        keepdims = _spatial_mean(ctx, onnx_node)
        if keepdims is None:
            return False
        c = ctx.shape(x)[0]
        chain, pooled = [], onnx_node.output[0]
        to_vector = ctx.sole_consumer(pooled) if keepdims else None
        vector = not keepdims or _is_to_vector(ctx, to_vector, c)
        if keepdims and vector:
            chain.append(to_vector)
            pooled = to_vector.output[0]
        fc = _linear_as_1x1 if vector else _conv1x1
        fc1 = ctx.sole_consumer(pooled)
        p1 = fc(ctx, fc1)
        if p1 is None:
            return False
        chain.append(fc1)
        activation, act_nodes, hidden = _se_activation(ctx, fc1.output[0])
        if activation is None:
            return False
        chain += act_nodes
        fc2 = ctx.sole_consumer(hidden)
        p2 = fc(ctx, fc2)
        found = _se_gate(ctx, ctx.sole_consumer(fc2.output[0])) if p2 is not None else None
        if found is None:
            return False
        gate, gate_nodes = found
        chain += [fc2, *gate_nodes]
        scale = gate_nodes[-1].output[0]
        if vector:
            back = _to_map(ctx, scale, c)
            if back is None:
                return False
            chain += back
            scale = back[-1].output[0]
        expand = ctx.sole_consumer(scale)  # x * s.expand_as(x) in a torch.onnx.export: the product broadcasts s
        if _expands_to(ctx, expand, x):
            chain.append(expand)
            scale = expand.output[0]
        mul = ctx.sole_consumer(scale)
        if mul is None or mul.op_type != "Mul" or sorted(mul.input) != sorted([x, scale]):
            return False
        assert p2 is not None  # gate is None otherwise
        (w1, b1), (w2, b2) = p1, p2
        s = w1.shape[0]
        if w1.shape[1] != c or w2.shape[:2] != (c, s):
            return False
        if b1 is None or b2 is None:  # the block is this, and only a layer of this form could hold it
            layers = "linear layers" if vector else "1x1 convolutions"
            raise ctx.error(
                f"a squeeze-and-excitation block ({c} -> {s} -> {c} channels) whose {layers} have no bias; "
                "squeeze_excitation has them: give both bias=True in the model, or register a layer type "
                "that imports this form (a plugin's import_onnx; docs/plugin_hooks.md, ONNX import)"
            )
        attrs = {"squeeze_channels": int(s), "activation": activation, "gate": gate}
        weights = {"fc1.weight": w1, "fc1.bias": b1, "fc2.weight": w2, "fc2.bias": b2}
        for node in [*chain, mul]:
            ctx.absorb(node)
        ctx.add(self.name, [ctx.value(x)], attrs, weights, output=mul.output[0])
        return True


def _expands_to(ctx: Any, node: Any, x: str) -> bool:
    """`node` is an Expand to the shape of `x`: Shape(x), or the constant (N, *shape of x)."""
    if node is None or node.op_type != "Expand":
        return False
    source = ctx.producer(node.input[1])
    if source is not None and source.op_type == "Shape" and source.input[0] == x and len(source.attribute) == 0:
        return True
    target = ctx.constant(node.input[1])
    return target is not None and target.ndim == 1 and tuple(int(t) for t in target[1:]) == tuple(ctx.shape(x))


def _se_gate(ctx: Any, node: Any) -> tuple[str, list[Any]] | None:
    """(gate, its nodes) of the gate `node` begins: Sigmoid, HardSigmoid with torch's constants, or
    relu6(x + 3) / 6 written out; else None."""
    if node is None:
        return None
    if node.op_type == "Sigmoid":
        return "sigmoid", [node]
    if node.op_type == "HardSigmoid":
        alpha, beta = ctx.attr(node, "alpha", 0.2), ctx.attr(node, "beta", 0.5)
        return ("hardsigmoid", [node]) if _close(alpha, HARDSIGMOID_ALPHA) and _close(beta, HARDSIGMOID_BETA) else None
    found = written_out_hard_activation(ctx, node) if node.op_type == "Add" else None
    return ("hardsigmoid", found[2]) if found is not None and found[0] == "hardsigmoid" else None


def _spatial_mean(ctx: Any, node: Any) -> bool | None:
    """Whether the mean keeps H and W (as 1 x 1) when `node` is GlobalAveragePool or ReduceMean over H and
    W; None for any other node."""
    if node.op_type == "GlobalAveragePool":
        return True
    if len(node.input) > 1 and node.input[1]:  # opset 18+: axes is an input
        axes = ctx.constant(node.input[1])
        axes = None if axes is None else [int(a) for a in axes.reshape(-1)]
    else:
        axes = ctx.attr(node, "axes")
    if axes is None or sorted(a % 4 for a in axes) != [2, 3]:
        return None
    return bool(ctx.attr(node, "keepdims", 1))


def _is_to_vector(ctx: Any, node: Any, channels: int) -> bool:
    """A Flatten (axis 1) or Reshape to (N, C) of the (N, C, 1, 1) mean."""
    if node is None:
        return False
    if node.op_type == "Flatten":
        return int(ctx.attr(node, "axis", 1)) == 1
    target = ctx.constant(node.input[1]) if node.op_type == "Reshape" else None
    return target is not None and target.ndim == 1 and len(target) == 2 and int(target[1]) in (-1, channels)


def _to_map(ctx: Any, tensor: str, channels: int) -> list[Any] | None:
    """The nodes that make the (N, C) gate `tensor` an (N, C, 1, 1) map: a Reshape, or one or two
    Unsqueeze on the trailing axes; None if it is not read so."""
    rank, nodes = 2, []
    while rank < 4:
        node = ctx.sole_consumer(tensor)
        if node is None or node.op_type not in ("Reshape", "Unsqueeze"):
            return None
        if node.op_type == "Reshape":
            target = ctx.constant(node.input[1])
            if target is None or target.ndim != 1 or len(target) != 4:
                return None
            if int(target[1]) not in (-1, channels) or any(int(t) != 1 for t in target[2:]):
                return None
            rank = 4
        else:
            axes = ctx.constant(node.input[1]) if len(node.input) > 1 else None
            axes = ctx.attr(node, "axes") if axes is None else [int(a) for a in axes.reshape(-1)]
            if not axes or any(a % (rank + len(axes)) < 2 for a in axes):
                return None
            rank += len(axes)
        nodes.append(node)
        tensor = node.output[0]
    return nodes if rank == 4 else None


def _bias(ctx: Any, node: Any) -> tuple[bool, np.ndarray | None]:
    """(whether the node's bias is usable, the bias): none at all is (True, None), a computed one (False,
    None)."""
    if len(node.input) < 3 or not node.input[2]:
        return True, None
    b = ctx.constant(node.input[2])
    return b is not None, b


def _linear_as_1x1(ctx: Any, node: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(weight, bias or None) of a Gemm with constant weights (a linear layer), as those of the 1x1
    convolution it is on a 1 x 1 map; None for any other node."""
    if node is None or node.op_type != "Gemm" or ctx.attr(node, "transA", 0):
        return None
    w, (usable, b) = ctx.constant(node.input[1]), _bias(ctx, node)
    if w is None or not usable or w.ndim != 2:
        return None
    w = (w if ctx.attr(node, "transB", 0) else w.T) * float(ctx.attr(node, "alpha", 1.0))
    if b is not None:
        b = b.reshape(-1) * float(ctx.attr(node, "beta", 1.0))
        if b.shape != (w.shape[0],):
            return None
    return w.reshape(*w.shape, 1, 1), b


def _conv1x1(ctx: Any, node: Any) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(weight, bias or None) of a plain 1x1 convolution with constant weights, else None."""
    if node is None or node.op_type != "Conv" or int(ctx.attr(node, "group", 1)) != 1:
        return None
    if any(v != 1 for v in [*ctx.attr(node, "strides", [1, 1]), *ctx.attr(node, "dilations", [1, 1])]):
        return None
    if any(ctx.attr(node, "pads", [0, 0, 0, 0])) or ctx.attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return None
    w, (usable, b) = ctx.constant(node.input[1]), _bias(ctx, node)
    if w is None or not usable or w.ndim != 4 or w.shape[2:] != (1, 1):
        return None
    return w, None if b is None else b.reshape(-1)


def _se_activation(ctx: Any, tensor: str) -> tuple[str | None, list[Any], str]:
    """The activation applied to `tensor` (fc1's output): ("relu", [Relu], out), ("silu", [Sigmoid, Mul],
    out), or (None, [], tensor)."""
    users = ctx.consumers(tensor)
    if tensor in ctx.graph_outputs:
        return None, [], tensor
    if len(users) == 1 and users[0].op_type == "Relu":
        return "relu", users, users[0].output[0]
    if len(users) == 2:
        sig = next((u for u in users if u.op_type == "Sigmoid"), None)
        mul = _silu_product(ctx, sig) if sig is not None else None
        if mul is not None and any(u is mul for u in users):
            return "silu", [sig, mul], mul.output[0]
    return None, [], tensor


#: in registration order (after `na_toolkit.builtin.layers.LAYER_TYPES`)
MOBILE_LAYER_TYPES: tuple[type[LayerType], ...] = (HardSigmoid, SiLU, SqueezeExcitation)


def builtin_registry() -> LayerTypeRegistry:
    """`na_toolkit.builtin.layers.builtin_layer_types()`: its types, then these, then those of
    `na_toolkit.builtin.layers_activations`, each under its module's name
    (the order `plugins.DEFAULT_PLUGINS` registers them in)."""
    from .layers import LAYER_TYPES
    from .layers_activations import ACTIVATION_LAYER_TYPES

    registry = LayerTypeRegistry()
    plugins = ((LAYER_TYPES[0].__module__, LAYER_TYPES), (__name__, MOBILE_LAYER_TYPES))
    for plugin, classes in (*plugins, (ACTIVATION_LAYER_TYPES[0].__module__, ACTIVATION_LAYER_TYPES)):
        registry.current_plugin = plugin
        for cls in classes:
            registry.add(cls())
    return registry


@na_toolkit.hookimpl
def na_register_layer_types(registry):
    for cls in MOBILE_LAYER_TYPES:
        registry.add(cls())

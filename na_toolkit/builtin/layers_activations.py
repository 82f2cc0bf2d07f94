"""Built-in activation layer types of the networks users bring (not in the seeds): leaky_relu, elu, tanh,
softplus and mish. Registered exactly like `na_toolkit.builtin.layers` (a plugin of their own in
`DEFAULT_PLUGINS`, after `na_toolkit.builtin.layers_mobile`, so mish's importer is asked before softplus's for
a `Softplus`: the start of mish written out, softplus -> tanh -> times x, as torch.onnx writes `nn.Mish` at
opset 17).

FLOPs per element count the ONNX ops each one is (as the other activations do: silu 2, gelu 5): one for the
single-op ones, three for mish. No move inserts or swaps to them (the moves' search spaces are as before);
the network embedding's vocabulary holds them, as every registered layer type (docs/architecture.md).

PReLU is not one of them: its slopes are learned weights (`na_toolkit.ir.onnx_import.PRELU_TODO` says what to
do with one).
"""

from __future__ import annotations

from typing import Any

import na_toolkit
from na_toolkit.ir.layers import AttrSpec, LayerCost, LayerType, numel
from na_toolkit.ir.layers import EmbeddedFloat as FloatGrid

from .layers import _Activation, _io_bytes, _nn


class _ScaledActivation(_Activation):
    """An activation of one real attribute, `param`: torch's module of it, ONNX's op of it as `alpha`
    (whose ONNX default is the attribute's torch default)."""

    param = ""

    def build_torch(self, attrs, in_shapes, out_shape):
        return getattr(_nn(), self.torch_class)(attrs[self.param])

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node(self.onnx_op, inputs, node_id, alpha=attrs[self.param])

    def import_onnx(self, ctx, onnx_node):
        alpha = float(ctx.attr(onnx_node, "alpha", self.attrs[self.param].default))
        attrs = {self.param: float(f"{alpha:.6g}")}  # the value written, not its float32 (0.1, not 0.10000000149)
        ctx.add(self.name, [ctx.value(onnx_node.input[0])], attrs, output=onnx_node.output[0])
        return True


class LeakyReLU(_ScaledActivation):
    name, description, torch_class = "leaky_relu", "max(x, 0) + negative_slope * min(x, 0)", "LeakyReLU"
    onnx_op, onnx_ops, param = "LeakyRelu", ("LeakyRelu",), "negative_slope"
    attrs = {"negative_slope": AttrSpec(float, 0.01, min=0.0, max=1.0, doc="the slope for x < 0")}
    # every slope of two decimals is a token of its own (0.01, torch's default; 0.1, 0.2 of YOLO / GAN code)
    embedded = (FloatGrid("negative_slope", 0.0, 1.0, 0.01),)


class ELU(_ScaledActivation):
    name, description, torch_class = "elu", "x if x > 0 else alpha * (exp(x) - 1)", "ELU"
    onnx_op, onnx_ops, param = "Elu", ("Elu",), "alpha"
    attrs = {"alpha": AttrSpec(float, 1.0, min=0.0, max=5.0, doc="the value ELU tends to for x -> -inf, negated")}
    embedded = (FloatGrid("alpha", 0.0, 5.0, 0.01),)


class Tanh(_Activation):
    name, description, torch_class, onnx_op, onnx_ops = "tanh", "tanh(x)", "Tanh", "Tanh", ("Tanh",)
    embedded = ()


class Softplus(_Activation):
    name, description, torch_class = "softplus", "log(1 + exp(x)) (torch's beta=1, threshold=20)", "Softplus"
    onnx_op, onnx_ops = "Softplus", ("Softplus",)
    embedded = ()


def _mish_tail(ctx: Any, softplus: Any) -> tuple[Any, Any] | None:
    """The `Tanh` and `Mul(x, Tanh)` that make `softplus` (a Softplus of x) a written-out mish, each read
    only by the next; else None."""
    x = softplus.input[0]
    tanh = ctx.sole_consumer(softplus.output[0])
    if tanh is None or tanh.op_type != "Tanh":
        return None
    mul = ctx.sole_consumer(tanh.output[0])
    if mul is None or mul.op_type != "Mul" or sorted(mul.input) != sorted([x, tanh.output[0]]):
        return None
    return tanh, mul


class Mish(_Activation):
    name, description, torch_class = "mish", "x * tanh(softplus(x)) (Misra 2019)", "Mish"
    # Mish (opset 18), or written out as opset 17 has it (and torch.onnx.export writes it): Softplus, Tanh, Mul
    onnx_ops = ("Mish", "Softplus")
    embedded = ()

    def cost(self, attrs, in_shapes, out_shape):
        i, o = _io_bytes(in_shapes, out_shape)
        return LayerCost(flops=3 * numel(out_shape), input_bytes=i, output_bytes=o)  # softplus, tanh, product

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        soft = ctx.node("Softplus", inputs, f"{node_id}.softplus")
        tanh = ctx.node("Tanh", [soft], f"{node_id}.tanh")
        return ctx.node("Mul", [inputs[0], tanh], node_id)

    def import_onnx(self, ctx, onnx_node):
        """`Mish`, or a `Softplus` whose only reader is a Tanh whose only reader multiplies it by the
        Softplus's input; any other Softplus is declined (the softplus layer type imports it)."""
        if onnx_node.op_type == "Mish":
            ctx.add(self.name, [ctx.value(onnx_node.input[0])], output=onnx_node.output[0])
            return True
        tail = _mish_tail(ctx, onnx_node)
        if tail is None:
            return False
        for node in tail:
            ctx.absorb(node)
        ctx.add(self.name, [ctx.value(onnx_node.input[0])], output=tail[1].output[0])
        return True


#: in registration order (after `na_toolkit.builtin.layers_mobile.MOBILE_LAYER_TYPES`): mish after softplus
ACTIVATION_LAYER_TYPES: tuple[type[LayerType], ...] = (LeakyReLU, ELU, Tanh, Softplus, Mish)


@na_toolkit.hookimpl
def na_register_layer_types(registry):
    for cls in ACTIVATION_LAYER_TYPES:
        registry.add(cls())

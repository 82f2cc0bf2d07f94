"""Built-in layer types: convolution, batch norm, activations, pooling, linear, add, concat, dropout,
identity, zero. Registered exactly like a third-party plugin's."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import na_toolkit
from na_toolkit.errors import ShapeError
from na_toolkit.ir.layers import BYTES_PER_ELEMENT as B
from na_toolkit.ir.layers import AttrSpec, LayerCost, LayerType, LayerTypeRegistry, Shape, check_feature_map, numel
from na_toolkit.ir.layers import EmbeddedCategorical as Categorical
from na_toolkit.ir.layers import EmbeddedFloat as FloatGrid
from na_toolkit.ir.layers import EmbeddedInt as IntRange

FLAG = (False, True)  # the vocabulary of bias, count_include_pad


def _io_bytes(in_shapes: list[Shape], out_shape: Shape) -> tuple[int, int]:
    return sum(numel(s) for s in in_shapes) * B, numel(out_shape) * B


def _pool_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _nn() -> Any:
    """`torch.nn`, imported on the first build: reading architectures never imports torch."""
    from torch import nn

    return nn


def _ir_module(name: str) -> Any:
    """A new module of `na_toolkit.ir.torch_modules` (imported on the first build, as torch)."""
    from na_toolkit.ir import torch_modules

    return getattr(torch_modules, name)()


def _onnx_importer(name: str) -> Any:
    """A layer type's `import_onnx`: the importer `name` of `na_toolkit.builtin.layers_onnx` for this layer
    type (that module is imported on the first ONNX import: reading architectures never needs it)."""

    def import_onnx(self: LayerType, ctx: Any, onnx_node: Any) -> bool:
        from . import layers_onnx

        return bool(getattr(layers_onnx, name)(ctx, onnx_node, self.name))

    import_onnx.__doc__ = f"Import the ONNX ops in `onnx_ops` (na_toolkit.builtin.layers_onnx.{name})."
    return import_onnx


class Conv2d(LayerType):
    name = "conv2d"
    description = "2-D convolution (groups=in_channels: depthwise); padding -1 keeps H, W at stride 1 for odd kernels"
    attrs = {
        "filters": AttrSpec(int, min=1, max=65536, doc="output channels"),
        "kernel": AttrSpec(int, 3, min=1, max=15),
        "stride": AttrSpec(int, 1, min=1, max=8),
        "padding": AttrSpec(int, -1, min=-1, max=16, doc="-1: dilation*(kernel-1)//2"),
        "dilation": AttrSpec(int, 1, min=1, max=8),
        "groups": AttrSpec(int, 1, min=1),
        "bias": AttrSpec(bool, False),
    }
    has_weights = True
    onnx_ops = ("Conv",)
    import_onnx = _onnx_importer("conv2d")

    @staticmethod
    def pad(attrs: dict[str, Any]) -> int:
        p = attrs["padding"]
        return attrs["dilation"] * (attrs["kernel"] - 1) // 2 if p < 0 else p

    def infer_shape(self, attrs, in_shapes):
        c, h, w = check_feature_map("conv2d", in_shapes[0])
        g, f = attrs["groups"], attrs["filters"]
        if c % g or f % g:
            raise ShapeError(f"groups={g} must divide input channels {c} and filters {f}")
        p = self.pad(attrs)
        ho = _pool_out(h, attrs["kernel"], attrs["stride"], p, attrs["dilation"])
        wo = _pool_out(w, attrs["kernel"], attrs["stride"], p, attrs["dilation"])
        if ho < 1 or wo < 1:
            raise ShapeError(f"kernel {attrs['kernel']} does not fit a {h}x{w} input")
        return (f, ho, wo)

    def cost(self, attrs, in_shapes, out_shape):
        c = in_shapes[0][0]
        k, g, f = attrs["kernel"], attrs["groups"], attrs["filters"]
        params = f * (c // g) * k * k + (f if attrs["bias"] else 0)
        macs = numel(out_shape) * (c // g) * k * k
        i, o = _io_bytes(in_shapes, out_shape)
        return LayerCost(params, macs, 2 * macs, params * B, i, o)

    def build_torch(self, attrs, in_shapes, out_shape):
        return _nn().Conv2d(
            in_shapes[0][0],
            attrs["filters"],
            attrs["kernel"],
            attrs["stride"],
            self.pad(attrs),
            attrs["dilation"],
            attrs["groups"],
            attrs["bias"],
        )

    def init_weights(self, attrs, in_shapes, out_shape, rng):
        c, k, g, f = in_shapes[0][0], attrs["kernel"], attrs["groups"], attrs["filters"]
        bound = 1.0 / math.sqrt((c // g) * k * k)
        w = {"weight": rng.uniform(-bound, bound, (f, c // g, k, k))}
        if attrs["bias"]:
            w["bias"] = rng.uniform(-bound, bound, (f,))
        return w

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        p, k = self.pad(attrs), attrs["kernel"]
        args = [inputs[0], ctx.initializer(f"{node_id}.weight", weights["weight"])]
        if "bias" in weights:
            args.append(ctx.initializer(f"{node_id}.bias", weights["bias"]))
        return ctx.node(
            "Conv",
            args,
            node_id,
            kernel_shape=[k, k],
            strides=[attrs["stride"]] * 2,
            pads=[p] * 4,
            dilations=[attrs["dilation"]] * 2,
            group=attrs["groups"],
        )

    # every value of the schema is a token of its own (the moves set kernels 1..7, and filters: the embedding's
    # generic output channels); `grouping` carries what is learned of depthwise convs across widths, `groups`
    # tells grouped convs of one width apart (their parameters differ)
    embedded = (
        *(IntRange(k, lo, hi) for k, lo, hi in (("kernel", 1, 15), ("stride", 1, 8), ("padding", -1, 16))),
        IntRange("dilation", 1, 8),
        Categorical("grouping", ("dense", "depthwise", "grouped")),
        IntRange("groups", 1, 4096),
        Categorical("bias", FLAG),
    )

    @staticmethod
    def grouping(attrs: dict[str, Any], in_channels: int) -> str:
        return "dense" if attrs["groups"] == 1 else ("depthwise" if attrs["groups"] == in_channels else "grouped")

    def embedded_values(self, attrs, in_shapes, out_shape):
        return {**attrs, "grouping": self.grouping(attrs, in_shapes[0][0])}

    def features(self, attrs, in_shapes, out_shape):
        kind = ("dense", "depthwise", "grouped").index(self.grouping(attrs, in_shapes[0][0]))
        return {"kernel": attrs["kernel"], "stride": attrs["stride"], "dilation": attrs["dilation"], "groups": kind}


class BatchNorm2d(LayerType):
    name = "batchnorm2d"
    description = "batch normalisation over channels (inference: running statistics)"
    attrs = {"eps": AttrSpec(float, 1e-5, min=0.0, max=1.0), "momentum": AttrSpec(float, 0.1, min=0.0, max=1.0)}
    has_weights = True
    onnx_ops = ("BatchNormalization",)
    import_onnx = _onnx_importer("batchnorm2d")
    embedded = ()  # eps and momentum change neither shapes nor cost, and no move sets them

    def infer_shape(self, attrs, in_shapes):
        return check_feature_map("batchnorm2d", in_shapes[0])

    def cost(self, attrs, in_shapes, out_shape):
        c = out_shape[0]
        i, o = _io_bytes(in_shapes, out_shape)
        return LayerCost(2 * c, 0, 2 * numel(out_shape), 4 * c * B, i, o)

    def build_torch(self, attrs, in_shapes, out_shape):
        return _nn().BatchNorm2d(out_shape[0], eps=attrs["eps"], momentum=attrs["momentum"])

    def init_weights(self, attrs, in_shapes, out_shape, rng):
        c = out_shape[0]
        return {"weight": np.ones(c), "bias": np.zeros(c), "running_mean": np.zeros(c), "running_var": np.ones(c)}

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        names = ("weight", "bias", "running_mean", "running_var")
        args = [inputs[0]] + [ctx.initializer(f"{node_id}.{k}", weights[k]) for k in names]
        # momentum (ONNX keeps the running value's weight, 1 - torch's) travels with the file: the importer reads
        # it back, so a network's training setting survives the round trip (its hash too)
        return ctx.node("BatchNormalization", args, node_id, epsilon=attrs["eps"], momentum=1.0 - attrs["momentum"])


class _Activation(LayerType):
    onnx_op = ""
    import_onnx = _onnx_importer("unary")

    def build_torch(self, attrs, in_shapes, out_shape):
        return getattr(_nn(), self.torch_class)()

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node(self.onnx_op, inputs, node_id)


class ReLU(_Activation):
    name, description, torch_class, onnx_op, onnx_ops = "relu", "max(x, 0)", "ReLU", "Relu", ("Relu",)


class Sigmoid(_Activation):
    name, description, torch_class = "sigmoid", "1 / (1 + exp(-x))", "Sigmoid"
    onnx_op, onnx_ops = "Sigmoid", ("Sigmoid",)


class HardSwish(_Activation):
    name, description, torch_class = "hardswish", "x * relu6(x + 3) / 6", "Hardswish"
    onnx_op, onnx_ops = "HardSwish", ("HardSwish",)


class ReLU6(_Activation):
    name, description, torch_class, onnx_ops = "relu6", "min(max(x, 0), 6)", "ReLU6", ("Clip",)
    import_onnx = _onnx_importer("relu6")  # also a Clip to [0, inf), as a relu

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        lo = ctx.initializer(f"{node_id}.min", np.array(0.0, dtype=np.float32))
        hi = ctx.initializer(f"{node_id}.max", np.array(6.0, dtype=np.float32))
        return ctx.node("Clip", [inputs[0], lo, hi], node_id)


class GELU(_Activation):
    name, description, torch_class = "gelu", "x * Phi(x) (exact, erf form)", "GELU"
    # Gelu (opset 20), or its erf expansion: the Div / Mul by sqrt(2) that starts it, then the Erf
    onnx_ops = ("Gelu", "Erf", "Div", "Mul")
    import_onnx = _onnx_importer("gelu")

    def cost(self, attrs, in_shapes, out_shape):
        base = super().cost(attrs, in_shapes, out_shape)
        return LayerCost(flops=5 * numel(out_shape), input_bytes=base.input_bytes, output_bytes=base.output_bytes)

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        # opset 17 has no Gelu: 0.5 * x * (1 + erf(x / sqrt(2)))
        x = inputs[0]
        rsqrt2 = ctx.initializer(f"{node_id}.rsqrt2", np.array(1 / math.sqrt(2), np.float32))
        scaled = ctx.node("Mul", [x, rsqrt2], f"{node_id}.scaled")
        erf = ctx.node("Erf", [scaled], f"{node_id}.erf")
        one = ctx.node("Add", [erf, ctx.initializer(f"{node_id}.one", np.array(1.0, np.float32))], f"{node_id}.onep")
        half = ctx.node("Mul", [x, ctx.initializer(f"{node_id}.half", np.array(0.5, np.float32))], f"{node_id}.halfx")
        return ctx.node("Mul", [half, one], node_id)


class _Pool2d(LayerType):
    attrs = {
        "kernel": AttrSpec(int, 2, min=1, max=15),
        "stride": AttrSpec(int, 2, min=1, max=15),
        "padding": AttrSpec(int, 0, min=0, max=7),
    }
    import_onnx = _onnx_importer("pool2d")

    def infer_shape(self, attrs, in_shapes):
        c, h, w = check_feature_map(self.name, in_shapes[0])
        k, s, p = attrs["kernel"], attrs["stride"], attrs["padding"]
        if 2 * p > k:
            raise ShapeError(f"padding {p} must be at most half the kernel {k}")
        ho, wo = _pool_out(h, k, s, p), _pool_out(w, k, s, p)
        if ho < 1 or wo < 1:
            raise ShapeError(f"kernel {k} does not fit a {h}x{w} input")
        return (c, ho, wo)

    def cost(self, attrs, in_shapes, out_shape):
        i, o = _io_bytes(in_shapes, out_shape)
        return LayerCost(flops=numel(out_shape) * attrs["kernel"] ** 2, input_bytes=i, output_bytes=o)

    embedded: Any = (IntRange("kernel", 1, 15), IntRange("stride", 1, 15), IntRange("padding", 0, 7))

    def features(self, attrs, in_shapes, out_shape):
        return {"kernel": attrs["kernel"], "stride": attrs["stride"]}

    def _onnx_attrs(self, attrs):
        k, s, p = attrs["kernel"], attrs["stride"], attrs["padding"]
        return {"kernel_shape": [k, k], "strides": [s, s], "pads": [p] * 4}


class MaxPool2d(_Pool2d):
    name, description, onnx_ops = "maxpool2d", "max pooling", ("MaxPool",)

    def build_torch(self, attrs, in_shapes, out_shape):
        return _nn().MaxPool2d(attrs["kernel"], attrs["stride"], attrs["padding"])

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node("MaxPool", inputs, node_id, **self._onnx_attrs(attrs))


class AvgPool2d(_Pool2d):
    name, description, onnx_ops = "avgpool2d", "average pooling (count_include_pad as in torch)", ("AveragePool",)
    attrs = {**_Pool2d.attrs, "count_include_pad": AttrSpec(bool, False)}
    embedded = (*_Pool2d.embedded, Categorical("count_include_pad", FLAG))

    def build_torch(self, attrs, in_shapes, out_shape):
        return _nn().AvgPool2d(
            attrs["kernel"], attrs["stride"], attrs["padding"], count_include_pad=attrs["count_include_pad"]
        )

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node(
            "AveragePool", inputs, node_id, count_include_pad=int(attrs["count_include_pad"]), **self._onnx_attrs(attrs)
        )


class GlobalAvgPool(LayerType):
    name, description = "global_avg_pool", "mean over H and W: (C, H, W) -> (C, 1, 1)"
    onnx_ops = ("GlobalAveragePool", "ReduceMean")
    import_onnx = _onnx_importer("global_avg_pool")

    def infer_shape(self, attrs, in_shapes):
        c, _h, _w = check_feature_map("global_avg_pool", in_shapes[0])
        return (c, 1, 1)

    def cost(self, attrs, in_shapes, out_shape):
        i, o = _io_bytes(in_shapes, out_shape)
        return LayerCost(flops=numel(in_shapes[0]), input_bytes=i, output_bytes=o)

    def build_torch(self, attrs, in_shapes, out_shape):
        return _ir_module("GlobalAvgPool")

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node("GlobalAveragePool", inputs, node_id)


class Flatten(LayerType):
    name, description, onnx_ops = "flatten", "(C, H, W) -> (C*H*W,)", ("Flatten", "Reshape")
    import_onnx = _onnx_importer("flatten")

    def infer_shape(self, attrs, in_shapes):
        return (numel(in_shapes[0]),)

    def cost(self, attrs, in_shapes, out_shape):
        return LayerCost()  # a view: no data moves

    def build_torch(self, attrs, in_shapes, out_shape):
        return _ir_module("Flatten")

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node("Flatten", inputs, node_id, axis=1)


class Linear(LayerType):
    name, description, onnx_ops = "linear", "fully connected layer on a vector", ("Gemm", "MatMul")
    import_onnx = _onnx_importer("linear")
    attrs = {"units": AttrSpec(int, min=1, max=1 << 20), "bias": AttrSpec(bool, True)}
    has_weights = True
    embedded = (Categorical("bias", FLAG),)  # units: the embedding's generic output channels

    def infer_shape(self, attrs, in_shapes):
        if len(in_shapes[0]) != 1:
            raise ShapeError(f"linear needs a vector input (add a flatten), got shape {in_shapes[0]}")
        return (attrs["units"],)

    def cost(self, attrs, in_shapes, out_shape):
        n, u = in_shapes[0][0], attrs["units"]
        params = n * u + (u if attrs["bias"] else 0)
        i, o = _io_bytes(in_shapes, out_shape)
        return LayerCost(params, n * u, 2 * n * u, params * B, i, o)

    def build_torch(self, attrs, in_shapes, out_shape):
        return _nn().Linear(in_shapes[0][0], attrs["units"], bias=attrs["bias"])

    def init_weights(self, attrs, in_shapes, out_shape, rng):
        n, u = in_shapes[0][0], attrs["units"]
        bound = 1.0 / math.sqrt(n)
        w = {"weight": rng.uniform(-bound, bound, (u, n))}
        if attrs["bias"]:
            w["bias"] = rng.uniform(-bound, bound, (u,))
        return w

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        args = [inputs[0], ctx.initializer(f"{node_id}.weight", weights["weight"])]
        if "bias" in weights:
            args.append(ctx.initializer(f"{node_id}.bias", weights["bias"]))
        return ctx.node("Gemm", args, node_id, transB=1)


class Add(LayerType):
    name, description, onnx_ops = "add", "elementwise sum of 2+ tensors of one shape", ("Add", "Sum")
    import_onnx = _onnx_importer("add")
    min_inputs, max_inputs = 2, None

    def infer_shape(self, attrs, in_shapes):
        if any(s != in_shapes[0] for s in in_shapes[1:]):
            raise ShapeError(f"add needs inputs of one shape, got {', '.join(map(str, in_shapes))}")
        return in_shapes[0]

    def cost(self, attrs, in_shapes, out_shape):
        i, o = _io_bytes(in_shapes, out_shape)
        return LayerCost(flops=numel(out_shape) * (len(in_shapes) - 1), input_bytes=i, output_bytes=o)

    def build_torch(self, attrs, in_shapes, out_shape):
        return _ir_module("Add")

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node("Add" if len(inputs) == 2 else "Sum", inputs, node_id)

    embedded = ()  # the number of inputs and their distances are the embedding's own (generic) tokens

    def features(self, attrs, in_shapes, out_shape):
        return {"inputs": len(in_shapes)}


class Concat(LayerType):
    name, description, onnx_ops = "concat", "concatenation along channels (features for vectors)", ("Concat",)
    import_onnx = _onnx_importer("concat")
    min_inputs, max_inputs = 2, None

    def infer_shape(self, attrs, in_shapes):
        rest = {s[1:] for s in in_shapes}
        if len({len(s) for s in in_shapes}) != 1 or len(rest) != 1:
            raise ShapeError(f"concat needs inputs equal but for the channels, got {', '.join(map(str, in_shapes))}")
        return (sum(s[0] for s in in_shapes), *in_shapes[0][1:])

    def cost(self, attrs, in_shapes, out_shape):
        i, o = _io_bytes(in_shapes, out_shape)
        return LayerCost(input_bytes=i, output_bytes=o)

    def build_torch(self, attrs, in_shapes, out_shape):
        return _ir_module("Concat")

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node("Concat", inputs, node_id, axis=1)

    embedded = ()  # the number of inputs and their distances are the embedding's own (generic) tokens

    def features(self, attrs, in_shapes, out_shape):
        return {"inputs": len(in_shapes)}


class Dropout(LayerType):
    name, description, onnx_ops = "dropout", "dropout (identity at inference)", ("Dropout",)
    import_onnx = _onnx_importer("dropout")
    attrs = {"rate": AttrSpec(float, 0.1, min=0.0, max=0.95)}

    def cost(self, attrs, in_shapes, out_shape):
        return LayerCost()

    def build_torch(self, attrs, in_shapes, out_shape):
        return _nn().Dropout(attrs["rate"])

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        # ONNX Dropout with its ratio (identity at inference, training_mode left off): `arch import` gives
        # the dropout layer back with its rate, where an Identity would silently drop it
        ratio = ctx.initializer(f"{node_id}_ratio", np.array(attrs["rate"], dtype=np.float32))
        return ctx.node("Dropout", [*inputs, ratio], node_id)

    # a grid of 0.01: the moves' rates (0.0 .. 0.5 by 0.1) and common imported ones (0.25, 0.05) are tokens
    embedded = (FloatGrid("rate", 0.0, 0.95, 0.01),)

    def features(self, attrs, in_shapes, out_shape):
        return {"rate_tenths": int(round(attrs["rate"] * 10))}


class Identity(LayerType):
    name, description, onnx_ops = "identity", "passes its input through", ("Identity",)
    import_onnx = _onnx_importer("identity")

    def cost(self, attrs, in_shapes, out_shape):
        return LayerCost()

    def build_torch(self, attrs, in_shapes, out_shape):
        return _nn().Identity()

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node("Identity", inputs, node_id)


class Zero(LayerType):
    name, description = "zero", "zeros of the input's shape (NAS-Bench-201's 'none' edge)"
    onnx_ops = ("Mul",)  # by a constant zero, as emitted
    import_onnx = _onnx_importer("zero")

    def cost(self, attrs, in_shapes, out_shape):
        return LayerCost(output_bytes=numel(out_shape) * B)

    def build_torch(self, attrs, in_shapes, out_shape):
        return _ir_module("Zero")

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node("Mul", [inputs[0], ctx.initializer(f"{node_id}.zero", np.array(0.0, np.float32))], node_id)


#: in registration order: convolution, normalisation and activations; pooling, reshaping and the rest
LAYER_TYPES: tuple[type[LayerType], ...] = (
    *(Conv2d, BatchNorm2d, ReLU, ReLU6, GELU, Sigmoid, HardSwish),
    *(MaxPool2d, AvgPool2d, GlobalAvgPool, Flatten, Linear, Add, Concat, Dropout, Identity, Zero),
)


def builtin_layer_types() -> LayerTypeRegistry:
    """A registry of the built-in layer types alone, without any plugin manager (tests, scripts that read
    architectures, and the IR's lightweight users). A search uses its toolkit's `layer_types` instead."""
    from .layers_mobile import builtin_registry  # this module's types, then that one's (it imports this one)

    return builtin_registry()


@na_toolkit.hookimpl
def na_register_layer_types(registry):
    for cls in LAYER_TYPES:
        registry.add(cls())

"""The `squeeze_excite` layer type: squeeze-and-excitation, Hu, Shen & Sun, "Squeeze-and-Excitation
Networks", CVPR 2018 (arXiv:1709.01507).

    s = sigmoid(W2 · relu(W1 · mean_hw(x) + b1) + b2)      W1: C -> C/r, W2: C/r -> C
    y = x * s                                               (per channel)

The two fully connected layers are 1x1 convolutions on the pooled 1x1 map (as torchvision writes it), so
the torch module, the ONNX graph and the weight names agree one to one.
"""

from __future__ import annotations

import math

from na_toolkit.errors import ShapeError
from na_toolkit.ir.layers import (
    BYTES_PER_ELEMENT,
    AttrSpec,
    EmbeddedInt,
    LayerCost,
    LayerType,
    check_feature_map,
    numel,
)


class SqueezeExcite(LayerType):
    name = "squeeze_excite"
    description = "squeeze-and-excitation block (Hu et al. 2018): channel gates from global context, shape kept"
    attrs = {
        # The paper's default is r = 16; small CIFAR-sized networks use 4 (MobileNetV3 does too).
        "reduction": AttrSpec(int, 4, min=1, max=1024, doc="channel reduction ratio r: hidden = C // r"),
    }
    has_weights = True
    # What the network embedding reads of an SE block besides the generic channels, size and inputs: the
    # reduction ratio, one token per value up to 64 (insert_se sets 4, 8 or 16), larger ones out of
    # vocabulary. The block gets a lookup table of its own (`squeeze_excite.reduction`); no core code names it.
    embedded = (EmbeddedInt("reduction", 1, 64, doc="channel reduction ratio r"),)
    # One block is six ONNX ops; import starts at the squeeze: GlobalAveragePool (our emitter) or ReduceMean
    # over H and W (torch.onnx.export of `x.mean((2, 3), keepdim=True)`).
    onnx_ops = ("GlobalAveragePool", "ReduceMean")
    #: the ops after the squeeze, each the sole consumer of the one before
    PATTERN = ("Conv", "Relu", "Conv", "Sigmoid", "Mul")

    @staticmethod
    def hidden(attrs, channels: int) -> int:
        return channels // attrs["reduction"]

    def infer_shape(self, attrs, in_shapes):
        c, _h, _w = check_feature_map(self.name, in_shapes[0])
        if self.hidden(attrs, c) < 1:
            raise ShapeError(f"reduction {attrs['reduction']} leaves no hidden unit for {c} channels (need r <= C)")
        return in_shapes[0]

    def cost(self, attrs, in_shapes, out_shape):
        c, h, w = in_shapes[0]
        hid = self.hidden(attrs, c)
        params = c * hid + hid + hid * c + c
        macs = 2 * c * hid  # the two fully connected layers
        # pool (1 add / element) + scale (1 mul / element) + the FCs + biases, relu and sigmoid (~1 each)
        flops = 2 * c * h * w + 2 * macs + 2 * (hid + c)
        x_bytes = numel(in_shapes[0]) * BYTES_PER_ELEMENT
        # x is read twice: once to pool it, once to scale it (it rarely stays in cache for real sizes)
        return LayerCost(params, macs, flops, params * BYTES_PER_ELEMENT, 2 * x_bytes, x_bytes)

    def build_torch(self, attrs, in_shapes, out_shape):
        from ._torch import SqueezeExciteModule

        c = in_shapes[0][0]
        return SqueezeExciteModule(c, self.hidden(attrs, c))

    def init_weights(self, attrs, in_shapes, out_shape, rng):
        # Same names and the same uniform(-1/sqrt(fan_in), +) bounds as torch's Conv2d default init.
        c = in_shapes[0][0]
        hid = self.hidden(attrs, c)
        b1, b2 = 1 / math.sqrt(c), 1 / math.sqrt(hid)
        return {
            "fc1.weight": rng.uniform(-b1, b1, (hid, c, 1, 1)),
            "fc1.bias": rng.uniform(-b1, b1, (hid,)),
            "fc2.weight": rng.uniform(-b2, b2, (c, hid, 1, 1)),
            "fc2.bias": rng.uniform(-b2, b2, (c,)),
        }

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        def conv1x1(x, fc):  # fc1 / fc2: a 1x1 convolution with bias, weights named as in the torch module
            w = ctx.initializer(f"{node_id}.{fc}.weight", weights[f"{fc}.weight"])
            b = ctx.initializer(f"{node_id}.{fc}.bias", weights[f"{fc}.bias"])
            return ctx.node("Conv", [x, w, b], f"{node_id}.{fc}", kernel_shape=[1, 1])

        x = inputs[0]
        pooled = ctx.node("GlobalAveragePool", [x], f"{node_id}.squeeze")
        hidden = ctx.node("Relu", [conv1x1(pooled, "fc1")], f"{node_id}.relu")
        gate = ctx.node("Sigmoid", [conv1x1(hidden, "fc2")], f"{node_id}.gate")
        return ctx.node("Mul", [x, gate], node_id)  # broadcast (N,C,1,1) over (N,C,H,W)

    def import_onnx(self, ctx, onnx_node):
        """Turn squeeze -> Conv 1x1 -> Relu -> Conv 1x1 -> Sigmoid -> Mul(x, gate) back into one node.
        Anything else returns False, so the built-in global_avg_pool imports a plain global pool as usual."""
        x = onnx_node.input[0]
        if len(ctx.shape(x)) != 3 or not _is_spatial_mean(ctx, onnx_node):
            return False
        chain, tail = [], onnx_node
        for op in self.PATTERN:
            tail = ctx.sole_consumer(tail.output[0])
            if tail is None or tail.op_type != op:
                return False
            chain.append(tail)
        fc1, _relu, fc2, gate, mul = chain
        if sorted(mul.input) != sorted([x, gate.output[0]]):
            return False
        c = ctx.shape(x)[0]
        p1, p2 = _conv1x1_params(ctx, fc1), _conv1x1_params(ctx, fc2)
        if p1 is None or p2 is None:
            return False
        (w1, b1), (w2, b2) = p1, p2
        hidden = w1.shape[0]
        if w1.shape[1] != c or w2.shape[:2] != (c, hidden) or hidden > c:
            return False
        reduction = c // hidden
        if c // reduction != hidden:  # no integer ratio gives this hidden width
            return False
        weights = {"fc1.weight": w1, "fc1.bias": b1, "fc2.weight": w2, "fc2.bias": b2}
        ctx.add(self.name, [ctx.value(x)], {"reduction": reduction}, weights, output=mul.output[0])
        for node in chain:
            ctx.absorb(node)
        return True

    def features(self, attrs, in_shapes, out_shape):
        # the IR feature vector of the scikit-learn predictors: log2 of the ratio (r = 1, 2, 4 -> 0, 1, 2)
        return {"reduction_log2": int(math.log2(attrs["reduction"]))}


def _is_spatial_mean(ctx, node) -> bool:
    """GlobalAveragePool, or ReduceMean over axes H, W keeping the dimensions."""
    if node.op_type == "GlobalAveragePool":
        return True
    if len(node.input) > 1 and node.input[1]:  # opset 18+: axes is an input
        axes = ctx.constant(node.input[1])
        axes = None if axes is None else [int(a) for a in axes.reshape(-1)]
    else:
        axes = ctx.attr(node, "axes")
    return axes is not None and sorted(a % 4 for a in axes) == [2, 3] and bool(ctx.attr(node, "keepdims", 1))


def _conv1x1_params(ctx, node):
    """(weight, bias) of a plain 1x1 convolution with constant weights and bias, else None."""
    if len(node.input) < 3 or int(ctx.attr(node, "group", 1)) != 1:
        return None
    if any(v != 1 for v in list(ctx.attr(node, "strides", [1, 1])) + list(ctx.attr(node, "dilations", [1, 1]))):
        return None
    if any(ctx.attr(node, "pads", [0, 0, 0, 0])):
        return None
    w, b = ctx.constant(node.input[1]), ctx.constant(node.input[2])
    if w is None or b is None or w.ndim != 4 or w.shape[2:] != (1, 1):
        return None
    return w, b.reshape(-1)

"""The lowerings of `na_toolkit.ir.torch_import`: each ATen op of a `torch.export` graph as the ONNX op(s) it
computes, written through the `_Lowering` that walks the graph (`lw.tensor`, `lw.constant`, `lw.op`,
`lw.error`). `LOWERINGS` maps an ATen op (the str of its OpOverload) to its lowering."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .torch_import import _Lowering

__all__ = ["LOWERINGS", "WRITTEN_AS", "supported_ops"]


# ---- the lowerings: (lowering, *ATen args, **ATen kwargs) -> ONNX tensor name ---------------------------------
def _pair(value: Any, default: int) -> list[int]:
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return [default, default]
    return [int(v) for v in value] * (2 // len(value)) if isinstance(value, (list, tuple)) else [int(value)] * 2


def _conv2d(
    lw: _Lowering,
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
) -> str:
    inputs = [lw.tensor(x), lw.tensor(weight)] + ([lw.tensor(bias)] if bias is not None else [])
    attrs: dict[str, Any] = {"kernel_shape": list(weight.meta["val"].shape[2:]), "group": int(groups)}
    attrs.update(strides=_pair(stride, 1), dilations=_pair(dilation, 1))
    if isinstance(padding, str):  # conv2d.padding: "same" / "valid"
        attrs["auto_pad"] = {"same": "SAME_UPPER", "valid": "VALID"}[padding]
    else:
        pads = _pair(padding, 0)
        attrs["pads"] = pads + pads
    return lw.op("Conv", inputs, **attrs)


def _convolution(
    lw: _Lowering,
    x: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: Any,
    output_padding: Any,
    groups: Any,
) -> str:
    if transposed:
        raise lw.error("transposed convolution is not supported")
    return _conv2d(lw, x, weight, bias, stride, padding, dilation, groups)


def _batch_norm(
    lw: _Lowering,
    x: Any,
    weight: Any,
    bias: Any,
    mean: Any,
    var: Any,
    training: Any = False,
    momentum: Any = 0.1,
    eps: Any = 1e-5,
    cudnn_enabled: Any = True,
) -> str:
    if training:
        raise lw.error("batch norm in training mode: put the module in eval mode (batch norm with statistics)")
    if mean is None or var is None:
        raise lw.error("batch norm without running statistics (track_running_stats=False) is not supported")
    channels = mean.meta["val"].shape[0]
    scale = lw.tensor(weight) if weight is not None else lw.constant(np.ones(channels, np.float32), "weight")
    shift = lw.tensor(bias) if bias is not None else lw.constant(np.zeros(channels, np.float32), "bias")
    attrs: dict[str, Any] = {"epsilon": float(eps)}
    if momentum is not None:
        attrs["momentum"] = 1.0 - float(momentum)  # ONNX keeps the weight of the running value
    return lw.op("BatchNormalization", [lw.tensor(x), scale, shift, lw.tensor(mean), lw.tensor(var)], **attrs)


def _batch_norm_no_training(
    lw: _Lowering, x: Any, weight: Any, bias: Any, mean: Any, var: Any, momentum: Any, eps: Any
) -> tuple[str | None, ...]:
    return (_batch_norm(lw, x, weight, bias, mean, var, False, momentum, eps), None, None)


def _unary(op_type: str, **attrs: Any) -> Callable[..., str]:
    def lower(lw: _Lowering, x: Any, *rest: Any) -> str:
        return lw.op(op_type, [lw.tensor(x)], **attrs)

    return lower


def _clip(lw: _Lowering, x: Any, low: Any = -1.0, high: Any = 1.0) -> str:
    """hardtanh (-1, 1 by default), relu6, clamp (a bound of None: unbounded, an empty ONNX input)."""
    bounds = ["" if v is None else lw.constant(np.array(v, np.float32), k) for k, v in (("min", low), ("max", high))]
    return lw.op("Clip", [lw.tensor(x), *(bounds[:1] if high is None else bounds)])


def _clamp(lw: _Lowering, x: Any, low: Any = None, high: Any = None) -> str:
    return _clip(lw, x, low, high)


def _silu(lw: _Lowering, x: Any) -> str:
    return lw.op("Mul", [lw.tensor(x), lw.op("Sigmoid", [lw.tensor(x)], ".sigmoid")])


def _leaky_relu(lw: _Lowering, x: Any, negative_slope: Any = 0.01) -> str:
    return lw.op("LeakyRelu", [lw.tensor(x)], alpha=float(negative_slope))


def _elu(lw: _Lowering, x: Any, alpha: Any = 1.0, scale: Any = 1, input_scale: Any = 1) -> str:
    if scale != 1 or input_scale != 1:
        raise lw.error(f"elu with scale={scale}, input_scale={input_scale} is supported as plain elu only")
    return lw.op("Elu", [lw.tensor(x)], alpha=float(alpha))


def _softplus(lw: _Lowering, x: Any, beta: Any = 1, threshold: Any = 20) -> str:
    # torch's threshold (x above it is returned as is) differs from log(1 + exp(x)) by < 1e-8 at 20
    if beta != 1 or threshold < 20:
        raise lw.error(f"softplus(beta={beta}, threshold={threshold}) is supported with beta=1, threshold>=20")
    return lw.op("Softplus", [lw.tensor(x)])


def _mish(lw: _Lowering, x: Any) -> str:
    # x * tanh(softplus(x)), as torch.onnx.export writes it at opset 17 (the mish importer reads this form)
    t = lw.tensor(x)
    return lw.op("Mul", [t, lw.op("Tanh", [lw.op("Softplus", [t], ".softplus")], ".tanh")])


def _prelu(lw: _Lowering, x: Any, weight: Any) -> str:
    # ONNX PRelu with the slopes as torch holds them: no built-in layer type imports it (the import says
    # what to do instead), a plugin's may
    return lw.op("PRelu", [lw.tensor(x), lw.tensor(weight)])


def _gelu(lw: _Lowering, x: Any, approximate: Any = "none") -> str:
    if approximate != "none":
        raise lw.error(f"gelu(approximate={approximate!r}) is not supported (only the exact erf form): use nn.GELU()")
    # 0.5 * x * (1 + erf(x / sqrt 2)), written as na_toolkit's own emitter writes it (the gelu importer)
    t = lw.tensor(x)
    erf = lw.op("Erf", [lw.op("Mul", [t, lw.constant(np.array(2**-0.5, np.float32), "rsqrt2")], ".scaled")], ".erf")
    one = lw.op("Add", [erf, lw.constant(np.array(1.0, np.float32), "one")], ".onep")
    half = lw.op("Mul", [t, lw.constant(np.array(0.5, np.float32), "half")], ".halfx")
    return lw.op("Mul", [half, one])


def _binary(op_type: str) -> Callable[..., str]:
    def lower(lw: _Lowering, a: Any, b: Any, alpha: Any = 1) -> str:
        if alpha != 1:
            raise lw.error(f"{op_type} with alpha={alpha} is not supported")
        return lw.op(op_type, [lw.tensor(a), lw.tensor(b)])

    return lower


def _mean(lw: _Lowering, x: Any, dims: Any, keepdim: Any = False, dtype: Any = None) -> str:
    return lw.op("ReduceMean", [lw.tensor(x)], axes=[int(d) for d in dims], keepdims=int(bool(keepdim)))


def _adaptive_kernel(lw: _Lowering, x: Any, output_size: Any, what: str, module: str) -> list[int]:
    """The kernel (and stride) of the plain pooling that is adaptive pooling of `x` to `output_size`: the map's
    size over the output's, where the output's divides it (an adaptive pooling's windows are then disjoint
    and equal); a TorchImportError otherwise."""
    size = [int(s) for s in x.meta["val"].shape[2:]]
    wanted = output_size if isinstance(output_size, (list, tuple)) else [output_size, output_size]
    out = [s if o is None else int(o) for o, s in zip(wanted * (2 // len(wanted)), size)]
    if any(o < 1 or s % o for o, s in zip(out, size)):
        raise lw.error(
            f"adaptive {what} pooling from {size[0]}x{size[1]} to {out[0]}x{out[1]} is not supported: it is imported "
            f"where the output size divides the input's (as {what} pooling with kernel = stride = input / output); "
            f"give the model an input size that it divides, or use nn.{module}"
        )
    return [s // o for o, s in zip(out, size)]


def _adaptive_avg_pool2d(lw: _Lowering, x: Any, output_size: Any) -> str:
    kernel = _adaptive_kernel(lw, x, output_size, "average", "AvgPool2d")
    if kernel == [int(s) for s in x.meta["val"].shape[2:]]:
        return lw.op("GlobalAveragePool", [lw.tensor(x)])
    return lw.op("AveragePool", [lw.tensor(x)], kernel_shape=kernel, strides=kernel, pads=[0, 0, 0, 0])


def _adaptive_max_pool2d(lw: _Lowering, x: Any, output_size: Any) -> tuple[str | None, ...]:
    kernel = _adaptive_kernel(lw, x, output_size, "max", "MaxPool2d")
    return (lw.op("MaxPool", [lw.tensor(x)], kernel_shape=kernel, strides=kernel, pads=[0, 0, 0, 0]), None)


def _pool_attrs(lw: _Lowering, kernel: Any, stride: Any, padding: Any, ceil_mode: Any) -> dict[str, Any]:
    if ceil_mode:
        raise lw.error(
            "ceil_mode=True pooling is not supported: use ceil_mode=False (with padding=1 where the size must round up)"
        )
    k = _pair(kernel, 1)
    pads = _pair(padding, 0)
    return {"kernel_shape": k, "strides": _pair(stride, 0) if stride else k, "pads": pads + pads}


def _max_pool2d(
    lw: _Lowering, x: Any, kernel: Any, stride: Any = (), padding: Any = 0, dilation: Any = 1, ceil_mode: Any = False
) -> str:
    attrs = _pool_attrs(lw, kernel, stride, padding, ceil_mode)
    if _pair(dilation, 1) != [1, 1]:
        attrs["dilations"] = _pair(dilation, 1)
    return lw.op("MaxPool", [lw.tensor(x)], **attrs)


def _max_pool2d_with_indices(lw: _Lowering, *args: Any) -> tuple[str | None, ...]:
    return (_max_pool2d(lw, *args), None)


def _avg_pool2d(
    lw: _Lowering,
    x: Any,
    kernel: Any,
    stride: Any = (),
    padding: Any = 0,
    ceil_mode: Any = False,
    count_include_pad: Any = True,
    divisor: Any = None,
) -> str:
    if divisor is not None:
        raise lw.error("average pooling with divisor_override is not supported")
    attrs = _pool_attrs(lw, kernel, stride, padding, ceil_mode)
    return lw.op("AveragePool", [lw.tensor(x)], count_include_pad=int(bool(count_include_pad)), **attrs)


def _flatten(lw: _Lowering, x: Any, start: Any = 0, end: Any = -1) -> str:
    rank = len(x.meta["val"].shape)
    if start % rank != 1 or end % rank != rank - 1:
        raise lw.error(f"flatten({start}, {end}) is supported as flatten(1) (all but the batch) only")
    return lw.op("Flatten", [lw.tensor(x)], axis=1)


def _reshape(lw: _Lowering, x: Any, *args: Any) -> str:
    """view, reshape, squeeze, unsqueeze: a Reshape to the op's output shape (the example's batch first),
    read from the input of the chain of shape ops it ends (so `.squeeze(-1).squeeze(-1)` is one Reshape,
    and one that gives back the shape it started from is no op at all)."""
    source = lw.tensor(x)
    source, shape = lw.reshaped.get(source, (source, tuple(int(s) for s in x.meta["val"].shape)))
    target = tuple(int(s) for s in lw.current.meta["val"].shape)
    if target == shape:
        return source
    out = lw.op("Reshape", [source, lw.constant(np.array(target, dtype=np.int64), "shape")])
    lw.reshaped[out] = (source, shape)
    return out


#: the ATen ops that broadcast their two tensor operands (what an expand may feed)
_BROADCASTING = frozenset(f"aten.{op}{i}.Tensor" for op in ("add", "mul") for i in ("", "_"))


def _expand(lw: _Lowering, x: Any, *args: Any) -> str:
    """expand / expand_as whose result is only added or multiplied with broadcasting, to a shape that the
    broadcast gives anyway (`x * s.expand_as(x)`): no op, the product broadcasts `s` itself."""
    import torch

    shape = tuple(x.meta["val"].shape)
    for user in lw.current.users:
        others = [a for a in user.args if a is not lw.current and hasattr(a, "meta")]
        same = str(user.target) in _BROADCASTING and len(others) == 1
        if not same or torch.broadcast_shapes(shape, tuple(others[0].meta["val"].shape)) != user.meta["val"].shape:
            raise lw.error(
                f"expand is supported only where an add or a multiplication reads it and would broadcast the "
                f"unexpanded tensor to the same shape (x * s.expand_as(x)), but {user.target} ({user.name!r}) "
                "reads it: drop the expand and let the product broadcast, or register a layer type that "
                "imports the pattern (docs/plugin_hooks.md, ONNX import)"
            )
    return lw.tensor(x)


def _linear(lw: _Lowering, x: Any, weight: Any, bias: Any = None) -> str:
    inputs = [lw.tensor(x), lw.tensor(weight)] + ([lw.tensor(bias)] if bias is not None else [])
    return lw.op("Gemm", inputs, transB=1)


def _cat(lw: _Lowering, tensors: Any, dim: Any = 0) -> str:
    return lw.op("Concat", [lw.tensor(t) for t in tensors], axis=int(dim))


def _dropout(lw: _Lowering, x: Any, p: Any, train: Any = False) -> str:
    return lw.op("Dropout", [lw.tensor(x), lw.constant(np.array(p, np.float32), "ratio")])


def _alias(lw: _Lowering, x: Any, *rest: Any, **kwargs: Any) -> str:
    return lw.tensor(x)


def _channel_dropout(lw: _Lowering, x: Any, p: Any, train: Any = False) -> str:
    """nn.Dropout2d / AlphaDropout / FeatureAlphaDropout: no layer, as torch.onnx.export writes them (they do
    nothing at inference); the toolkit's dropout layer drops elements, not channels, so it is not put in their
    place (the dropout move adds one where a search finds it worth it). A TorchImportWarning says so."""
    op = str(lw.current.target).split(".")[1]
    module = next((m for m, ops in WRITTEN_AS.items() if op in ops), op)
    lw.dropped.append(f"{module}(p={float(p):g}) ({lw.current.name!r})")
    return lw.tensor(x)


#: ATen op (str of its OpOverload) -> its lowering to ONNX
LOWERINGS: dict[str, Callable[..., Any]] = {
    "aten.conv2d.default": _conv2d,
    "aten.conv2d.padding": _conv2d,
    "aten.convolution.default": _convolution,
    "aten.batch_norm.default": _batch_norm,
    "aten._native_batch_norm_legit_no_training.default": _batch_norm_no_training,
    **{
        f"aten.{op}{inplace}.default": _unary(onnx)
        for op, onnx in (("relu", "Relu"), ("sigmoid", "Sigmoid"), ("hardswish", "HardSwish"))
        for inplace in ("", "_")
    },
    **{f"aten.hardsigmoid{i}.default": _unary("HardSigmoid", alpha=1 / 6, beta=0.5) for i in ("", "_")},
    **{f"aten.silu{i}.default": _silu for i in ("", "_")},
    **{f"aten.hardtanh{i}.default": _clip for i in ("", "_")},
    **{f"aten.relu6{i}.default": lambda lw, x: _clip(lw, x, 0.0, 6.0) for i in ("", "_")},
    # the activations of na_toolkit.builtin.layers_activations
    **{f"aten.{op}{i}.default": lower for op, lower in (("leaky_relu", _leaky_relu), ("elu", _elu)) for i in ("", "_")},
    **{f"aten.tanh{i}.default": _unary("Tanh") for i in ("", "_")},
    "aten.softplus.default": _softplus,
    **{f"aten.mish{i}.default": _mish for i in ("", "_")},
    # no built-in layer type imports PRelu (learned slopes): lowered so that the import says what to do, and
    # so that a plugin's layer type importing the ONNX op imports it from torch too
    "aten.prelu.default": _prelu,
    "aten.gelu.default": _gelu,
    **{
        f"aten.{op}{i}.Tensor": _binary(onnx)
        for op, onnx in (("add", "Add"), ("mul", "Mul"), ("div", "Div"))
        for i in ("", "_")
    },
    **{f"aten.clamp{i}.default": _clamp for i in ("", "_")},
    "aten.mean.dim": _mean,
    "aten.adaptive_avg_pool2d.default": _adaptive_avg_pool2d,
    "aten.adaptive_max_pool2d.default": _adaptive_max_pool2d,
    "aten.max_pool2d.default": _max_pool2d,
    "aten.max_pool2d_with_indices.default": _max_pool2d_with_indices,
    "aten.avg_pool2d.default": _avg_pool2d,
    "aten.flatten.using_ints": _flatten,
    **{f"aten.{op}.default": _reshape for op in ("view", "reshape", "_unsafe_view", "squeeze", "unsqueeze")},
    **{f"aten.squeeze.{overload}": _reshape for overload in ("dim", "dims")},
    **{f"aten.{op}.default": _expand for op in ("expand", "expand_as")},
    "aten.linear.default": _linear,
    "aten.cat.default": _cat,
    "aten.dropout.default": _dropout,
    **{f"aten.{op}.default": _channel_dropout for op in ("feature_dropout", "alpha_dropout", "feature_alpha_dropout")},
    **{f"aten.{op}.default": _alias for op in ("clone", "contiguous", "alias", "detach", "lift_fresh_copy")},
}


#: what a module's code writes for the ATen ops of `LOWERINGS` (their names without the overload): the torch
#: modules (each also as its `F.` / `torch.` function) and the tensor functions and operators
WRITTEN_AS: dict[str, tuple[str, ...]] = {
    "nn.Conv2d": ("conv2d", "convolution"),
    "nn.BatchNorm2d": ("batch_norm", "_native_batch_norm_legit_no_training"),
    "nn.Linear": ("linear",),
    **{
        f"nn.{module}": (module.lower(),)
        for module in ("ReLU", "ReLU6", "Sigmoid", "Hardsigmoid", "Hardswish", "SiLU", "GELU", "Hardtanh")
    },
    **{f"nn.{module}": (module.lower(),) for module in ("Tanh", "ELU", "Softplus", "Mish", "PReLU")},
    "nn.LeakyReLU": ("leaky_relu",),
    "nn.MaxPool2d": ("max_pool2d", "max_pool2d_with_indices"),
    "nn.AvgPool2d": ("avg_pool2d",),
    "nn.AdaptiveAvgPool2d": ("adaptive_avg_pool2d",),
    "nn.AdaptiveMaxPool2d": ("adaptive_max_pool2d",),
    "nn.Dropout": ("dropout",),
    "nn.Dropout2d": ("feature_dropout",),
    "nn.AlphaDropout": ("alpha_dropout",),
    "nn.FeatureAlphaDropout": ("feature_alpha_dropout",),
    "nn.Flatten": ("flatten",),
    "+": ("add",),
    "*": ("mul",),
    "/": ("div",),
    "clamp": ("clamp",),
    "mean": ("mean",),
    "torch.cat": ("cat",),
    "view": ("view", "_unsafe_view"),
    **{op: (op,) for op in ("reshape", "squeeze", "unsqueeze", "clone", "contiguous", "detach")},
    "expand(_as) read by + or *": ("expand", "expand_as"),
}

#: ATen ops torch.export writes itself, for no call of a module's code: not listed to users
NOT_WRITTEN = frozenset({"alias", "lift_fresh_copy"})


#: lowered (so a plugin's layer type may import them) but imported by no built-in layer type: not listed
NOT_BUILTIN = frozenset({"nn.PReLU"})


def supported_ops() -> str:
    """The ops `from_torch` imports, as a module's code writes them (one line, for an error message)."""
    modules = [name for name in WRITTEN_AS if name.startswith("nn.") and name not in NOT_BUILTIN]
    rest = [name for name in WRITTEN_AS if not name.startswith("nn.")]
    return f"{', '.join(modules)} (or their F. / torch. functions), {', '.join(rest)}"

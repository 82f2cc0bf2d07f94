"""Shape arithmetic in an ONNX graph, folded at import: what `torch.onnx.export` writes for
`x.view(x.size(0), -1)` without constant folding (the export that keeps batch norm:
`training=TrainingMode.PRESERVE, do_constant_folding=False`) is Shape -> Gather -> Unsqueeze -> Concat
-> Reshape. The tensors' shapes are known at import except the batch dimension, which is folded as 0:
in a `Reshape` target, 0 at the batch position means "as the input", which is what `x.size(0)` gives.
Only ops that pick and assemble shape values are folded (no arithmetic, where a 0 would not mean the
batch); an op of these types on a computed tensor is left to the layer types (and fails as unsupported)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .onnx_import import OnnxImportContext

#: the ONNX ops folded when their inputs are shapes and constants
SHAPE_OPS = frozenset({"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast"})


def fold_shape_op(ctx: OnnxImportContext, node: Any) -> bool:
    """Compute `node` (one of SHAPE_OPS) into `ctx.constants` when it works on shapes and constants only;
    False (nothing done) otherwise."""
    if node.op_type == "Shape":
        if node.input[0] not in ctx.tensors:
            return False
        shape = np.array((0, *ctx.shape(node.input[0])), dtype=np.int64)
        start, end = ctx.attr(node, "start", 0), ctx.attr(node, "end", None)
        ctx.constants[node.output[0]] = shape[start:end]
        return True
    values = [ctx.constant(t) if t else None for t in node.input]
    if any(v is None for t, v in zip(node.input, values, strict=True) if t) or values[0] is None:
        return False
    ctx.constants[node.output[0]] = _FOLD[node.op_type](ctx, node, values)
    return True


def _axes(ctx: OnnxImportContext, node: Any, values: list[Any]) -> list[int] | None:
    if len(values) > 1 and values[1] is not None:
        return [int(a) for a in values[1].reshape(-1)]
    axes = ctx.attr(node, "axes")
    return None if axes is None else [int(a) for a in axes]


def _unsqueeze(ctx: OnnxImportContext, node: Any, values: list[Any]) -> np.ndarray:
    axes = _axes(ctx, node, values) or []
    rank = values[0].ndim + len(axes)
    return np.expand_dims(values[0], tuple(sorted(a % rank for a in axes)))


def _squeeze(ctx: OnnxImportContext, node: Any, values: list[Any]) -> np.ndarray:
    axes = _axes(ctx, node, values)
    return np.squeeze(values[0], axis=None if axes is None else tuple(axes))


def _slice(ctx: OnnxImportContext, node: Any, values: list[Any]) -> np.ndarray:
    data, starts, ends = values[0], values[1], values[2]
    axes = values[3] if len(values) > 3 and values[3] is not None else np.arange(len(starts))
    steps = values[4] if len(values) > 4 and values[4] is not None else np.ones(len(starts), dtype=np.int64)
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        index[int(a)] = slice(int(s), int(e), int(st))
    return data[tuple(index)]


def _cast(ctx: OnnxImportContext, node: Any, values: list[Any]) -> np.ndarray:
    from onnx import helper

    return values[0].astype(helper.tensor_dtype_to_np_dtype(int(ctx.attr(node, "to"))))


_FOLD = {
    "Gather": lambda ctx, node, v: np.take(v[0], v[1], axis=int(ctx.attr(node, "axis", 0))),
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": lambda ctx, node, v: np.concatenate([np.atleast_1d(a) for a in v], axis=int(ctx.attr(node, "axis", 0))),
    "Slice": _slice,
    "Cast": _cast,
}

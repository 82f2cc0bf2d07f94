"""Emit ONNX directly from the IR with `onnx.helper` (no tracing), with the weights of a torch build of the
same architecture or fresh random ones. The result passes `onnx.checker` and equals the torch build."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .architecture import INPUT

if TYPE_CHECKING:  # pragma: no cover
    from .architecture import Architecture

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"
#: the prefix of the metadata keys an export writes (`add_metadata`)
METADATA_PREFIX = "na_toolkit."


class OnnxEmitContext:
    """What a layer type's `emit_onnx` writes into: nodes, initializers, fresh tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = {INPUT_NAME}

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def initializer(self, base: str, array: np.ndarray) -> str:
        name = self.fresh(base)
        arr = np.asarray(array)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op_type: str, inputs: list[str], base: str, **attrs: Any) -> str:
        out = self.fresh(base)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def to_onnx(arch: Architecture, model: Any = None, seed: int = 0, batch_size: int | None = 1) -> onnx.ModelProto:
    """ONNX model of `arch`. `model` (a torch build from `to_torch`) supplies the weights; without it the
    layer types draw random weights from `seed`. `batch_size=None` makes the batch dimension symbolic."""
    from .layers import torch_weights

    rng = np.random.default_rng(seed)
    ctx = OnnxEmitContext()
    names = {INPUT: INPUT_NAME}
    for node in arch.nodes:
        lt = arch.layer_type(node.id)
        attrs = arch.attrs(node.id)
        in_shapes = arch.in_shapes(node.id)
        out_shape = arch.shape(node.id)
        if model is not None:
            weights = torch_weights(model.layers[model.key(node.id)])
        else:
            weights = lt.init_weights(attrs, in_shapes, out_shape, rng)
        names[node.id] = lt.emit_onnx(
            ctx, node.id, attrs, [names[s] for s in node.inputs], in_shapes, out_shape, weights
        )
    final = names[arch.output]
    ctx.nodes.append(helper.make_node("Identity", [final], [OUTPUT_NAME], name="output_identity"))
    batch: Any = batch_size if batch_size is not None else "batch"
    graph = helper.make_graph(
        ctx.nodes,
        arch.name or "na_toolkit",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [batch, *arch.input_shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [batch, *arch.output_shape])],
        initializer=ctx.initializers,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="na_toolkit")
    m.ir_version = 8  # readable by every onnxruntime >= 1.14
    return m


def add_metadata(proto: onnx.ModelProto, entries: Mapping[str, Any]) -> None:
    """Record `entries` in the model's `metadata_props` as `na_toolkit.<key>` = the value as JSON (what a
    deployer reads with `InferenceSession.get_modelmeta().custom_metadata_map`, no na_toolkit needed), and
    the toolkit's version as the model's `producer_version`."""
    from .. import __version__

    proto.producer_version = __version__
    for key, value in entries.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"{METADATA_PREFIX}{key}", json.dumps(value)

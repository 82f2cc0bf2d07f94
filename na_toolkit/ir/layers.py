"""The layer-type protocol: what a plugin implements to add a layer to the IR.

A `LayerType` is stateless; every method receives the node's (normalised) attributes and input shapes.
Shapes exclude the batch dimension: (C, H, W) for feature maps, (F,) for vectors. Every float is fp32, so
bytes are 4 × elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import ArchitectureError, ShapeError
from ..registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .onnx_export import OnnxEmitContext
    from .onnx_import import OnnxImportContext

Shape = tuple[int, ...]
BYTES_PER_ELEMENT = 4  # fp32
REQUIRED = object()


@dataclass(frozen=True)
class AttrSpec:
    """One attribute of a layer type: its Python type, default (REQUIRED if none), bounds or choices."""

    type: type
    default: Any = REQUIRED
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    def check(self, name: str, value: Any) -> Any:
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        expected: Any = self.type  # a runtime type: `value` stays `Any` after the check below
        if not isinstance(value, expected) or (self.type is int and isinstance(value, bool)):
            raise ArchitectureError(f"attribute {name!r} must be {self.type.__name__}, got {value!r}")
        if self.type is float and not math.isfinite(value):  # NaN passes every bound check below
            raise ArchitectureError(f"attribute {name!r} must be a finite number, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ArchitectureError(f"attribute {name!r} must be one of {list(self.choices)}, got {value!r}")
        if self.min is not None and value < self.min:
            raise ArchitectureError(f"attribute {name!r} must be >= {self.min}, got {value!r}")
        if self.max is not None and value > self.max:
            raise ArchitectureError(f"attribute {name!r} must be <= {self.max}, got {value!r}")
        return value


@dataclass(frozen=True)
class LayerCost:
    """Cost of one layer for one sample (batch 1). `flops` counts a multiply-add as 2."""

    params: int = 0
    macs: int = 0
    flops: int = 0
    weight_bytes: int = 0
    input_bytes: int = 0
    output_bytes: int = 0

    @property
    def activation_bytes(self) -> int:
        """Bytes of activations read and written: what a memory-bound kernel moves (with weight_bytes)."""
        return self.input_bytes + self.output_bytes

    @property
    def memory_bytes(self) -> int:
        return self.weight_bytes + self.input_bytes + self.output_bytes

    def __add__(self, other: LayerCost) -> LayerCost:
        return LayerCost(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, ...]:
        return (self.params, self.macs, self.flops, self.weight_bytes, self.input_bytes, self.output_bytes)


def numel(shape: Shape) -> int:
    return math.prod(shape)


class LayerType:
    """Base class of a layer type. Subclasses set `name`, `attrs`, input arity, and override methods."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    attrs: ClassVar[dict[str, AttrSpec]] = {}
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1
    #: ONNX op types this layer type imports (`import_onnx` is asked for each node of these types).
    onnx_ops: ClassVar[tuple[str, ...]] = ()
    #: True when the layer has trainable weights (a move may scale it; `remove` may drop it if shapes allow).
    has_weights: ClassVar[bool] = False

    # ---- schema -------------------------------------------------------------------------------------
    def normalize_attrs(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise ArchitectureError(
                f"layer type {self.name!r} has no attribute(s) {sorted(unknown)}; known: {sorted(self.attrs)}"
            )
        out: dict[str, Any] = {}
        for key, spec in self.attrs.items():
            if key in attrs:
                out[key] = spec.check(key, attrs[key])
            elif spec.default is REQUIRED:
                raise ArchitectureError(f"layer type {self.name!r} needs attribute {key!r}")
            else:
                out[key] = spec.default
        return out

    # ---- shape and cost -----------------------------------------------------------------------------
    def infer_shape(self, attrs: dict[str, Any], in_shapes: list[Shape]) -> Shape:
        """Output shape from the input shapes; raise ShapeError saying why when they do not fit."""
        return in_shapes[0]

    def cost(self, attrs: dict[str, Any], in_shapes: list[Shape], out_shape: Shape) -> LayerCost:
        """Parameters, MACs/FLOPs and bytes for one sample. Default: an elementwise op, 1 FLOP/element."""
        n_out = numel(out_shape)
        return LayerCost(
            flops=n_out,
            input_bytes=sum(numel(s) for s in in_shapes) * BYTES_PER_ELEMENT,
            output_bytes=n_out * BYTES_PER_ELEMENT,
        )

    # ---- builders -----------------------------------------------------------------------------------
    def build_torch(self, attrs: dict[str, Any], in_shapes: list[Shape], out_shape: Shape) -> torch.nn.Module:
        """A torch module whose forward takes the node's inputs as positional tensors (batch first)."""
        raise NotImplementedError(f"layer type {self.name!r} has no torch builder")

    def init_weights(
        self, attrs: dict[str, Any], in_shapes: list[Shape], out_shape: Shape, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Random weights named like the torch module's state_dict (used when emitting ONNX without torch)."""
        return {}

    def emit_onnx(
        self,
        ctx: OnnxEmitContext,
        node_id: str,
        attrs: dict[str, Any],
        inputs: list[str],
        in_shapes: list[Shape],
        out_shape: Shape,
        weights: dict[str, np.ndarray],
    ) -> str:
        """Add ONNX nodes and initializers to `ctx` computing this layer; return the output tensor name."""
        raise NotImplementedError(f"layer type {self.name!r} has no ONNX emitter")

    def import_onnx(self, ctx: OnnxImportContext, onnx_node: Any) -> bool:
        """Turn one ONNX node whose op type is in `onnx_ops` into IR nodes; return False to decline.

        The inverse of `emit_onnx`: `from_onnx` asks every layer type that declares the node's op type,
        the last registered first, until one returns True (none: the import fails naming the op and the
        node). Read the graph and write IR through `ctx` (`na_toolkit.ir.onnx_import.OnnxImportContext`):
        `ctx.value(tensor)` is the IR id computing an input, `ctx.constant(tensor)` an initializer's array,
        `ctx.add(self.name, inputs, attrs, weights, output=onnx_node.output[0])` adds the node (weights
        named as the torch module's state_dict). A layer emitted as several ONNX nodes starts at the first
        and follows `ctx.sole_consumer(...)`, then `ctx.absorb`s the rest. Raise `ctx.error(why)` for a
        form that is this layer's but cannot be represented. Default: imports nothing."""
        return False

    # ---- embedding ----------------------------------------------------------------------------------
    def features(self, attrs: dict[str, Any], in_shapes: list[Shape], out_shape: Shape) -> dict[str, int]:
        """Discrete features of this layer for the LSTM embedding (each a small non-negative int); the
        embedding adds the layer type, the output channels and spatial size itself."""
        return {}

    def __repr__(self) -> str:
        return f"<LayerType {self.name}>"


def torch_weights(module: Any) -> dict[str, np.ndarray]:
    """A torch module's float tensors (parameters and buffers) as numpy arrays, keyed like its state_dict."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items() if v.dtype.is_floating_point}


def check_feature_map(layer: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"{layer} needs a (C, H, W) feature map, got shape {shape}")
    return shape


class LayerTypeRegistry(Registry[LayerType]):
    """The layer types an architecture is built from (`Architecture(..., layer_types=...)`): filled by the
    `na_register_layer_types` hook, or by `na_toolkit.builtin.layers.builtin_layer_types()`."""

    kind = "layer type"
    item_type = LayerType

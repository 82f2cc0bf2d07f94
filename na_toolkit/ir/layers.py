"""The layer-type protocol: what a plugin implements to add a layer to the IR.

A `LayerType` is stateless; every method receives the node's (normalised) attributes and input shapes.
Shapes exclude the batch dimension: (C, H, W) for feature maps, (F,) for vectors. Every float is fp32, so
bytes are 4 × elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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


# ---- embedded attributes: what the network embedding reads of a layer ------------------------------------
#: JSON scalars: what a categorical vocabulary may hold (it is saved with a fitted predictor)
_SCALARS = (str, int, float, bool, type(None))
#: the legacy default (a layer type that declares nothing but overrides `features()`): its features in
#: sorted key order fill this many slots of exact tokens 0..LEGACY_FEATURE_MAX
LEGACY_FEATURE_SLOTS, LEGACY_FEATURE_MAX = 4, 255
#: the schema-derived default of an int attribute: exact tokens over at most this many values from its min
DEFAULT_INT_SPAN = 1024
#: the schema-derived default of a bounded float attribute: this many grid steps between min and max
DEFAULT_FLOAT_STEPS = 100


def _value_key(value: Any) -> tuple[str, Any]:
    """Dictionary key of a categorical value: True and 1 (and 1.0) are different values here."""
    return (type(value).__name__, value)


@dataclass(frozen=True)
class EmbeddedCategorical:
    """An embedded attribute with a fixed set of values, one token each (in this order); any other value is
    out of vocabulary. Values are JSON scalars (str, int, float, bool, None): the vocabulary is saved."""

    name: str
    values: tuple[Any, ...]
    doc: str = ""
    _lookup: dict[tuple[str, Any], int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        bad = [v for v in self.values if not isinstance(v, _SCALARS)]
        lookup = {_value_key(v): i for i, v in enumerate(self.values)}
        if bad or len(lookup) != len(self.values):
            raise ArchitectureError(
                f"embedded attribute {self.name!r}: values must be distinct JSON scalars, got {list(self.values)}"
            )
        object.__setattr__(self, "_lookup", lookup)

    @property
    def size(self) -> int:
        """Tokens in the vocabulary (out of vocabulary not counted)."""
        return len(self.values)

    def index(self, value: Any) -> int | None:
        """0-based token of `value`, or None when it is out of vocabulary."""
        return self._lookup.get(_value_key(value))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "categorical", "name": self.name, "values": list(self.values)}


@dataclass(frozen=True)
class EmbeddedInt:
    """An embedded integer attribute: one token per integer `min`..`max` (exact, no buckets); a value
    outside the range (or not an integer) is out of vocabulary."""

    name: str
    min: int
    max: int
    doc: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.min, int) and isinstance(self.max, int)) or self.max < self.min:
            raise ArchitectureError(
                f"embedded attribute {self.name!r}: needs int min <= max, got {self.min}, {self.max}"
            )

    @property
    def size(self) -> int:
        return self.max - self.min + 1

    def index(self, value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            if not (isinstance(value, float) and value.is_integer()):
                return None
        v = int(value)
        return v - self.min if self.min <= v <= self.max else None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "int", "name": self.name, "min": self.min, "max": self.max}


@dataclass(frozen=True)
class EmbeddedFloat:
    """An embedded real attribute: one token per point of the grid `min`, `min + step`, ..., `max` (a value
    takes the nearest point); a value more than half a step outside [min, max] is out of vocabulary.
    Choose `step` so that every value a move can set lands on a point of its own."""

    name: str
    min: float
    max: float
    step: float
    doc: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min) and math.isfinite(self.max) and self.step > 0 and self.max >= self.min):
            raise ArchitectureError(
                f"embedded attribute {self.name!r}: needs finite min <= max and step > 0, "
                f"got {self.min}, {self.max}, {self.step}"
            )

    @property
    def size(self) -> int:
        return int(round((self.max - self.min) / self.step)) + 1

    def index(self, value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return None
        i = int(round((float(value) - self.min) / self.step))
        return i if 0 <= i < self.size else None

    def to_json(self) -> dict[str, Any]:
        return {"kind": "float", "name": self.name, "min": self.min, "max": self.max, "step": self.step}


EmbeddedAttr = EmbeddedCategorical | EmbeddedInt | EmbeddedFloat


def embedded_attr_from_json(doc: Any) -> EmbeddedAttr:
    """The inverse of `to_json` of an embedded attribute (a saved vocabulary)."""
    try:
        kind = doc["kind"]
        if kind == "categorical":
            return EmbeddedCategorical(str(doc["name"]), tuple(doc["values"]))
        if kind == "int":
            return EmbeddedInt(str(doc["name"]), int(doc["min"]), int(doc["max"]))
        if kind == "float":
            return EmbeddedFloat(str(doc["name"]), float(doc["min"]), float(doc["max"]), float(doc["step"]))
    except (KeyError, TypeError, ValueError):
        pass
    raise ArchitectureError(f"not an embedded attribute's vocabulary: {doc!r}; expected one written by to_json()")


def schema_embedded_attrs(attrs: dict[str, AttrSpec]) -> tuple[EmbeddedAttr, ...]:
    """The default vocabulary of a layer type's attribute schema: choices and bools are categorical, ints
    exact from their min over at most DEFAULT_INT_SPAN values, bounded floats on a grid of
    DEFAULT_FLOAT_STEPS steps; unbounded floats and free strings are not embedded."""
    out: list[EmbeddedAttr] = []
    for key, spec in attrs.items():
        if spec.choices is not None:
            out.append(EmbeddedCategorical(key, tuple(spec.choices)))
        elif spec.type is bool:
            out.append(EmbeddedCategorical(key, (False, True)))
        elif spec.type is int:
            lo = math.ceil(spec.min) if spec.min is not None else 0
            hi = lo + DEFAULT_INT_SPAN - 1
            if spec.max is not None:
                hi = min(hi, math.floor(spec.max))
            out.append(EmbeddedInt(key, lo, hi))
        elif spec.type is float and spec.min is not None and spec.max is not None and spec.max > spec.min:
            out.append(EmbeddedFloat(key, spec.min, spec.max, (spec.max - spec.min) / DEFAULT_FLOAT_STEPS))
    return tuple(out)


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
    #: the attributes the network embedding reads, with their vocabularies (see `embedded_attrs`); None:
    #: not declared, the default applies
    embedded: ClassVar[tuple[EmbeddedAttr, ...] | None] = None

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
    def embedded_attrs(self) -> tuple[EmbeddedAttr, ...]:
        """The attributes the network embedding reads of a layer of this type, each with its vocabulary
        (`EmbeddedCategorical`, `EmbeddedInt`, `EmbeddedFloat`): one lookup table per attribute, rows of
        this layer type's own. The embedding adds the generic ones itself (layer type, output channels,
        height, width, number of inputs, distance to each input): declare only what is this type's own.
        Every value a move can set must map to a token of its own (exact ints, a fine enough float grid).
        Declare them in the class attribute `embedded` (`()`: none), or override this method.

        Default, for layer types that declare nothing: the attribute schema (`schema_embedded_attrs`), and
        for a layer type overriding `features()`, LEGACY_FEATURE_SLOTS slots `feature0`.. of exact tokens
        0..LEGACY_FEATURE_MAX holding its features in sorted key order."""
        if self.embedded is not None:
            return self.embedded
        legacy = type(self).features is not LayerType.features
        slots = tuple(EmbeddedInt(f"feature{i}", 0, LEGACY_FEATURE_MAX) for i in range(LEGACY_FEATURE_SLOTS))
        return schema_embedded_attrs(self.attrs) + (slots if legacy else ())

    def embedded_values(self, attrs: dict[str, Any], in_shapes: list[Shape], out_shape: Shape) -> dict[str, Any]:
        """The value of each attribute of `embedded_attrs()` for one layer (a missing or foreign value is
        out of vocabulary). Default: the normalised attribute of that name, and the legacy feature slots.
        Override it for derived attributes (e.g. conv2d's `grouping`: dense, depthwise or grouped)."""
        values: dict[str, Any] = dict(attrs)
        if type(self).features is not LayerType.features:
            for i, (_key, value) in enumerate(sorted(self.features(attrs, in_shapes, out_shape).items())):
                if i < LEGACY_FEATURE_SLOTS:
                    values[f"feature{i}"] = value
        return values

    def features(self, attrs: dict[str, Any], in_shapes: list[Shape], out_shape: Shape) -> dict[str, int]:
        """Discrete features of this layer (each a small non-negative int), read by the IR feature vector of
        the scikit-learn predictors (`na_toolkit.predictors.features`). The network embedding reads
        `embedded_attrs()` / `embedded_values()` instead (and these only for a type that declares none)."""
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


def require_layer_types(layer_types: Any) -> LayerTypeRegistry:
    """`layer_types` when it is a LayerTypeRegistry; else a TypeError saying what to pass (giving the
    Toolkit itself, whose `layer_types` it is, is the usual slip)."""
    if isinstance(layer_types, LayerTypeRegistry):
        return layer_types
    got = "the Toolkit itself" if hasattr(layer_types, "layer_types") else f"a {type(layer_types).__name__}"
    raise TypeError(
        f"layer_types must be the layer type registry, got {got}: pass toolkit.layer_types "
        "(or na_toolkit.builtin.layers.builtin_layer_types() for the built-in ones alone)"
    )

"""`check_layer_type`: the layer-type contract (docs/plugin_hooks.md, `na_register_layer_types`) as one call.

For each example (attributes, input shapes) of the layer type: its schema fills defaults and refuses unknown
or mistyped attributes; shape inference gives positive ints; the cost is non-negative, FLOPs >= MACs, weight
bytes hold the fp32 parameters and the parameter count equals the torch module's; the torch module runs to
the inferred shape; `init_weights` draws the torch module's names and shapes; features are small ints; the
ONNX it emits passes `onnx.checker` and equals torch in a real ONNX Runtime session; the emitted ONNX
imports back (when the type declares `onnx_ops`) to the same network, the same hash, unless a documented
difference is given; the JSON of the network reads back to the same hash; a bigger input never costs less.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ArchitectureError, NAToolkitError, ShapeError
from ..ir.architecture import Architecture, Attrs, Node
from ..ir.layers import REQUIRED, LayerCost, LayerType, LayerTypeRegistry, Shape, torch_weights
from ._common import expect, fail, resolve, toolkit_or_default

if TYPE_CHECKING:  # pragma: no cover
    from ..toolkit import Toolkit

#: the default example input: a small feature map (C, H, W), else a vector (F,)
FEATURE_MAP: Shape = (4, 7, 7)
VECTOR: Shape = (12,)
#: the default bound on |ONNX Runtime - torch| (fp32, one layer)
ONNX_ATOL = 1e-4

#: an example: the node's attributes (defaults filled by the schema) and its input shapes (batch excluded)
Example = tuple[Mapping[str, Any], Sequence[Shape]]


@dataclass(frozen=True)
class LayerExampleResult:
    """What `check_layer_type` found for one example (every check passed)."""

    attrs: dict[str, Any]
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    cost: LayerCost
    #: largest |ONNX Runtime - torch| on random input, with randomised constant tensors
    onnx_max_abs_err: float
    #: the type the emitted ONNX imports back as (None: the type declares no `onnx_ops`)
    imported_as: str | None
    #: True when the imported network has the same hash (None: not imported, or a documented difference)
    same_hash_after_import: bool | None


def default_examples(layer_type: LayerType) -> list[Example]:
    """One example from the schema: defaults, a small value for each required attribute (its first choice,
    else 4 within its bounds), `min_inputs` feature maps of `FEATURE_MAP` (vectors of `VECTOR` where the
    type refuses a feature map)."""
    attrs: dict[str, Any] = {}
    for key, spec in layer_type.attrs.items():
        if spec.default is not REQUIRED:
            continue
        if spec.choices:
            attrs[key] = spec.choices[0]
            continue
        value: Any = {int: 4, float: 0.5, bool: True, str: ""}.get(spec.type, 4)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if spec.min is not None and value < spec.min:
                value = spec.type(spec.min)
            if spec.max is not None and value > spec.max:
                value = spec.type(spec.max)
        attrs[key] = value
    norm = layer_type.normalize_attrs(dict(attrs))
    for shape in (FEATURE_MAP, VECTOR):
        try:
            layer_type.infer_shape(norm, [shape] * layer_type.min_inputs)
        except ShapeError:
            continue
        return [(attrs, [shape] * layer_type.min_inputs)]
    return [(attrs, [FEATURE_MAP] * layer_type.min_inputs)]  # the check reports the ShapeError


def check_layer_type(
    layer_type: LayerType | str,
    toolkit: Toolkit | None = None,
    examples: Sequence[Example] | None = None,
    *,
    imports_as: str | None = None,
    attrs_not_in_onnx: Collection[str] = (),
    atol: float = ONNX_ATOL,
    seed: int = 0,
) -> list[LayerExampleResult]:
    """Check a layer type against its contract; raise AssertionError (`ConformanceError`) naming the
    layer type, the example and what broke.

    layer_type: the instance, or its name in `toolkit.layer_types`. toolkit: the toolkit holding the layer
    types networks are built from (default: the built-ins and the installed plugins); an instance that is
    not registered there is checked beside them. examples: `(attrs, in_shapes)` pairs (default
    `default_examples`); the inputs of one example share one shape (the single-layer network feeds them all
    from its input). Documented differences of the ONNX round trip: `imports_as` (the emitted ONNX comes back
    as another layer type, e.g. an inference-time identity) and `attrs_not_in_onnx` (training-only
    attributes an inference graph does not carry: an example setting one imports with another hash).
    Returns what each example gave."""
    tk = toolkit_or_default(toolkit)
    name, lt = resolve(tk.layer_types, layer_type, "layer type")
    label = f"layer type {name!r}"
    expect(isinstance(lt, LayerType), label, f"is a {type(lt).__name__}, not a na_toolkit.ir.layers.LayerType")
    registry = _registry_with(tk.layer_types, lt, label)
    _check_schema(lt, label)
    try:
        cases = list(examples) if examples is not None else default_examples(lt)
    except NAToolkitError as exc:
        fail(label, f"no default example from its schema ({exc}); pass examples=[(attrs, in_shapes)]")
    expect(cases, label, "no examples given")
    results = []
    for i, (attrs, in_shapes) in enumerate(cases):
        where = f"{label} example {i} (attrs={dict(attrs)}, in_shapes={[tuple(s) for s in in_shapes]})"
        results.append(
            _check_example(
                lt,
                registry,
                dict(attrs),
                [tuple(s) for s in in_shapes],
                where,
                imports_as,
                attrs_not_in_onnx,
                atol,
                seed + i,
            )
        )
    _check_cost_grows(lt, dict(cases[0][0]), [tuple(s) for s in cases[0][1]], label)
    return results


def _registry_with(layer_types: LayerTypeRegistry, lt: LayerType, label: str) -> LayerTypeRegistry:
    """`layer_types` if it holds this very instance, else a copy with it in (a layer type checked before its
    plugin registers it, or an instance of the class the toolkit's plugin registered: the one given is
    checked)."""
    registered = layer_types.get(lt.name) if lt.name in layer_types else None
    if registered is lt:
        return layer_types
    expect(
        registered is None or type(registered) is type(lt),
        label,
        f"another layer type ({type(registered).__name__}) is registered under this name in the toolkit; check "
        "the registered one by name",
    )
    copy = LayerTypeRegistry()
    for entry in layer_types.entries():
        if entry.name != lt.name:
            copy.current_plugin = entry.plugin
            copy.add(entry.obj, name=entry.name)
    copy.current_plugin = "<checked>"
    copy.add(lt)
    return copy


def _check_schema(lt: LayerType, label: str) -> None:
    expect(isinstance(lt.name, str) and lt.name, label, "has no name")
    expect(isinstance(lt.description, str) and lt.description, label, "has no description")
    expect(isinstance(lt.min_inputs, int) and lt.min_inputs >= 1, label, f"min_inputs={lt.min_inputs!r} (>= 1)")
    expect(
        lt.max_inputs is None or (isinstance(lt.max_inputs, int) and lt.max_inputs >= lt.min_inputs),
        label,
        f"max_inputs={lt.max_inputs!r}: None (any) or >= min_inputs {lt.min_inputs}",
    )
    for key, spec in lt.attrs.items():
        if spec.default is REQUIRED:
            continue
        try:
            ok = spec.check(key, spec.default) == spec.default
        except ArchitectureError as exc:
            fail(label, f"the default of attribute {key!r} fails its own schema: {exc}")
        expect(ok, label, f"the default of attribute {key!r} changes when checked")
    if lt.onnx_ops:
        expect(
            type(lt).import_onnx is not LayerType.import_onnx,
            label,
            f"declares onnx_ops {lt.onnx_ops} but implements no import_onnx",
        )
        expect(all(isinstance(op, str) and op for op in lt.onnx_ops), label, f"onnx_ops {lt.onnx_ops!r}: op type names")


def _check_attrs(lt: LayerType, attrs: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        norm = lt.normalize_attrs(dict(attrs))
    except ArchitectureError as exc:
        fail(where, f"the schema refuses the example's attributes: {exc}")
    expect(
        set(norm) == set(lt.attrs),
        where,
        f"normalize_attrs gave keys {sorted(norm)}, the schema has {sorted(lt.attrs)}",
    )
    for bad, why in (
        ({**attrs, "no_such_attribute": 1}, "an unknown attribute"),
        *(
            ({**attrs, key: 12345 if spec.type is str else "a string"}, f"a mistyped {key!r}")
            for key, spec in lt.attrs.items()
        ),
    ):
        try:
            lt.normalize_attrs(bad)
        except ArchitectureError:
            continue
        fail(where, f"normalize_attrs accepts {why} (it must raise ArchitectureError)")
    return norm


def _check_example(
    lt: LayerType,
    registry: LayerTypeRegistry,
    attrs: dict[str, Any],
    in_shapes: list[Shape],
    where: str,
    imports_as: str | None,
    attrs_not_in_onnx: Collection[str],
    atol: float,
    seed: int,
) -> LayerExampleResult:
    import torch

    norm = _check_attrs(lt, attrs, where)
    expect(
        lt.min_inputs <= len(in_shapes) and (lt.max_inputs is None or len(in_shapes) <= lt.max_inputs),
        where,
        f"{len(in_shapes)} inputs, outside the type's arity {lt.min_inputs}..{lt.max_inputs}",
    )
    try:
        out = tuple(lt.infer_shape(norm, list(in_shapes)))
    except NAToolkitError as exc:
        fail(where, f"infer_shape refuses the example: {exc}")
    expect(out and all(isinstance(d, int) and d > 0 for d in out), where, f"infer_shape gave {out!r} (positive ints)")

    cost = lt.cost(norm, list(in_shapes), out)
    expect(isinstance(cost, LayerCost), where, f"cost() returned {type(cost).__name__}, not a LayerCost")
    expect(all(isinstance(v, int) and v >= 0 for v in cost.astuple()), where, f"cost {cost} (non-negative ints)")
    expect(
        cost.flops >= 2 * cost.macs,
        where,
        f"cost flops {cost.flops} < 2 x macs {cost.macs} (a multiply-add is 2 FLOPs: flops = 2 * macs + the rest)",
    )
    expect(cost.weight_bytes >= 4 * cost.params, where, f"weight_bytes {cost.weight_bytes} < 4 x params {cost.params}")

    try:
        module = lt.build_torch(norm, list(in_shapes), out).eval()
    except Exception as exc:
        fail(where, f"build_torch raised {type(exc).__name__}: {exc}")
    torch_params = sum(p.numel() for p in module.parameters())
    expect(torch_params == cost.params, where, f"cost params {cost.params} != the torch module's {torch_params}")
    xs = [torch.randn(2, *s, generator=torch.Generator().manual_seed(seed)) for s in in_shapes]
    with torch.no_grad():
        y = module(*xs)
    expect(tuple(y.shape) == (2, *out), where, f"the torch module gives shape {tuple(y.shape)}, inferred {(2, *out)}")

    drawn = lt.init_weights(norm, list(in_shapes), out, np.random.default_rng(seed))
    want = {k: tuple(v.shape) for k, v in torch_weights(module).items()}
    got = {k: tuple(np.asarray(v).shape) for k, v in drawn.items()}
    expect(got == want, where, f"init_weights draws {got}, the torch module's state_dict holds {want}")

    features = lt.features(norm, list(in_shapes), out)
    expect(
        isinstance(features, dict) and all(isinstance(v, int) and v >= 0 for v in features.values()),
        where,
        f"features {features!r} (small non-negative ints)",
    )

    expect(
        len(set(in_shapes)) == 1,
        where,
        "the inputs of an example share one shape (the network feeds them all from its input)",
    )
    arch = Architecture(
        in_shapes[0], [Node("layer", lt.name, Attrs(attrs), ("input",) * len(in_shapes))], layer_types=registry
    )
    _check_json(arch, registry, where)
    err, proto, x, ref = _check_onnx_parity(arch, out, where, atol, seed)
    imported_as, same = _check_import(
        arch, lt, registry, attrs, proto, x, ref, where, imports_as, attrs_not_in_onnx, atol
    )
    return LayerExampleResult(dict(norm), tuple(in_shapes), out, cost, err, imported_as, same)


def _check_json(arch: Architecture, registry: LayerTypeRegistry, where: str) -> None:
    back = Architecture.loads(arch.dumps(), registry)
    expect(
        back.hash == arch.hash and back.shapes == arch.shapes, where, "the network's JSON reads back to another network"
    )
    expect(back.attrs("layer") == arch.attrs("layer"), where, "the attributes change through JSON")


def _redraw_constant_tensors(model: Any, seed: int) -> None:
    """Redraw every float tensor whose elements are all equal (a batch norm's ones, zeros and running
    statistics): an emitter that ignores one would otherwise still match torch. Uniform in [0.5, 1.5], so a
    variance stays positive."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.dtype.is_floating_point and t.numel() > 0 and bool((t == t.reshape(-1)[0]).all()):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)


def _check_onnx_parity(
    arch: Architecture, out: Shape, where: str, atol: float, seed: int
) -> tuple[float, Any, np.ndarray, np.ndarray]:
    """(max |ORT - torch|, the emitted ModelProto, the input, torch's output)."""
    import onnx
    import onnxruntime as ort
    import torch

    model = arch.to_torch(seed=seed).eval()
    _redraw_constant_tensors(model, seed)
    try:
        proto = arch.to_onnx(model=model, batch_size=None)
        onnx.checker.check_model(proto)
    except Exception as exc:
        fail(where, f"the emitted ONNX is invalid: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    x = np.random.default_rng(seed).standard_normal((2, *arch.input_shape)).astype(np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    expect(got.shape == ref.shape, where, f"ONNX Runtime gives shape {got.shape}, torch {ref.shape}")
    err = float(np.abs(got - ref).max()) if got.size else 0.0
    expect(err <= atol, where, f"ONNX Runtime differs from torch by {err:.3g} (> {atol:g})")

    random_weights = arch.to_onnx(seed=seed + 3)  # the emitter's own weights (init_weights), batch 1
    onnx.checker.check_model(random_weights)
    sess = ort.InferenceSession(random_weights.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": x[:1]})[0]
    expect(
        y.shape == (1, *out) and np.isfinite(y).all(),
        where,
        f"ONNX with drawn weights gives shape {y.shape} or non-finite values",
    )
    return err, proto, x, ref


def _check_import(
    arch: Architecture,
    lt: LayerType,
    registry: LayerTypeRegistry,
    attrs: dict[str, Any],
    proto: Any,
    x: np.ndarray,
    ref: np.ndarray,
    where: str,
    imports_as: str | None,
    attrs_not_in_onnx: Collection[str],
    atol: float,
) -> tuple[str | None, bool | None]:
    if not lt.onnx_ops:
        return None, None
    import torch

    from ..ir.onnx_import import from_onnx

    try:
        imported, state = from_onnx(proto, registry, return_weights=True)
    except NAToolkitError as exc:
        fail(where, f"the emitted ONNX does not import back: {exc}")
    types = [n.type for n in imported.nodes]
    want = imports_as or lt.name
    expect(types == [want], where, f"the emitted ONNX imports back as {types}, expected [{want!r}]")
    expect(
        imported.output_shape == arch.output_shape,
        where,
        f"imported output shape {imported.output_shape} != {arch.output_shape}",
    )
    same: bool | None = None
    if imports_as is None and not set(attrs_not_in_onnx) & set(attrs):
        same = imported.hash == arch.hash
        expect(
            same,
            where,
            f"the emitted ONNX imports back with attributes {imported.attrs(imported.nodes[0].id)}, "
            f"not {arch.attrs('layer')} (another hash); a documented difference goes in imports_as / attrs_not_in_onnx",
        )
    back = imported.to_torch().eval()
    back.load_state_dict(state)
    with torch.no_grad():
        again = back(torch.from_numpy(x)).numpy()
    err = float(np.abs(again - ref).max()) if again.size else 0.0
    expect(err <= atol, where, f"the imported network differs from the exported one by {err:.3g} (> {atol:g})")
    return want, same


def _check_cost_grows(lt: LayerType, attrs: dict[str, Any], in_shapes: list[Shape], label: str) -> None:
    """Doubling the spatial size (a feature map) or the width (a vector) never costs less, when the type
    takes the doubled input at all."""
    norm = lt.normalize_attrs(attrs)
    bigger = [
        tuple(d * 2 if j > 0 else d for j, d in enumerate(s)) if len(s) == 3 else tuple(d * 2 for d in s)
        for s in in_shapes
    ]
    try:
        out_big = lt.infer_shape(norm, bigger)
    except ShapeError:
        return  # a type tied to its input size (a linear layer's width is its own)
    out = lt.infer_shape(norm, list(in_shapes))
    small, big = lt.cost(norm, list(in_shapes), out), lt.cost(norm, bigger, out_big)
    expect(
        big.flops >= small.flops
        and big.activation_bytes >= small.activation_bytes
        and math.prod(out_big) >= math.prod(out),
        label,
        f"costs less on the doubled input {bigger} than on {in_shapes} ({big} vs {small})",
    )

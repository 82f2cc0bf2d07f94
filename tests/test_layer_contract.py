"""timm-style contract tests, parametrized over every registered layer type: schema defaults, shape
inference, cost, torch build, ONNX emit (equal to torch in ONNX Runtime), ONNX import, features, and the
embedding's declarations (every example's values in vocabulary, distinct examples distinct tokens)."""

from __future__ import annotations

import math

import pytest

from conftest import default_toolkit, layer_types
from na_toolkit.embedding import ArchitectureTokenizer
from na_toolkit.errors import ArchitectureError
from na_toolkit.ir.layers import REQUIRED, EmbeddedCategorical, EmbeddedFloat, EmbeddedInt, LayerType
from na_toolkit.testing import check_layer_type

MAP = (4, 7, 7)
VEC = (12,)
#: (attributes, input shapes) examples for the built-in types; other registered types get a generic one
EXAMPLES: dict[str, list[tuple[dict, list[tuple[int, ...]]]]] = {
    "conv2d": [
        ({"filters": 8}, [MAP]),
        ({"filters": 6, "kernel": 5, "stride": 2, "padding": 1, "bias": True}, [MAP]),
        ({"filters": 4, "kernel": 3, "groups": 4}, [MAP]),  # depthwise
        ({"filters": 8, "kernel": 3, "groups": 2, "dilation": 2}, [MAP]),
    ],
    "batchnorm2d": [({}, [MAP]), ({"eps": 1e-3, "momentum": 0.2}, [MAP])],
    "maxpool2d": [({}, [MAP]), ({"kernel": 3, "stride": 1, "padding": 1}, [MAP])],
    "avgpool2d": [
        ({"kernel": 3, "stride": 2, "padding": 1}, [MAP]),
        ({"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": True}, [MAP]),
    ],
    "global_avg_pool": [({}, [MAP])],
    "flatten": [({}, [MAP])],
    "linear": [({"units": 7}, [VEC]), ({"units": 3, "bias": False}, [VEC])],
    "add": [({}, [MAP, MAP]), ({}, [VEC, VEC, VEC])],
    "concat": [({}, [MAP, MAP]), ({}, [VEC, VEC])],
    "dropout": [({"rate": 0.3}, [MAP])],
}
for _act in ("relu", "relu6", "gelu", "sigmoid", "hardswish", "identity", "zero"):
    EXAMPLES[_act] = [({}, [MAP]), ({}, [VEC])]

TYPES = layer_types().names()
#: layer types whose ONNX comes back as another type (none of the built-ins: dropout is written as an
#: ONNX Dropout with its ratio, so it comes back as itself)
IMPORTS_AS: dict[str, str] = {}
#: training-only attributes an inference graph does not carry (batch norm's momentum)
NOT_IN_ONNX = {"momentum"}


def _examples(name):
    if name in EXAMPLES:
        return EXAMPLES[name]
    # a plugin's type: its defaults, small ints for required attributes, one feature map per input
    lt = layer_types().get(name)
    attrs = {k: (spec.choices[0] if spec.choices else 4) for k, spec in lt.attrs.items() if spec.default is REQUIRED}
    return [(attrs, [MAP] * lt.min_inputs)]


CASES = [(name, i) for name in TYPES for i in range(len(_examples(name)))]


@pytest.mark.parametrize("name", TYPES)
def test_schema_defaults_and_rejections(name):
    lt = layer_types().get(name)
    assert lt.name == name and lt.description
    assert lt.min_inputs >= 1 and (lt.max_inputs is None or lt.max_inputs >= lt.min_inputs)
    for key, spec in lt.attrs.items():
        if spec.default is not REQUIRED:
            assert spec.check(key, spec.default) == spec.default, f"{name}.{key}: default fails its own schema"
    attrs, _shapes = _examples(name)[0]
    norm = lt.normalize_attrs(dict(attrs))
    assert set(norm) == set(lt.attrs)
    with pytest.raises(ArchitectureError, match="no attribute"):
        lt.normalize_attrs({**attrs, "no_such_attribute": 1})
    for key in lt.attrs:
        with pytest.raises(ArchitectureError, match=key):
            lt.normalize_attrs({**attrs, key: "a string"})


@pytest.mark.parametrize("name,i", CASES)
def test_shape_cost_torch_and_onnx_agree(name, i):
    """The plugin kit's layer check (na_toolkit.testing, docs/testing.md) on each example: shape, cost
    against the torch module, init_weights, features, ONNX emit equal to torch in ONNX Runtime (constant
    tensors such as batch norm's statistics redrawn), the import back to an equal network, JSON."""
    attrs, in_shapes = _examples(name)[i]
    (result,) = check_layer_type(
        name,
        default_toolkit(),
        examples=[(attrs, in_shapes)],
        imports_as=IMPORTS_AS.get(name),
        attrs_not_in_onnx=NOT_IN_ONNX,
        seed=i,
    )
    assert result.onnx_max_abs_err <= 1e-4
    if layer_types().get(name).onnx_ops and name not in IMPORTS_AS and not NOT_IN_ONNX & set(attrs):
        assert result.same_hash_after_import  # the same network: the same hash


@pytest.mark.parametrize("name", TYPES)
def test_declared_onnx_ops_have_an_importer(name):
    """A layer type that declares ONNX op types implements the import (from_onnx asks it for those ops)."""
    lt = layer_types().get(name)
    if lt.onnx_ops:
        assert type(lt).import_onnx is not LayerType.import_onnx, f"{name} declares onnx_ops but no import_onnx"
        assert all(isinstance(op, str) and op for op in lt.onnx_ops)


@pytest.mark.parametrize("name", TYPES)
def test_cost_scales_with_the_input(name):
    """Bigger inputs never cost less (a sanity law every layer type keeps)."""
    lt = layer_types().get(name)
    attrs, in_shapes = _examples(name)[0]
    norm = lt.normalize_attrs(dict(attrs))
    bigger = [tuple(d * 2 if j > 0 else d for j, d in enumerate(s)) if len(s) == 3 else (s[0] * 2,) for s in in_shapes]
    try:
        out_big = lt.infer_shape(norm, bigger)
    except ArchitectureError:
        if name in EXAMPLES:  # the built-in examples all take a doubled input: a refusal is a failure
            raise
        pytest.skip(f"the plugin layer type {name} does not take the doubled input {bigger}")
    small = lt.cost(norm, list(in_shapes), lt.infer_shape(norm, list(in_shapes)))
    big = lt.cost(norm, bigger, out_big)
    assert big.flops >= small.flops and big.activation_bytes >= small.activation_bytes
    assert math.prod(out_big) >= math.prod(lt.infer_shape(norm, list(in_shapes)))


@pytest.mark.parametrize("name", TYPES)
def test_embedded_attributes_are_declared_and_in_vocabulary(name):
    """Each layer type declares its embedded attributes (distinct names, each with a vocabulary); on its
    examples every declared value is in vocabulary, and examples that differ in cost or shape differ in
    their tokens (the embedding tells them apart)."""
    lt = layer_types().get(name)
    declared = lt.embedded_attrs()
    assert all(isinstance(a, (EmbeddedCategorical, EmbeddedInt, EmbeddedFloat)) for a in declared)
    assert len({a.name for a in declared}) == len(declared)
    tok = ArchitectureTokenizer.for_registry(layer_types())
    assert [k for k, _ in tok.tables if k.startswith(f"{name}.")] == [f"{name}.{a.name}" for a in declared]
    seen: dict[tuple, set] = {}
    for attrs, in_shapes in _examples(name):
        norm = lt.normalize_attrs(dict(attrs))
        out = lt.infer_shape(norm, list(in_shapes))
        values = lt.embedded_values(norm, list(in_shapes), out)
        for a in declared:
            assert a.index(values.get(a.name)) is not None, (
                f"{name}.{a.name} = {values.get(a.name)!r} out of vocabulary"
            )
        cost = lt.cost(norm, list(in_shapes), out)
        key = tuple(a.index(values.get(a.name)) for a in declared) + (out, len(in_shapes))
        seen.setdefault(key, set()).add((cost.params, cost.flops, out, tuple(in_shapes)))
    # never one token row for two different costs or shapes (the examples of a type share their input
    # shapes where it matters: the row holds the layer's own values, its inputs are the rows before it)
    assert all(len(signatures) == 1 for signatures in seen.values()), seen

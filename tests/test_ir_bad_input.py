"""Bad architecture input: each kind raises its typed error naming the node; mutated JSON documents give
nothing but `NAToolkitError` subclasses (or a valid architecture)."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import get_seed, layer_types
from na_toolkit.errors import ArchitectureError, NAToolkitError, ShapeError
from na_toolkit.ir.architecture import Architecture, Attrs, Node

LT = layer_types()

SEED_DOCS = {name: get_seed(name).to_json() for name in ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")}


def _doc(nodes, input_shape=(3, 8, 8), output=None):
    doc = {"schema_version": 1, "name": "t", "input_shape": list(input_shape), "nodes": nodes}
    if output is not None:
        doc["output"] = output
    return doc


def _n(nid, type_, inputs, **attrs):
    return {"id": nid, "type": type_, "attrs": attrs, "inputs": list(inputs)}


def _raises(error, doc, node=None, match=None):
    with pytest.raises(error, match=match) as info:
        Architecture.from_json(doc, LT)
    if node is not None:
        assert info.value.node == node and repr(node) in str(info.value)
    return info.value


def test_malformed_json():
    for text in ("{", "[1, 2", "", "\xff\xfe", b"\xff\xfe\x00", '{"schema_version": 1,}'):
        with pytest.raises(ArchitectureError, match="malformed architecture JSON"):
            Architecture.loads(text, LT)
    _raises(ArchitectureError, [1, 2], match="must be an object")
    _raises(ArchitectureError, {"schema_version": 99, "nodes": []}, match="schema_version")
    # another JSON document altogether (a summary, a predictor file) is named as such, with its keys
    _raises(ArchitectureError, {"bad": 1}, match=r"not an architecture document \(keys 'bad'; an architecture has")


def test_unknown_layer_type_names_the_node_and_close_matches():
    err = _raises(
        ArchitectureError, _doc([_n("c", "conv2", ["input"], filters=4)]), node="c", match="unknown layer type"
    )
    assert "conv2d" in str(err)


def test_cycle_names_a_node_in_it():
    doc = _doc([_n("a", "relu", ["b"]), _n("b", "relu", ["a"]), _n("c", "relu", ["b"])], output="c")
    err = _raises(ArchitectureError, doc, match="cycle")
    assert err.node in ("a", "b")


def test_dangling_input_names_the_node():
    _raises(ArchitectureError, _doc([_n("a", "relu", ["nowhere"])]), node="a", match="does not exist")


def test_add_shape_mismatch_names_the_add():
    doc = _doc([_n("c", "conv2d", ["input"], filters=4), _n("sum", "add", ["c", "input"])])
    err = _raises(ShapeError, doc, node="sum", match="one shape")
    assert "(4, 8, 8)" in str(err) and "(3, 8, 8)" in str(err)


@pytest.mark.parametrize("filters", [0, -3])
def test_non_positive_channels(filters):
    _raises(ArchitectureError, _doc([_n("c", "conv2d", ["input"], filters=filters)]), node="c", match="filters")
    _raises(
        ArchitectureError,
        _doc([_n("l", "linear", ["input"], units=filters)], input_shape=(5,)),
        node="l",
        match="units",
    )
    with pytest.raises(ArchitectureError, match="input shape"):
        Architecture.from_json(_doc([_n("r", "relu", ["input"])], input_shape=(filters, 4, 4)), LT)


def test_other_structural_errors_name_the_node():
    _raises(ArchitectureError, _doc([_n("a", "relu", ["input"]), _n("a", "relu", ["a"])]), node="a", match="duplicate")
    _raises(
        ArchitectureError,
        _doc([_n("a", "relu", ["input"]), _n("b", "relu", ["input"])], output="b"),
        node="a",
        match="never used",
    )
    _raises(ArchitectureError, _doc([_n("s", "add", ["input"])]), node="s", match="input")
    _raises(ArchitectureError, _doc([_n("c", "conv2d", ["input"], filters=4, colour=1)]), node="c", match="colour")
    _raises(ArchitectureError, _doc([_n("c", "conv2d", ["input"], filters="4")]), node="c", match="must be int")
    _raises(
        ShapeError,
        _doc([_n("c", "conv2d", ["input"], filters=4, kernel=15, padding=0)]),
        node="c",
        match="does not fit",
    )
    _raises(ShapeError, _doc([_n("l", "linear", ["input"], units=4)]), node="l", match="vector")
    _raises(ShapeError, _doc([_n("c", "conv2d", ["input"], filters=4, groups=2)]), node="c", match="groups")


def test_bool_and_int_attributes_are_not_confused_by_the_inference_memo():
    good = Architecture((3, 4, 4), [Node("c", "conv2d", Attrs(filters=4, bias=True), ("input",))], layer_types=LT)
    assert good.attrs("c")["bias"] is True
    with pytest.raises(ArchitectureError, match="bias"):
        Architecture((3, 4, 4), [Node("c", "conv2d", Attrs(filters=4, bias=1), ("input",))], layer_types=LT)
    with pytest.raises(ArchitectureError, match="filters"):
        Architecture((3, 4, 4), [Node("c", "conv2d", Attrs(filters=True), ("input",))], layer_types=LT)


def test_attrs_returns_a_copy():
    arch = get_seed("simple-cnn")
    arch.attrs("conv2d_0")["filters"] = 999
    assert arch.attrs("conv2d_0")["filters"] == 16 and get_seed("simple-cnn").attrs("conv2d_0")["filters"] == 16


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_float_attributes(value):
    doc = _doc([_n("r", "relu", ["input"]), _n("d", "dropout", ["r"], rate=value)])
    _raises(ArchitectureError, json.loads(json.dumps(doc)), node="d", match="rate")


# ---- mutated documents --------------------------------------------------------------------------------
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["input", "conv2d", "add", "relu", "linear", "concat", "flatten", "conv2d_0", "relu_0"]),
)
_values = st.recursive(
    _scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=5
)


def _slots(doc):
    """(container, key) of every value in the document."""
    out = []
    stack = [doc]
    while stack:
        c = stack.pop()
        keys = list(c) if isinstance(c, dict) else range(len(c)) if isinstance(c, list) else []
        for k in keys:
            out.append((c, k))
            stack.append(c[k])
    return out


def _ids(doc):
    return [n["id"] for n in doc.get("nodes", []) if isinstance(n, dict) and isinstance(n.get("id"), str)]


@st.composite
def mutated_documents(draw):
    doc = copy.deepcopy(SEED_DOCS[draw(st.sampled_from(sorted(SEED_DOCS)))])
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(doc)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        kind = draw(st.sampled_from(["replace", "delete", "add_key", "duplicate", "nudge", "rewire", "retype"]))
        value = container[key]
        if kind == "replace":
            container[key] = draw(_values)
        elif kind == "delete":
            del container[key]
        elif kind == "add_key" and isinstance(value, dict):
            value[draw(st.text(max_size=8))] = draw(_values)
        elif kind == "duplicate" and isinstance(container, list):
            container.insert(key, copy.deepcopy(value))
        elif kind == "nudge" and isinstance(value, int) and not isinstance(value, bool):
            container[key] = draw(
                st.sampled_from([value + 1, value - 1, 0, -value, value * 7, value // 2, float(value)])
            )
        elif kind == "rewire" and isinstance(value, str) and _ids(doc):
            container[key] = draw(st.sampled_from([*_ids(doc), "input"]))
        elif kind == "retype" and isinstance(value, str):
            container[key] = draw(
                st.sampled_from(["conv2d", "linear", "add", "concat", "flatten", "zero", "gelu", "nope"])
            )
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        doc = draw(_values)  # the whole document replaced
    return doc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=mutated_documents())
def test_mutated_documents_raise_only_typed_errors(doc):
    try:
        arch = Architecture.from_json(doc, LT)
    except NAToolkitError:
        return
    # a document that loads is a valid network: everything derived from it works
    again = Architecture.loads(arch.dumps(), LT)
    assert again.hash == arch.hash
    assert all(v >= 0 for v in arch.cost.total.astuple())
    assert arch.peak_activation_bytes > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(SEED_DOCS)),
    cuts=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 12), st.binary(max_size=4)), min_size=1, max_size=3),
)
def test_mutated_text_raises_only_typed_errors(name, cuts):
    data = bytearray(json.dumps(SEED_DOCS[name]).encode())
    for pos, length, insert in cuts:
        pos %= len(data) + 1
        data[pos : pos + length] = insert
    try:
        arch = Architecture.loads(bytes(data), LT)
    except NAToolkitError:
        return
    # text that still loads (a cut inside a name, say) is a valid network that round-trips
    assert Architecture.loads(arch.dumps(), LT).hash == arch.hash

"""The built-in moves (insert_conv, insert_add, scale, remove): property tests over random move sequences
from every seed, mask exactness, purity, and the documented behaviour of each move (docs/moves.md)."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import default_toolkit, get_seed, layer_types
from na_toolkit import caches
from na_toolkit.builtin.moves import MOVE_TYPES
from na_toolkit.errors import ArchitectureError, MoveError, ShapeError
from na_toolkit.ir import edit
from na_toolkit.ir.architecture import Architecture, Attrs, Node
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.moves import Move

SEEDS = ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")
BUILTIN = tuple(cls.name for cls in MOVE_TYPES)
_SEED_ARCHS = {name: get_seed(name) for name in SEEDS}


def _ops():
    tk = default_toolkit()
    return [tk.moves.get(name) for name in BUILTIN]


def _draw_move(data, arch):
    """One move drawn the way a controller samples it: an applicable operation, then each parameter from
    its mask given the earlier ones. Asserts the invariant that an admitted value always has a completion."""
    applicable = [op for op in _ops() if op.is_applicable(arch)]
    if not applicable:
        return None
    op = data.draw(st.sampled_from(applicable), label="operation")
    chosen = {}
    for p in op.params():
        mask = op.mask(arch, p.name, chosen)
        assert mask.dtype == bool and mask.shape == (p.size_for(arch),)
        admitted = np.flatnonzero(mask).tolist()
        assert admitted, f"{op.name}: no admitted {p.name} after {chosen} (an earlier mask admitted a dead end)"
        chosen[p.name] = p.value_at(data.draw(st.sampled_from(admitted), label=p.name))
    return op, chosen


def _walk(data, seed, steps):
    arch = _SEED_ARCHS[seed]
    out_shape = arch.output_shape
    for _ in range(steps):
        drawn = _draw_move(data, arch)
        if drawn is None:
            break
        op, params = drawn
        before_json, before_hash = arch.dumps(), arch.hash
        before_norm = {n.id: arch.attrs(n.id) for n in arch.nodes}
        new = op.apply(arch, **params)
        # apply is pure: the input is untouched (JSON, hash, normalised attributes)
        assert arch.dumps() == before_json and arch.hash == before_hash
        assert {n.id: arch.attrs(n.id) for n in arch.nodes} == before_norm
        assert isinstance(new, Architecture) and new is not arch
        assert new.output_shape == out_shape, f"{op.name} {params} changed the network output"
        arch = new
    return arch


@pytest.mark.parametrize("seed", SEEDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), steps=st.integers(0, 20))
def test_move_sequences_give_valid_architectures(seed, data, steps):
    arch = _walk(data, seed, steps)
    # validated on construction; it also survives a JSON round trip with the same hash
    again = Architecture.loads(arch.dumps(), layer_types())
    assert again.hash == arch.hash and again.shapes == arch.shapes
    cost = arch.cost
    assert all(v >= 0 for v in cost.total.astuple()) and cost.params > 0
    assert json.dumps(arch.canonical(), separators=(",", ":"), sort_keys=True) == arch._canonical_blob()


@pytest.mark.parametrize("seed", SEEDS)
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), steps=st.integers(1, 20))
def test_move_sequences_build_in_torch_and_match_onnx_runtime(seed, data, steps):
    arch = _walk(data, seed, steps)
    model = arch.to_torch(seed=1).eval()
    proto = arch.to_onnx(model=model, batch_size=None)
    onnx.checker.check_model(proto)
    x = np.random.default_rng(steps).standard_normal((2, *arch.input_shape)).astype(np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape == (2, *arch.output_shape)
    assert np.abs(got - want).max() <= 1e-4


def _check_masks(arch, rng):
    """Every admitted value of every parameter has a completion that applies; for one completion path per
    first value, every admitted value of the last parameter applies; a value the mask rejects fails to
    apply with MoveError (the mask and apply agree)."""
    for op in _ops():
        specs = op.params()
        first = specs[0]
        for v in np.flatnonzero(op.mask(arch, first.name, {})):
            chosen = {first.name: first.value_at(v)}
            for p in specs[1:]:
                admitted = np.flatnonzero(op.mask(arch, p.name, chosen))
                assert admitted.size, f"{op.name}: {chosen} admitted but no {p.name} completes it"
                if p is specs[-1]:
                    for i in admitted:
                        op.apply(arch, **chosen, **{p.name: p.value_at(i)})
                chosen[p.name] = p.value_at(int(rng.choice(admitted)))
            op.apply(arch, **chosen)
        # a few rejected full assignments: apply refuses them
        for _ in range(5):
            chosen = {p.name: p.value_at(int(rng.integers(p.size_for(arch)))) for p in specs}
            try:
                op.check(arch, chosen)
            except MoveError:  # apply refuses it too, in an error that names the move
                with pytest.raises(MoveError, match=rf"^{re.escape(op.name)}: "):
                    op.apply(arch, **chosen)


@pytest.mark.parametrize("seed", SEEDS)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), steps=st.integers(0, 12))
def test_masks_admit_only_moves_that_apply(seed, data, steps):
    arch = _walk(data, seed, steps)
    _check_masks(arch, np.random.default_rng(steps))


@pytest.mark.parametrize("name", BUILTIN)
def test_operation_contract(name):
    op = default_toolkit().moves.get(name)
    specs = op.params()
    assert specs and len({p.name for p in specs}) == len(specs)
    assert op.description and op.name == name
    for p in specs:
        assert len(p.choices) == len(set(map(repr, p.choices)))
        if p.is_position:  # a position's choices are the network's nodes, however many
            assert p.choices == () and p.choices_for(_SEED_ARCHS["resnet-cifar"]) == range(73)
    for seed in SEEDS:
        arch = _SEED_ARCHS[seed]
        m = op.mask(arch, specs[0].name, {})
        assert m.shape == (specs[0].size_for(arch),), "a position mask has one entry per node"
        params = op.sample(arch, np.random.default_rng(0))
        assert params is not None, f"{name} applies nowhere on {seed}"
        op.check(arch, params)
        moved = Move(name, params)
        assert json.loads(json.dumps(moved.to_json()))["operation"] == name
        assert moved.apply(arch, default_toolkit().moves).hash == op.apply(arch, **params).hash


def test_every_registered_operation_keeps_the_protocol():
    """timm-style: any registered move (plugins' included) gives masks of the right shape and samples
    moves that apply to valid architectures without touching the input."""
    tk = default_toolkit()
    rng = np.random.default_rng(0)
    applied = set()
    # the plugins' seeds too: a plugin's move may apply only to its own networks (NB201's set_edge_op)
    builtin = {n for p in tk.plugins.values() if p.builtin for n in p.registered.get("seeds", [])}
    archs = [*_SEED_ARCHS.values(), *(tk.seed(n) for n in tk.seeds.names() if n not in builtin)]
    for name in tk.moves.names():
        op = tk.moves.get(name)
        for arch in archs:
            chosen = {}
            for p in op.params():
                m = op.admitted(arch, p.name, chosen)
                assert m.shape == (p.size_for(arch),) and m.dtype == bool, name
                if not m.any():
                    break
                chosen[p.name] = p.value_at(int(rng.choice(np.flatnonzero(m))))
            else:
                before = arch.dumps()
                assert isinstance(op.apply(arch, **chosen), Architecture)
                assert arch.dumps() == before
                applied.add(name)
    assert applied == set(tk.moves.names())  # each move was sampled and applied on some seed


# ---- behaviour of each move ---------------------------------------------------------------------------
def _pos(arch, node_id):
    return arch.index(node_id)


def test_insert_conv_keeps_shape_and_rewires_consumers():
    arch = get_seed("simple-cnn")
    op = default_toolkit().moves.get("insert_conv")
    new = op.apply(arch, position=_pos(arch, "relu_0"), filters=16, kernel=5)
    assert len(new) == len(arch) + 3
    i = new.index("relu_0")
    conv, bn, relu = new.nodes[i + 1 : i + 4]
    assert (conv.type, bn.type, relu.type) == ("conv2d", "batchnorm2d", "relu")
    assert new.attrs(conv.id)["kernel"] == 5 and new.shape(relu.id) == arch.shape("relu_0")
    assert new.node("conv2d_1").inputs == (relu.id,)
    assert len({n.id for n in new.nodes}) == len(new)


def test_insert_conv_other_filters_adapt_the_consumer_or_are_masked():
    arch = get_seed("simple-cnn")
    op = default_toolkit().moves.get("insert_conv")
    p = _pos(arch, "relu_0")
    assert op.mask(arch, "filters", {"position": p}).all()  # a conv reads it: any width is absorbed
    new = op.apply(arch, position=p, filters=48, kernel=3)
    assert new.in_shapes("conv2d_1")[0][0] == 48 and new.output_shape == arch.output_shape
    # resnet's stem relu feeds a residual add: only its own width (16) is admitted
    res = get_seed("resnet-cifar")
    p = _pos(res, "relu_0")
    admitted = [f for f, ok in zip(op.param("filters").choices, op.mask(res, "filters", {"position": p})) if ok]
    assert admitted == [16]
    with pytest.raises(MoveError, match=r"cannot insert a 3x3 conv of 32 filters after 'relu_0'"):
        op.apply(res, position=p, filters=32, kernel=3)


def test_insert_conv_depthwise_conv_follows_the_new_width():
    arch = get_seed("mobilenetv2-cifar")
    op = default_toolkit().moves.get("insert_conv")
    expand = next(n for n in arch.nodes if n.type == "conv2d" and arch.attrs(n.id)["groups"] > 1 and n.id != "conv2d_1")
    src = expand.inputs[0]  # the relu6 after the 1x1 expansion
    new = op.apply(arch, position=_pos(arch, src), filters=64, kernel=3)
    a = new.attrs(expand.id)
    assert a["groups"] == 64 and a["filters"] == 64 and arch.attrs(expand.id)["groups"] != 64


def test_insert_add_joins_equal_shapes_only():
    arch = get_seed("simple-cnn")
    op = default_toolkit().moves.get("insert_add")
    src, dst = _pos(arch, "conv2d_0"), _pos(arch, "relu_0")
    target = op.mask(arch, "target", {"source": src})
    assert target[dst] and not target[_pos(arch, "conv2d_1")]  # 32 channels there: masked, no projection
    assert not target[: src + 1].any()
    new = op.apply(arch, source=src, target=dst)
    add = new.nodes[new.index("relu_0") + 1]
    assert add.type == "add" and add.inputs == ("relu_0", "conv2d_0")
    assert new.node("conv2d_1").inputs == (add.id,) and new.params == arch.params
    with pytest.raises(MoveError, match="shapes differ"):
        op.apply(arch, source=src, target=_pos(arch, "conv2d_1"))
    with pytest.raises(MoveError, match="after"):
        op.apply(arch, source=dst, target=src)


def test_scale_channels_kernel_and_rate():
    arch = get_seed("simple-cnn")
    op = default_toolkit().moves.get("scale")
    p = _pos(arch, "conv2d_0")
    new = op.apply(arch, position=p, attribute="channels", value=64)
    assert new.shape("conv2d_0")[0] == 64 and new.shape("batchnorm2d_0")[0] == 64
    assert new.output_shape == arch.output_shape and new.params > arch.params
    new = op.apply(arch, position=p, attribute="kernel", value=5)
    assert new.attrs("conv2d_0")["kernel"] == 5 and new.shape("conv2d_0") == arch.shape("conv2d_0")
    new = op.apply(arch, position=_pos(arch, "dropout_0"), attribute="rate", value=0.3)
    assert new.attrs("dropout_0")["rate"] == 0.3
    # rate 0 is the network without the dropout (`remove`'s), under another hash: never admitted, refused
    rates = op.mask(arch, "value", {"position": _pos(arch, "dropout_0"), "attribute": "rate"})
    assert {op.param("value").choices[i] for i in np.flatnonzero(rates)} == {0.1, 0.2, 0.3, 0.4, 0.5} - {
        arch.attrs("dropout_0")["rate"]
    }
    with pytest.raises(MoveError, match="cannot set rate=0.0 on 'dropout_0'"):
        op.apply(arch, position=_pos(arch, "dropout_0"), attribute="rate", value=0.0)
    # the output layer's width is the number of classes: never scaled
    out = _pos(arch, arch.output)
    assert not op.mask(arch, "position", {})[out]
    with pytest.raises(MoveError, match="cannot set channels=16 on 'linear_0' \\(linear\\)"):
        op.apply(arch, position=out, attribute="channels", value=16)
    # value masks follow the attribute: a kernel value is not a rate
    values = op.param("value").choices
    m = op.mask(arch, "value", {"position": p, "attribute": "kernel"})
    assert {values[i] for i in np.flatnonzero(m)} == {1, 5, 7}


def test_scale_channels_masked_before_a_residual_add():
    arch = get_seed("resnet-cifar")
    op = default_toolkit().moves.get("scale")
    second = "conv2d_2"  # second conv of the first block: its BN feeds the add
    assert arch.node("batchnorm2d_2").inputs == (second,)
    assert not op.mask(arch, "value", {"position": _pos(arch, second), "attribute": "channels"}).any()
    first = "conv2d_1"  # the first conv of the block: the next conv absorbs a new width
    assert op.mask(arch, "value", {"position": _pos(arch, first), "attribute": "channels"}).any()


def test_remove_identity_shaped_and_add_drops_the_skip_branch():
    arch = get_seed("resnet-cifar")
    op = default_toolkit().moves.get("remove")
    mask = op.mask(arch, "position", {})
    assert mask[_pos(arch, "batchnorm2d_0")] and mask[_pos(arch, "relu_0")]
    assert not mask[_pos(arch, arch.output)] and not mask[_pos(arch, "flatten_0")]
    new = op.apply(arch, position=_pos(arch, "batchnorm2d_0"))
    assert "batchnorm2d_0" not in new and new.node("relu_0").inputs == ("conv2d_0",)
    # the first add of stage 2 has a strided 1x1 conv + BN shortcut: removing the add drops it
    add = next(n for n in arch.nodes if n.type == "add" and arch.node(n.inputs[1]).type == "batchnorm2d")
    shortcut_bn = arch.node(add.inputs[1])
    new = op.apply(arch, position=_pos(arch, add.id))
    assert add.id not in new and shortcut_bn.id not in new and shortcut_bn.inputs[0] not in new
    assert new.params < arch.params


def test_remove_a_width_changing_layer_when_consumers_adapt():
    b = ArchitectureBuilder((3, 8, 8), layer_types=layer_types())
    x = b.layer("conv2d", b.input, filters=8)
    x = b.layer("conv2d", x, filters=16)
    x = b.layer("global_avg_pool", x)
    x = b.layer("flatten", x)
    x = b.layer("linear", x, units=4)
    arch = b.build()
    op = default_toolkit().moves.get("remove")
    new = op.apply(arch, position=1)
    assert new.in_shapes("global_avg_pool_0") == [(8, 8, 8)] and new.output_shape == (4,)


def test_positions_past_the_end_and_bad_parameters_are_refused():
    arch = get_seed("simple-cnn")
    for op in _ops():
        first = op.params()[0]
        assert len(op.mask(arch, first.name, {})) == len(arch)
        with pytest.raises(MoveError, match="outside"):
            op.check(arch, {p.name: len(arch) if p.is_position else p.choices[0] for p in op.params()})
    op = default_toolkit().moves.get("remove")
    with pytest.raises(MoveError, match="outside"):
        op.apply(arch, position=len(arch))
    with pytest.raises(MoveError, match="expected parameters"):
        op.apply(arch, where=1)
    with pytest.raises(MoveError, match=r"attribute must be one of \['channels', 'kernel', 'rate'\], got 'colour'"):
        default_toolkit().moves.get("scale").apply(arch, position=0, attribute="colour", value=1)


def test_sampling_is_deterministic_for_a_seed():
    def walk(seed):
        rng = np.random.default_rng(seed)
        arch = get_seed("resnet-cifar")
        for _ in range(10):
            for k in rng.permutation(len(BUILTIN)):
                params = _ops()[k].sample(arch, rng)
                if params is not None:
                    arch = _ops()[k].apply(arch, **params)
                    break
        return arch.hash

    assert walk(3) == walk(3)


#: final hashes of `walk(3)` above from each seed, as the moves gave them before their graph editing moved
#: to `na_toolkit.ir.edit` (issue 9): the same moves give the same networks
PINNED_WALKS = {
    "simple-cnn": "542c3bf6bda0b5b5",
    "resnet-cifar": "e49ad02f87e03c3d",
    "mobilenetv2-cifar": "5876b7f98879bb31",
}


@pytest.mark.parametrize("seed", SEEDS)
def test_move_results_are_pinned(seed):
    def walk():
        rng = np.random.default_rng(3)
        arch = get_seed(seed)
        for _ in range(10):
            for k in rng.permutation(len(BUILTIN)):
                params = _ops()[k].sample(arch, rng)
                if params is not None:
                    arch = _ops()[k].apply(arch, **params)
                    break
        return arch.hash

    assert walk() == PINNED_WALKS[seed]
    caches.clear_caches()  # the memo caches only make it faster: emptied, the same walk
    assert walk() == PINNED_WALKS[seed]


# ---- the public graph-editing helpers (na_toolkit.ir.edit) ----------------------------------------------
def _chain():
    b = ArchitectureBuilder((3, 8, 8), layer_types=layer_types())
    x = b.layer("conv2d", b.input, filters=8)
    x = b.layer("relu", x)
    x = b.layer("conv2d", x, filters=8, groups=8)  # depthwise: follows its input width
    x = b.layer("global_avg_pool", x)
    b.layer("linear", b.layer("flatten", x), units=4)
    return b.build()


def test_edit_propagate_adapts_downstream_or_refuses():
    arch = _chain()
    v = edit.view(arch)
    assert edit.view(arch) is v and v.shapes["relu_0"] == (8, 8, 8)
    # conv2d_0 at 16 filters: the relu passes it on, the depthwise conv follows (groups and filters 16)
    changes = edit.propagate(arch, {"conv2d_0": (16, 8, 8)}, {})
    assert changes is not None and changes["conv2d_1"]["groups"] == 16 and changes["conv2d_1"]["filters"] == 16
    # the output (the linear's units) cannot change: refused
    assert edit.propagate(arch, {"flatten_0": (5,)}, {}) is not None  # the linear absorbs a new input width
    assert edit.edit_changes(arch, arch.node("linear_0"), "units", 5) is None
    # set one attribute: the changes, then the network
    changes = edit.edit_changes(arch, arch.node("conv2d_0"), "filters", 16)
    new = edit.rebuild(arch, changes)
    assert new.shape("conv2d_1") == (16, 8, 8) and new.output_shape == arch.output_shape
    assert arch.shape("conv2d_1") == (8, 8, 8)  # pure
    assert edit.local_edit(arch, arch.node("conv2d_0"), "kernel", 5)[1] == (8, 8, 8)
    assert edit.shape_keeping_value_exists(arch, arch.node("conv2d_0"), "kernel", (1, 3, 5))
    assert edit.try_infer(v.types["conv2d"], Attrs(filters=4, kernel=9), ((3, 8, 8),)) == (4, 8, 8)
    assert edit.try_infer(v.types["conv2d"], Attrs(filters=4, kernel=9, padding=0), ((3, 8, 8),)) is None


def test_edit_insert_after_rewires_consumers_and_the_output():
    arch = _chain()
    bn = Node(arch.new_id("batchnorm2d"), "batchnorm2d", Attrs(), ("relu_0",))
    new = edit.insert_after(arch, "relu_0", [bn])
    assert new.nodes[new.index("relu_0") + 1].id == bn.id and new.node("conv2d_1").inputs == (bn.id,)
    ident = Node(arch.new_id("identity"), "identity", Attrs(), (arch.output,))
    new = edit.insert_after(arch, arch.output, [ident])
    assert new.output == ident.id
    # a shape-changing chain takes the changes `propagate` gives: the depthwise conv follows the new width
    widen = Node(arch.new_id("conv2d"), "conv2d", Attrs(filters=16, kernel=1), ("relu_0",))
    changes = edit.propagate(arch, {"relu_0": (16, 8, 8)}, {})
    new = edit.insert_after(arch, "relu_0", [widen], changes)
    assert new.shape("conv2d_1") == (16, 8, 8) and new.attrs("conv2d_1")["groups"] == 16
    # ... and the result is validated like any network (a 2-channel map cannot feed groups=8)
    narrow = Node(arch.new_id("conv2d"), "conv2d", Attrs(filters=2, kernel=1), ("relu_0",))
    with pytest.raises(ShapeError, match="node 'conv2d_1': groups=8 must divide input channels 2"):
        edit.insert_after(arch, "relu_0", [narrow])


def test_edit_rebuild_drops_a_node_and_what_only_it_read():
    arch = get_seed("resnet-cifar")
    add = next(n for n in arch.nodes if n.type == "add" and arch.node(n.inputs[1]).type == "batchnorm2d")
    new = edit.rebuild(arch, {}, rewire={add.id: add.inputs[0]}, drop=add.id)
    assert add.id not in new and add.inputs[1] not in new and len(new) < len(arch)


def test_edit_helpers_name_what_the_caller_got_wrong():
    """A user's slips with the editing helpers: each was silently wrong (an edit of an unknown node left out, a
    misspelt attribute answered as "the network would break", a string of inputs read letter by letter) or a
    bare KeyError / TypeError from inside."""
    arch = get_seed("simple-cnn")
    conv = arch.node("conv2d_0")
    with pytest.raises(ArchitectureError, match=r"no attribute 'filtres'\. Did you mean 'filters'\? Known: bias"):
        edit.edit_changes(arch, conv, "filtres", 48)
    assert edit.edit_changes(arch, conv, "filters", -3) is None  # a declared attribute's bad value: None, as before
    with pytest.raises(ArchitectureError, match=r"no node 'conv2d_9' to edit in architecture 'simple-cnn'\. Did"):
        edit.rebuild(arch, {"conv2d_9": conv.attrs.replace(filters=48)})  # returned `arch` unchanged
    with pytest.raises(ArchitectureError, match=r"no node 'relu_99' to edit .*Did you mean 'relu_\d', 'relu_\d'"):
        edit.insert_after(arch, "relu_99", [Node(arch.new_id("relu"), "relu", Attrs(), ("relu_99",))])
    with pytest.raises(ArchitectureError, match="changes is None: the edit breaks the network"):
        edit.rebuild(arch, edit.edit_changes(arch, conv, "filters", -3))
    with pytest.raises(ArchitectureError, match=r"inputs is a sequence of node ids, got the string 'relu_0'"):
        Node("x", "relu", Attrs(), "relu_0")  # was the inputs 'r', 'e', 'l', 'u', '_', '0'
    with pytest.raises(ArchitectureError, match=r"no node 'relu_99' in this architecture\. Did you mean"):
        arch.node("relu_99")


def test_edit_caches_are_registered():
    names = caches.cache_names()
    for name in ("ir.edit.inferred", "ir.edit.local_edits", "ir.edit.shape_keeping", "ir.edit.views"):
        assert name in names


@pytest.mark.parametrize(
    "move, params",
    [
        ("insert_conv", {"position": 1, "filters": "x", "kernel": 3}),
        ("insert_conv", {"position": 1, "filters": 16, "kernel": True}),
        ("scale", {"position": 0, "attribute": "channels", "value": "x"}),
        ("scale", {"position": 0, "attribute": "channels", "value": 17}),
    ],
)
def test_a_value_of_the_wrong_type_is_a_move_error_naming_the_choices(move, params):
    arch = get_seed("simple-cnn")
    with pytest.raises(MoveError, match="is not one of"):
        default_toolkit().moves.get(move).apply(arch, **params)

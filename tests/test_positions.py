"""Positions are not capped (issue 10): a position parameter has one choice per node of the network it is
asked about, so every node of a long network (here 305 nodes; an imported ResNet-50 has more) can be
edited, by the built-in moves, a plugin's move, the random strategies and the controller's pointer.
Moves written for the former 128-position contract keep working; a mask that admits a node the network
does not have is a clear error naming the move."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import default_toolkit, get_seed, layer_types
from na_toolkit.controller.action_space import ANY_SIZE, ActionSpace, stack_masks
from na_toolkit.controller.policy import Controller
from na_toolkit.embedding import ArchitectureTokenizer
from na_toolkit.errors import MoveError
from na_toolkit.ir.architecture import Architecture
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.moves import MAX_POSITIONS, Move, MoveType, ParamSpec
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.strategy import random_move, random_walk

BUILTIN = ("insert_conv", "insert_add", "scale", "remove")
LATE = 290  # a conv2d of the long chain, far past the former cap of 128
SE_SRC = Path(__file__).resolve().parents[1] / "plugins" / "na_toolkit_example_se"


def long_chain(types=None, blocks: int = 100) -> Architecture:
    """stem conv + bn, then `blocks` x (conv 8 -> bn -> relu) on 8x8 maps, then the classifier: 305 nodes,
    a conv2d at every index 2 + 3k (LATE among them)."""
    b = ArchitectureBuilder((3, 8, 8), layer_types=types or layer_types())
    x = b.layer("batchnorm2d", b.layer("conv2d", b.input, filters=8))
    for _ in range(blocks):
        x = b.layer("relu", b.layer("batchnorm2d", b.layer("conv2d", x, filters=8)))
    x = b.layer("flatten", b.layer("global_avg_pool", x))
    return b.build(b.layer("linear", x, units=10))


LONG = long_chain()


def _ops(names=BUILTIN) -> list[MoveType]:
    return [default_toolkit().moves.get(n) for n in names]


def _controller(ops, seed: int = 0, toolkit=None) -> Controller:
    tokenizer = ArchitectureTokenizer.for_registry((toolkit or default_toolkit()).layer_types)
    return Controller(tokenizer, ActionSpace.from_move_types(ops), seed)


def test_the_long_chain_is_past_the_former_cap():
    assert len(LONG.nodes) == 305 > 2 * MAX_POSITIONS
    assert LONG.nodes[LATE].type == "conv2d"


def test_masks_have_the_networks_length_and_admit_late_nodes():
    for op in _ops():
        for arch in (LONG, get_seed("simple-cnn")):
            first = op.params()[0]
            assert first.is_position and first.choices_for(arch) == range(len(arch.nodes))
            m = op.mask(arch, first.name, {})
            assert m.dtype == bool and m.shape == (len(arch.nodes),)
            assert op.admitted(arch, first.name, {}) is m  # already normalised: no copy
        assert op.mask(LONG, op.params()[0].name, {})[LATE], op.name
    target = _ops(["insert_add"])[0].mask(LONG, "target", {"source": LATE})
    assert target.shape == (len(LONG.nodes),) and target[LATE + 3] and not target[: LATE + 1].any()


@pytest.mark.parametrize(
    "name, params",
    [
        ("insert_conv", {"position": LATE, "filters": 16, "kernel": 3}),
        ("insert_add", {"source": LATE, "target": LATE + 3}),
        ("scale", {"position": LATE, "attribute": "kernel", "value": 5}),
        ("scale", {"position": LATE, "attribute": "channels", "value": 32}),
        ("remove", {"position": LATE}),
    ],
)
def test_each_builtin_move_edits_node_290(name, params):
    op = default_toolkit().moves.get(name)
    op.check(LONG, params)
    move = Move(name, params)
    again = Move(name, json.loads(json.dumps(move.to_json()))["params"])
    child = again.apply(LONG, default_toolkit().moves)
    assert child.hash == op.apply(LONG, **params).hash != LONG.hash
    late = LONG.nodes[LATE].id
    if name == "insert_conv":
        assert child.nodes[LATE + 1].type == "conv2d" and child.nodes[LATE + 1].inputs == (late,)
    elif name == "insert_add":
        assert any(n.type == "add" and late in n.inputs for n in child.nodes)
    elif name == "scale":
        assert child.attrs(late) != LONG.attrs(late)
    else:
        assert late not in child and len(child.nodes) == len(LONG.nodes) - 1
    with pytest.raises(MoveError, match="outside"):
        op.check(LONG, {**params, op.params()[0].name: len(LONG.nodes)})


def test_sampling_and_random_walks_reach_late_nodes():
    ops = _ops()
    rng = np.random.default_rng(0)
    positions = []
    for op in ops:
        for _ in range(20):
            params = op.sample(LONG, rng)
            assert params is not None
            first = params[op.params()[0].name]
            assert type(first) is int  # positions stay ints (JSON, the store)
            positions.append(first)
            op.check(LONG, params)
    assert max(positions) > 2 * MAX_POSITIONS
    moves = [random_move(LONG, ops, np.random.default_rng(s))[0] for s in range(20)]
    assert max(next(iter(m.params.values())) for m in moves) > MAX_POSITIONS
    walk = random_walk(LONG, ops, np.random.default_rng(1), steps=3)
    assert walk is not None and len(walk.moves) == 3


class AtNode(MoveType):
    """A built-in move restricted to one node (its first parameter's mask keeps only `node`): the
    controller can take it only by pointing there."""

    def __init__(self, inner: MoveType, node: int):
        self.inner, self.node = inner, node
        self.name = f"{inner.name}_at_{node}"  # type: ignore[misc]
        self.description = inner.description  # type: ignore[misc]

    def params(self):
        return self.inner.params()

    def mask(self, arch, param, chosen):
        m = self.inner.mask(arch, param, chosen)
        if param != self.inner.params()[0].name:
            return m
        keep = np.zeros_like(m)
        keep[self.node] = m[self.node]
        return keep

    def apply(self, arch, **params):
        return self.inner.apply(arch, **params)


def test_the_controller_points_past_128_and_edits_node_290():
    ops = [AtNode(op, LATE) for op in _ops()]
    ctrl = _controller(ops)
    decisions = ctrl.decide([LONG] * 32, np.random.default_rng(0))
    assert {d.move.name for d in decisions if d is not None} == {op.name for op in ops}
    for d in decisions:
        assert d is not None and d.values[0] == LATE and d.move.params[ops[d.op].params()[0].name] == LATE
        assert len(d.masks[0]) == len(LONG.nodes)
        child = ops[d.op].apply(LONG, **d.move.params)
        assert child.hash != LONG.hash


def test_the_pointer_puts_mass_on_late_positions_in_a_batch_of_mixed_lengths():
    """The built-in moves, unrestricted: the pointer samples nodes past 128 of the long chain, the rows of
    a short network keep their own length, and the update scores the padded batch (finite losses)."""
    ops = _ops()
    ctrl = _controller(ops, seed=1)
    small = get_seed("simple-cnn")
    states = [LONG, small] * 16
    decisions = ctrl.decide(states, np.random.default_rng(0))
    late = []
    for arch, d in zip(states, decisions):
        assert d is not None
        op = ops[d.op]
        for k, p in enumerate(op.params()):
            assert len(d.masks[k]) == p.size_for(arch) and d.masks[k][d.values[k]]
        op.check(arch, d.move.params)
        if arch is LONG:
            late.append(d.values[0])
    assert max(late) > MAX_POSITIONS, late
    stats = ctrl.update(states, decisions, states, np.linspace(0.0, 1.0, len(states)))
    assert all(np.isfinite(v) for v in stats.values()), stats


def test_stack_masks_pads_rows_with_false():
    out = stack_masks([np.array([True, False]), np.array([False, False, True])])
    assert out.tolist() == [[True, False, False], [False, False, True]]


# ---- moves written for the former 128-position contract ----------------------------------------------
class OldStyle(MoveType):
    """A third-party move as written before positions were uncapped: `MAX_POSITIONS`-long position masks."""

    name = "old_style_relu"
    description = "insert a ReLU after a conv (a move written against the 128-position contract)"

    def __init__(self, admit_past_end: bool = False):
        self.admit_past_end = admit_past_end

    def params(self):
        return (ParamSpec.position("position"),)

    def mask(self, arch, param, chosen):
        m = np.zeros(MAX_POSITIONS, dtype=bool)
        for i, node in enumerate(arch.nodes[:MAX_POSITIONS]):
            m[i] = node.type == "conv2d"
        if self.admit_past_end:  # the bug: a node the network does not have
            m[len(arch.nodes) :] = True
        return m

    def apply(self, arch, **params):
        from na_toolkit.ir import edit
        from na_toolkit.ir.architecture import Attrs, Node

        self.check(arch, params)
        target = arch.nodes[params["position"]]
        return edit.insert_after(arch, target.id, [Node(arch.new_id("relu"), "relu", Attrs(), (target.id,))])


def test_an_old_style_128_mask_still_works():
    op = OldStyle()
    small = get_seed("simple-cnn")
    m = op.admitted(small, "position", {})
    assert m.shape == (len(small.nodes),) and m.any()
    params = op.sample(small, np.random.default_rng(0))
    assert small.nodes[params["position"]].type == "conv2d"
    op.apply(small, **params)
    assert np.array_equal(op.masks(small)["position"], m)
    # on a longer network its mask is padded: the move works, on its first 128 nodes only
    m = op.admitted(LONG, "position", {})
    assert m.shape == (len(LONG.nodes),) and m[:MAX_POSITIONS].any() and not m[MAX_POSITIONS:].any()
    with pytest.raises(MoveError, match="not valid"):
        op.check(LONG, {"position": LATE})
    # the controller takes it too, next to the built-ins, on both networks
    ops = [op, *_ops(["remove"])]
    ctrl = _controller(ops)
    for arch in (small, LONG):
        decisions = ctrl.decide([arch] * 8, np.random.default_rng(0))
        assert len(decisions) == 8
        for d in decisions:
            assert d is not None and len(d.masks[0]) == len(arch.nodes)
            ops[d.op].apply(arch, **d.move.params)


def test_a_mask_admitting_a_missing_node_is_a_clear_error():
    op = OldStyle(admit_past_end=True)
    small = get_seed("simple-cnn")
    message = rf"move 'old_style_relu'.*admits position {len(small.nodes)}.*has {len(small.nodes)} nodes"
    for call in (
        lambda: op.admitted(small, "position", {}),
        lambda: op.is_applicable(small),
        lambda: op.sample(small, np.random.default_rng(0)),
        lambda: op.check(small, {"position": 0}),
        lambda: _controller([op]).decide([small], np.random.default_rng(0)),
    ):
        with pytest.raises(MoveError, match=message):
            call()

    # a non-position mask of the wrong length is the move's bug too
    class BadValues(MoveType):
        name = "bad_values"

        def params(self):
            return (ParamSpec("how", ("a", "b", "c")),)

        def mask(self, arch, param, chosen):
            return np.ones(2, dtype=bool)

    with pytest.raises(MoveError, match=r"move 'bad_values': the mask of 'how' has shape \(2,\), expected \(3,\)"):
        BadValues().sample(small, np.random.default_rng(0))


def test_a_position_value_must_be_a_node_index():
    remove = _ops(["remove"])[0]
    small = get_seed("simple-cnn")
    for value in ("1", 1.5, -1, True, None):
        with pytest.raises(MoveError, match="not a node index|outside|must be an int"):
            remove.check(small, {"position": value})
    remove.check(small, {"position": np.int64(1)})  # what a numpy-based strategy gives


# ---- the action space and saved controllers ------------------------------------------------------------
def test_describe_does_not_depend_on_a_network_and_round_trips():
    ops = _ops()
    space = ActionSpace.from_move_types(ops)
    desc = space.describe()
    positions = [p for op in desc for p in op["params"] if p["position"]]
    assert positions and all(p["choices"] == ANY_SIZE for p in positions)
    assert json.loads(json.dumps(desc)) == desc
    # a move written against the former contract (a position with 128 explicit choices) describes the same
    legacy = ParamSpec("position", tuple(range(MAX_POSITIONS)), is_position=True)
    assert legacy.choices_for(LONG) == range(len(LONG.nodes))

    class Legacy(OldStyle):
        def params(self):
            return (legacy,)

    new_style = ActionSpace.from_move_types([OldStyle()]).describe()
    assert ActionSpace.from_move_types([Legacy()]).describe() == new_style
    # a saved controller, through JSON for its description, loads into a fresh one and acts the same
    a = _controller(ops, seed=0)
    a.update([LONG] * 4, a.decide([LONG] * 4, np.random.default_rng(0)), [LONG] * 4, np.arange(4.0))
    state = a.state_dict()
    state["space"] = json.loads(json.dumps(state["space"]))
    b = _controller(ops, seed=1)
    b.load_state_dict(state)
    assert b.state_dict()["space"] == desc
    da = a.decide([LONG] * 6, np.random.default_rng(3))
    db = b.decide([LONG] * 6, np.random.default_rng(3))
    assert [d.move for d in da] == [d.move for d in db]


def test_action_space_checks_choices_but_not_position_lengths():
    from na_toolkit.errors import ConfigError

    class Empty(OldStyle):
        name = "empty"

        def params(self):
            return (ParamSpec.position("position"), ParamSpec("how", ()))

    with pytest.raises(ConfigError, match="'how' has no choices"):
        ActionSpace.from_move_types([Empty()])
    assert ActionSpace.from_move_types([OldStyle()]).has_positions


# ---- the example plugin's move ------------------------------------------------------------------------
@pytest.fixture
def se_plugin(monkeypatch):
    """The example plugin imported from its source tree (tests/test_example_plugin.py installs it)."""
    monkeypatch.syspath_prepend(str(SE_SRC))
    module = importlib.import_module("na_toolkit_example_se")
    yield module
    for name in [m for m in sys.modules if m.startswith("na_toolkit_example_se")]:
        del sys.modules[name]


def test_the_example_plugins_move_edits_node_290(se_plugin):
    tk = load_toolkit(entry_points=False, extra_plugins=(se_plugin,))
    op = tk.moves.get("insert_se")
    arch = long_chain(tk.layer_types)
    m = op.mask(arch, "position", {})
    assert m.shape == (len(arch.nodes),) and m[LATE]
    child = op.apply(arch, position=LATE, reduction=4)
    assert child.nodes[LATE + 1].type == "squeeze_excite" and child.nodes[LATE + 1].inputs == (arch.nodes[LATE].id,)

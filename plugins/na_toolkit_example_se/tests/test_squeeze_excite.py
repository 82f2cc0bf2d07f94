"""Tests of the example plugin, run against whatever copy of it is importable (source or installed).

Each test gets a fresh toolkit holding the built-ins and this plugin only (`entry_points=False`: an
installed copy would otherwise register the same names twice), and passes it (or its layer types) to
what it builds, as an application does.
"""

import io
import warnings

import numpy as np
import pytest
import torch

import na_toolkit_example_se
from na_toolkit.cli.arch import onnx_parity_max_abs_err
from na_toolkit.errors import MoveError, ShapeError
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.ir.onnx_import import from_onnx
from na_toolkit.plugins import load_toolkit
from na_toolkit.testing import check_layer_type, check_move


@pytest.fixture
def toolkit():
    return load_toolkit(entry_points=False, extra_plugins=(na_toolkit_example_se,))


def se_net(toolkit, reduction=4, channels=16):
    b = ArchitectureBuilder((3, 8, 8), layer_types=toolkit.layer_types, name="se-net")
    x = b.layer("conv2d", b.input, filters=channels, kernel=3)
    x = b.layer("squeeze_excite", x, reduction=reduction)
    x = b.layer("global_avg_pool", x)
    x = b.layer("flatten", x)
    return b.build()


def test_plugin_registers_its_layer_and_move(toolkit):
    info = toolkit.plugins["na_toolkit_example_se"]
    assert info.error is None
    assert info.registered == {"layer_types": ["squeeze_excite"], "moves": ["insert_se"]}


def test_shape_cost_and_torch_agree(toolkit):
    arch = se_net(toolkit, reduction=4, channels=16)
    se = next(n.id for n in arch.nodes if n.type == "squeeze_excite")
    assert arch.shape(se) == (16, 8, 8)
    model = arch.to_torch()
    # 16->4 and 4->16 1x1 convs with biases: 16*4 + 4 + 4*16 + 16
    assert arch.cost.per_node[se].params == 148
    assert arch.params == sum(p.numel() for p in model.parameters())
    # the random weights the ONNX emitter draws have the torch module's names and shapes
    lt = toolkit.layer_types.get("squeeze_excite")
    drawn = lt.init_weights(arch.attrs(se), arch.in_shapes(se), arch.shape(se), np.random.default_rng(0))
    state = model.layers[model.key(se)].state_dict()
    assert {k: v.shape for k, v in drawn.items()} == {k: tuple(v.shape) for k, v in state.items()}


def test_reduction_larger_than_channels_is_a_shape_error(toolkit):
    with pytest.raises(ShapeError, match="reduction 32"):
        se_net(toolkit, reduction=32, channels=16)


@pytest.mark.parametrize("reduction", [1, 16])
def test_onnx_matches_torch(toolkit, reduction):
    assert onnx_parity_max_abs_err(se_net(toolkit, reduction=reduction)) <= 1e-4


def test_the_layer_type_keeps_the_layer_contract(toolkit):
    """The plugin kit's checks (docs/testing.md): schema, shape, cost against the torch module, ONNX parity
    in ONNX Runtime and the ONNX import back to the same network, JSON."""
    results = check_layer_type(
        "squeeze_excite", toolkit, examples=[({"reduction": 1}, [(4, 5, 5)]), ({"reduction": 4}, [(16, 6, 6)])]
    )
    assert results[1].cost.params == 16 * 4 + 4 + 4 * 16 + 16
    assert all(r.same_hash_after_import for r in results)


def test_the_move_keeps_the_move_contract(toolkit):
    """The plugin kit's checks: masks of the right shape and dtype, every admitted value applies on every
    seed to a valid network, apply is pure, a refused value raises MoveError."""
    results = check_move("insert_se", toolkit)
    assert {r.seed for r in results} == set(toolkit.seeds.names()) and all(r.applied for r in results)


def test_mask_admits_exactly_the_moves_that_apply(toolkit):
    op = toolkit.moves.get("insert_se")
    arch = toolkit.seed("simple-cnn")
    positions = op.mask(arch, "position", {})
    assert positions.any()
    for i in range(len(arch.nodes)):
        for r in op.REDUCTIONS:
            admitted = bool(positions[i]) and bool(op.mask(arch, "reduction", {"position": i})[op.REDUCTIONS.index(r)])
            if admitted:  # the block goes right after the chosen node
                new = op.apply(arch, position=i, reduction=r)
                se = new.nodes[i + 1]
                assert se.type == "squeeze_excite" and se.inputs == (arch.nodes[i].id,)
                assert len(new.nodes) == len(arch.nodes) + 1
            else:
                with pytest.raises(MoveError):
                    op.apply(arch, position=i, reduction=r)


def test_sampled_moves_export_and_match_torch(toolkit):
    op = toolkit.moves.get("insert_se")
    arch = toolkit.seed("simple-cnn")
    rng = np.random.default_rng(0)
    for _ in range(3):
        arch = op.apply(arch, **op.sample(arch, rng))
    assert sum(n.type == "squeeze_excite" for n in arch.nodes) == 3
    assert onnx_parity_max_abs_err(arch) <= 1e-4


def torch_onnx_export(model, input_shape):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            torch.zeros(1, *input_shape),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
        )
    return buf.getvalue()


@pytest.mark.parametrize("exporter", ["na_toolkit", "torch.onnx"])
def test_onnx_import_gives_back_the_block(toolkit, exporter):
    arch = se_net(toolkit, reduction=4, channels=16)
    model = arch.to_torch(seed=3).eval()
    if exporter == "na_toolkit":
        blob = arch.to_onnx(model=model).SerializeToString()
    else:
        blob = torch_onnx_export(model, arch.input_shape)
    imported, state = from_onnx(blob, toolkit.layer_types, return_weights=True)
    assert [n.type for n in imported.nodes].count("squeeze_excite") == 1
    if exporter == "na_toolkit":  # the layer type's emit_onnx and import_onnx are inverses: the same network
        assert imported.hash == arch.hash
    se = next(n.id for n in imported.nodes if n.type == "squeeze_excite")
    assert imported.attrs(se)["reduction"] == 4
    back = imported.to_torch().eval()
    back.load_state_dict(state)
    x = torch.randn(2, *arch.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (back(x) - model(x)).abs().max().item() <= 1e-4


def test_a_plain_global_pool_still_imports_as_one(toolkit):
    b = ArchitectureBuilder((3, 8, 8), layer_types=toolkit.layer_types)
    b.layer("flatten", b.layer("global_avg_pool", b.layer("conv2d", b.input, filters=8)))
    imported = from_onnx(b.build().to_onnx(), toolkit.layer_types)
    assert [n.type for n in imported.nodes] == ["conv2d", "global_avg_pool", "flatten"]

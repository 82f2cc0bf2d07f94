"""The ImageNet-sized seeds (issue 14): ResNet-18/50, MobileNetV2, MobileNetV3-Small, EfficientNet-B0 at
224x224x3 with 1000 classes. Their size and cost agree with their papers (and, exactly, with the reference
implementations' parameter counts); each exports to ONNX and imports back to the same architecture, equal
to its torch build in ONNX Runtime; every registered move applies at every position its masks admit, past
the former 128-position cap, giving a valid network; the layer types they brought pass the contract kit."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import default_toolkit, get_seed, layer_types
from na_toolkit.ir.architecture import Architecture
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.ir.onnx_import import from_onnx
from na_toolkit.moves import MAX_POSITIONS
from na_toolkit.testing import check_layer_type

#: seed -> (parameters of the reference implementation (torchvision), multiply-adds the paper reports)
#: He et al. 2016 Table 1 (1.8 / 3.8 x 10^9); Sandler et al. 2018 Table 4 (300 M); Howard et al. 2019
#: Table 3 (56 M); Tan & Le 2019 Table 2 (0.39 B)
LARGE = {
    "resnet18": (11_689_512, 1.8e9),
    "resnet50": (25_557_032, 3.8e9),
    "mobilenetv2": (3_504_872, 300e6),
    "mobilenetv3-small": (2_542_856, 56e6),
    "efficientnet-b0": (5_288_548, 0.39e9),
}
#: moves of the installed plugins that edit one benchmark's cells only (they admit nothing here)
CELL_ONLY = {"set_edge_op"}


@pytest.mark.parametrize("name", LARGE)
def test_structure_and_cost_follow_the_papers(name):
    arch = get_seed(name)
    params, macs = LARGE[name]
    assert arch.input_shape == (3, 224, 224) and arch.output_shape == (1000,)
    assert arch.params == params
    assert abs(arch.cost.macs - macs) / macs < 0.03, arch.cost.macs
    assert arch.flops >= 2 * arch.cost.macs
    assert sum(p.numel() for p in arch.to_torch().parameters()) == params
    assert default_toolkit().seeds.get(name).dataset == "imagenet"


def test_the_blocks_are_the_papers():
    counts = {
        name: {t: sum(n.type == t for n in get_seed(name).nodes) for t in ("add", "squeeze_excitation")}
        for name in LARGE
    }
    assert counts["resnet18"]["add"] == 8 and counts["resnet50"]["add"] == 16
    assert counts["mobilenetv2"]["add"] == 10  # the blocks that keep shape: 17 minus the 7 first of a stage
    assert counts["mobilenetv3-small"] == {"add": 6, "squeeze_excitation": 9}
    assert counts["efficientnet-b0"] == {"add": 9, "squeeze_excitation": 16}
    depthwise = [n for n in get_seed("efficientnet-b0").nodes if n.type == "conv2d" and n.attrs.get("groups", 1) > 1]
    assert len(depthwise) == 16 and {n.attrs["kernel"] for n in depthwise} == {3, 5}
    r50 = get_seed("resnet50")
    assert len(r50.nodes) > 150 and r50.shape(r50.nodes[-4].id) == (2048, 7, 7)


def calibrated_torch(arch: Architecture, seed: int = 0) -> torch.nn.Module:
    """A torch build in eval mode whose batch norms hold the statistics of a batch of random input, as a
    trained network's do: with the defaults (mean 0, variance 1) the signal of a deep random network fades
    and its output hardly depends on its input, so comparing two computations of it would prove little."""
    model = arch.to_torch(seed=seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum, bn.saved_momentum = None, bn.momentum  # a cumulative average: one batch's statistics
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.train()(torch.randn(4, *arch.input_shape, generator=g))
    for bn in norms:
        bn.momentum = bn.saved_momentum
        del bn.saved_momentum
    return model.eval()


def _ort_output(proto, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


#: ResNet-50's weights alone take a second to draw and import
HEAVY = [pytest.param(n, marks=pytest.mark.slow) if n == "resnet50" else n for n in LARGE]


@pytest.mark.parametrize("name", HEAVY)
def test_onnx_export_imports_back_equal_and_computes_what_torch_does(name):
    arch = get_seed(name)
    if name.startswith("resnet"):  # conv, batch norm, relu, add and pools: resnet-cifar's parity tests cover them
        assert from_onnx(arch.to_onnx(seed=1), layer_types()).hash == arch.hash
        return
    model = calibrated_torch(arch, seed=1)
    proto = arch.to_onnx(model=model)
    back, state = from_onnx(proto, layer_types(), return_weights=True)
    assert back == arch and back.hash == arch.hash and len(back.nodes) == len(arch.nodes)
    x = np.random.default_rng(0).standard_normal((1, *arch.input_shape)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
        assert (model(torch.from_numpy(-x)).numpy() - ref).std() > 0.1 * ref.std()  # the output reads the input
    assert np.abs(_ort_output(proto, x) - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())
    again = back.to_torch().eval()
    again.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(again(torch.from_numpy(x)), torch.from_numpy(ref), atol=1e-4)


def test_random_weight_onnx_round_trip_of_the_mobile_seeds():
    """The quick form of the test above (no torch build, no session): the emitter's own random weights."""
    for name in ("mobilenetv3-small", "efficientnet-b0"):
        arch = get_seed(name)
        assert from_onnx(arch.to_onnx(seed=3), layer_types()).hash == arch.hash


def _complete(move, arch: Architecture, first_value, rng: np.random.Generator) -> dict:
    """Values for every parameter after the first, each drawn from what its mask admits."""
    specs = move.params()
    chosen = {specs[0].name: first_value}
    for p in specs[1:]:
        admitted = np.flatnonzero(move.admitted(arch, p.name, chosen))
        assert admitted.size, f"{move.name}: {specs[0].name}={first_value} admitted, nothing for {p.name}"
        chosen[p.name] = p.value_at(int(rng.choice(admitted)))
    return chosen


@pytest.mark.parametrize("name", LARGE)
def test_every_move_applies_at_every_admitted_position(name):
    arch = get_seed(name)
    tk = default_toolkit()
    rng = np.random.default_rng(0)
    applied: dict[str, int] = {}
    late = 0
    for move_name in tk.moves.names():
        move = tk.moves.get(move_name)
        first = move.params()[0]
        mask = move.admitted(arch, first.name, {})
        assert len(mask) == first.size_for(arch) and (first.is_position or move_name in CELL_ONLY)
        positions = np.flatnonzero(mask)
        for i in positions:
            params = _complete(move, arch, first.value_at(int(i)), rng)
            child = move.apply(arch, **params)  # raises on failure; the constructor validates the result
            assert isinstance(child, Architecture) and child.hash != arch.hash
            assert child.output_shape == arch.output_shape and child.input_shape == arch.input_shape
            late += int(i) >= MAX_POSITIONS
        applied[move_name] = len(positions)
    assert all(applied[m] > 0 for m in applied if m not in CELL_ONLY), applied
    if len(arch.nodes) > MAX_POSITIONS:
        assert late > 0  # nodes past the former cap are edited too
    # one child per move, sampled, reads back from its JSON to the same network (a valid document)
    for move_name in sorted(set(applied) - CELL_ONLY):
        move = tk.moves.get(move_name)
        child = move.apply(arch, **move.sample(arch, rng))
        assert Architecture.from_json(child.to_json(), layer_types()).hash == child.hash


def test_every_value_of_every_parameter_at_the_last_blocks_of_resnet50():
    """Past the sampled completions above: every admitted value of every later parameter applies, at the
    nodes of the last bottleneck (positions far past 128)."""
    arch = get_seed("resnet50")
    tk = default_toolkit()
    last_block = range(len(arch.nodes) - 14, len(arch.nodes))
    tried = 0
    for move_name in sorted(set(tk.moves.names()) - CELL_ONLY):
        move = tk.moves.get(move_name)
        specs = move.params()
        mask = move.admitted(arch, specs[0].name, {})
        for i in (i for i in last_block if mask[i]):
            prefixes = [{specs[0].name: i}]
            for p in specs[1:]:
                prefixes = [
                    {**c, p.name: p.value_at(int(v))}
                    for c in prefixes
                    for v in np.flatnonzero(move.admitted(arch, p.name, c))
                ]
            for params in prefixes:
                assert move.apply(arch, **params).output_shape == (1000,)
                tried += 1
    assert tried > 50


@pytest.mark.parametrize(
    "name, examples",
    [
        ("hardsigmoid", [({}, [(8, 7, 7)]), ({}, [(12,)])]),
        ("silu", [({}, [(8, 7, 7)]), ({}, [(12,)])]),
        (
            "squeeze_excitation",
            [
                ({"squeeze_channels": 4}, [(8, 7, 7)]),
                ({"squeeze_channels": 2, "activation": "silu", "gate": "hardsigmoid"}, [(8, 5, 5)]),
                ({"squeeze_channels": 16, "activation": "silu"}, [(8, 3, 3)]),  # wider than its input: allowed
            ],
        ),
    ],
)
def test_the_new_layer_types_pass_the_contract_kit(name, examples):
    results = check_layer_type(name, default_toolkit(), examples)
    assert all(r.imported_as == name and r.same_hash_after_import for r in results)
    assert all(r.onnx_max_abs_err < 1e-4 for r in results)


def test_squeeze_excitation_cost_counts_both_convolutions():
    b = ArchitectureBuilder((32, 14, 14), layer_types=layer_types())
    arch = b.build(b.layer("squeeze_excitation", b.input, squeeze_channels=8, activation="silu"))
    cost = arch.cost.total
    assert cost.params == 32 * 8 + 8 + 8 * 32 + 32 and cost.macs == 2 * 32 * 8
    assert cost.weight_bytes == 4 * cost.params and cost.input_bytes == 2 * 4 * 32 * 14 * 14  # read twice
    assert cost.flops > 2 * 32 * 14 * 14 + 2 * cost.macs


@pytest.mark.parametrize("name", ["mobilenetv3-small", "efficientnet-b0"])
def test_torch_onnx_export_of_the_mobile_seeds_imports_their_blocks(name):
    """What torch.onnx.export writes (batch norm folded into the convolutions, dropout left out, the
    squeeze as a ReduceMean, silu as Sigmoid * x) imports to the same blocks and computes the same."""
    arch = get_seed(name)
    model = calibrated_torch(arch, seed=4)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, torch.zeros(1, *arch.input_shape), buffer, dynamo=False, opset_version=17)
    back, state = from_onnx(buffer.getvalue(), layer_types(), return_weights=True)
    folded = {"batchnorm2d", "dropout"}
    for layer in ("squeeze_excitation", "silu", "hardswish", "add", "conv2d"):
        assert sum(n.type == layer for n in back.nodes) == sum(n.type == layer for n in arch.nodes), layer
    assert len(back.nodes) == sum(n.type not in folded for n in arch.nodes)
    again = back.to_torch().eval()
    again.load_state_dict(state)
    x = torch.randn(1, *arch.input_shape)
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-4)

import onnx
import pytest

from conftest import get_seed


@pytest.mark.parametrize("seed", ["simple-cnn", "resnet-cifar", "mobilenetv2-cifar"])
def test_seed_torch_onnx_parity(seed):
    from na_toolkit.cli.arch import onnx_parity_max_abs_err

    arch = get_seed(seed)
    model = arch.to_torch().eval()
    proto = arch.to_onnx(model=model, batch_size=None)
    onnx.checker.check_model(proto)
    assert arch.output_shape == (10,)
    assert onnx_parity_max_abs_err(arch, model=model, proto=proto) <= 1e-4


def test_resnet20_cost_matches_the_paper():
    arch = get_seed("resnet-cifar")
    # He et al. 2016 report 0.27M parameters for ResNet-20; ~41M multiply-adds.
    assert 265_000 < arch.params < 280_000
    assert 40e6 < arch.cost.macs < 42e6


def test_hash_is_stable_and_equals_the_canonical_json_digest():
    import hashlib
    import json

    # pinned: the content hash keys every store and cache, so it must not drift between versions
    pinned = {
        "simple-cnn": "84d073b74e9b421d",
        "resnet-cifar": "b8eddb3ea34a139f",
        "mobilenetv2-cifar": "88da3debb4758a2a",
    }
    for name, digest in pinned.items():
        arch = get_seed(name)
        blob = json.dumps(arch.canonical(), separators=(",", ":"), sort_keys=True)
        assert hashlib.sha256(blob.encode()).hexdigest()[:16] == arch.hash == digest
        renamed = arch.with_nodes(arch.nodes, name="other")
        assert renamed.hash == arch.hash and renamed == arch


def test_cost_totals_equal_the_sum_over_nodes():
    arch = get_seed("mobilenetv2-cifar")
    cost = arch.cost
    for field in ("params", "macs", "flops", "weight_bytes", "input_bytes", "output_bytes"):
        assert getattr(cost.total, field) == sum(getattr(c, field) for c in cost.per_node.values())


@pytest.mark.parametrize("seed", ["simple-cnn", "resnet-cifar", "mobilenetv2-cifar"])
def test_json_round_trip_with_the_builtin_layer_types_alone(seed):
    """A script (or a worker) reads an architecture with the built-in layer types passed explicitly, no plugin
    manager involved: the same network, the same hash, the same cost."""
    from na_toolkit.builtin.layers import builtin_layer_types
    from na_toolkit.ir.architecture import Architecture

    arch = get_seed(seed)
    layer_types = builtin_layer_types()
    back = Architecture.from_json(arch.to_json(), layer_types=layer_types)
    assert back == arch and back.hash == arch.hash and back.params == arch.params
    assert back.layer_types is layer_types


@pytest.mark.parametrize("field, value", [("input_shape", (3, 32, 32)), ("nodes", ()), ("name", "x"), ("output", "a")])
def test_an_architecture_cannot_be_changed_after_it_is_built(field, value):
    # a change would leave its hash, shapes and costs describing another network
    import copy
    import pickle

    arch = get_seed("simple-cnn")
    before = (arch.hash, arch.params, arch.to_json())
    with pytest.raises(AttributeError, match=f"Architecture is immutable: {field} cannot be changed .*arch.with_nodes"):
        setattr(arch, field, value)
    with pytest.raises(AttributeError, match=f"Architecture is immutable: {field} cannot be deleted"):
        delattr(arch, field)
    assert (arch.hash, arch.params, arch.to_json()) == before
    # the ways to a changed network build a new one; copies and pickles are whole architectures
    renamed = arch.with_nodes(arch.nodes, name="renamed")
    assert renamed.name == "renamed" and renamed.hash == arch.hash and arch.name != "renamed"
    for again in (copy.deepcopy(arch), pickle.loads(pickle.dumps(arch))):
        assert again.hash == arch.hash and again.to_json() == before[2]


@pytest.mark.parametrize(
    "c, hw, attrs",
    [
        (16, 15, dict(filters=32, kernel=3, stride=2, padding=1)),  # strided, odd input
        (16, 16, dict(filters=32, kernel=3, groups=4, bias=True)),  # grouped
        (16, 16, dict(filters=32, kernel=5, groups=16, dilation=2)),  # depthwise x2 (channel multiplier), dilated
        (32, 8, dict(filters=64, kernel=1)),  # pointwise
        (8, 9, dict(filters=8, kernel=2)),  # even kernel: padding -1 is symmetric, the map loses a row and column
    ],
)
def test_conv_cost_matches_the_torch_module(c, hw, attrs):
    """Parameters as torch counts them, MACs = output elements x (C/groups) x k x k, FLOPs = 2 x MACs, fp32
    bytes; and the description's claim about padding -1 (same size at stride 1 only for odd kernels)."""
    import torch

    from conftest import layer_types
    from na_toolkit.ir.builder import ArchitectureBuilder

    b = ArchitectureBuilder((c, hw, hw), layer_types=layer_types())
    x = b.layer("conv2d", b.input, **attrs)
    arch = b.build()
    cost, shape = arch.cost.per_node[x], arch.shape(x)
    module = layer_types().get("conv2d").build_torch(arch.attrs(x), [(c, hw, hw)], shape)
    out = module(torch.zeros(1, c, hw, hw))
    assert shape == tuple(out.shape[1:])
    assert cost.params == sum(p.numel() for p in module.parameters())
    assert cost.macs == out.numel() * module.weight[0].numel() and cost.flops == 2 * cost.macs
    assert (cost.weight_bytes, cost.input_bytes, cost.output_bytes) == (4 * cost.params, 4 * c * hw**2, 4 * out.numel())
    if attrs.get("stride", 1) == 1 and attrs.get("padding", -1) == -1:
        assert shape[1:] == ((hw, hw) if attrs["kernel"] % 2 else (hw - 1, hw - 1))

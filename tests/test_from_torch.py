"""`na_toolkit.ir.from_torch(module, example_input, layer_types)`: torch.export, ATen ops lowered to the ONNX
ops the layer types import. Round trips of the seeds' own torch builds (IR -> torch -> from_torch: the same
hash, the same outputs), a hand-written nn.Module, and the errors: an unsupported op named with the line
of the module's code that calls it, a supported op in a form the IR cannot hold, input that is not a
module or a batch, a module torch.export cannot export."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import na_toolkit.ir
from conftest import REPO_ROOT, default_toolkit, get_seed, layer_types
from na_toolkit.errors import NAToolkitError, TorchImportError, TorchImportWarning
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.ir.torch_import import LOWERINGS, from_torch
from na_toolkit.ir.torch_lowerings import NOT_WRITTEN, WRITTEN_AS
from na_toolkit.plugins import load_toolkit
from test_large_seeds import calibrated_torch

#: the seeds whose torch build and export take seconds on one core
SLOW = {"resnet50", "efficientnet-b0"}
SEEDS = [
    pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
    for n in default_toolkit().seeds.names()
    if not n.startswith("nb201")  # the NB201 cell family: one network per spec, covered by its plugin
]


def test_from_torch_is_exported_from_the_ir_package():
    assert na_toolkit.ir.from_torch is from_torch
    assert "aten.conv2d.default" in LOWERINGS and "aten.silu.default" in LOWERINGS


@pytest.mark.parametrize("name", SEEDS)
def test_a_seeds_torch_build_imports_back_to_the_seed(name):
    arch = get_seed(name)
    small = arch.cost.macs < 1e8  # a GMAC network run twice on one core adds seconds, and no check: same hash
    model = calibrated_torch(arch, seed=2) if small else arch.to_torch(seed=2)
    model.train()  # imported in eval mode; the module's own mode is restored
    x = torch.randn(1, *arch.input_shape)
    back = from_torch(model, x, layer_types(), return_weights=small, check=small)  # a GMAC network: no check
    back, state = back if small else (back, None)
    assert back.hash == arch.hash and len(back.nodes) == len(arch.nodes)
    assert model.training and all(m.training for m in model.modules())
    if not small:
        return
    again = back.to_torch().eval()
    again.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(again(x), model.eval()(x))


class Hand(nn.Module):
    """What one writes by hand: inplace activations, functional calls, a view, a concat, a squeeze-excitation
    written inline (torchvision's form) and an exact GELU."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16, eps=1e-3))
        self.act = nn.Hardswish(inplace=True)
        self.dw = nn.Conv2d(16, 16, 5, padding=2, groups=16, bias=False)
        self.fc1, self.fc2 = nn.Conv2d(16, 8, 1), nn.Conv2d(8, 16, 1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem(x))
        y = F.silu(self.dw(x))
        s = F.adaptive_avg_pool2d(y, 1)
        y = y * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))), inplace=True)
        x = torch.cat([self.pool(x + y), F.avg_pool2d(F.relu6(x), 2)], dim=1)
        x = F.gelu(x.mean((2, 3))).view(x.size(0), -1)
        return self.head(F.dropout(x, 0.25, self.training))


def test_a_hand_written_module():
    model = Hand().eval()
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):  # statistics away from 0 / 1, as after training
                bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 32, 32)
    arch, state = from_torch(model, x, layer_types(), return_weights=True)
    types = [n.type for n in arch.nodes]
    assert types == [
        *("conv2d", "batchnorm2d", "hardswish", "conv2d", "silu", "squeeze_excitation", "add", "maxpool2d"),
        *("relu6", "avgpool2d", "concat", "global_avg_pool", "flatten", "gelu", "dropout", "linear"),
    ]  # the view of the (N, C) vector to (N, -1) computes nothing: no node
    se = next(n for n in arch.nodes if n.type == "squeeze_excitation")
    assert arch.attrs(se.id) == {"squeeze_channels": 8, "activation": "relu", "gate": "hardsigmoid"}
    assert arch.attrs(arch.nodes[1].id)["eps"] == 1e-3 and arch.attrs(arch.nodes[3].id)["groups"] == 16
    assert arch.attrs(arch.nodes[-2].id)["rate"] == 0.25 and arch.output_shape == (10,)
    assert arch.name == "Hand"
    again = arch.to_torch().eval()
    again.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-5)


class Flipping(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flip(1)  # FLIP-LINE


class AddsAScalar(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) + 1.0  # SCALAR-LINE


def _line(marker: str) -> int:
    return next(i for i, line in enumerate(open(__file__).read().splitlines(), 1) if line.endswith(marker))


def test_an_unsupported_op_is_named_with_its_source_line():
    with pytest.raises(TorchImportError) as info:
        from_torch(Flipping(), torch.randn(1, 3, 8, 8), layer_types())
    message = str(info.value)
    assert message.startswith("torch op aten.flip.default") and "unsupported op" in message
    assert f"test_from_torch.py:{_line('FLIP-LINE')}" in message and ".flip(1)" in message
    assert "\n" not in message and "nn.Conv2d" in message  # one line, listing what is supported
    assert "replace it in the model with supported ops, or export the module with torch.onnx" in message


def test_a_final_softmax_is_told_to_go_since_networks_output_logits():
    classifier = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Softmax(dim=1))
    with pytest.raises(TorchImportError) as info:
        from_torch(classifier, torch.randn(1, 3, 8, 8), layer_types())
    message = str(info.value)
    assert message.startswith("torch op aten.softmax.int") and "remove the final softmax" in message
    assert "register a layer type" not in message


def test_the_toolkit_given_for_the_layer_types_says_to_pass_its_layer_types():
    # from_torch(module, x, toolkit) raised AttributeError: 'Toolkit' object has no attribute 'items'
    with pytest.raises(TypeError, match=r"got the Toolkit itself: pass toolkit\.layer_types"):
        from_torch(nn.ReLU(), torch.randn(1, 3, 8, 8), default_toolkit())


def test_a_supported_op_in_a_form_the_layers_cannot_hold():
    with pytest.raises(TorchImportError) as info:
        from_torch(AddsAScalar(), torch.randn(1, 3, 8, 8), layer_types())
    message = str(info.value)
    assert "aten.add.Tensor" in message and f"test_from_torch.py:{_line('SCALAR-LINE')}" in message
    assert "cannot import it in this form" in message and "\n" not in message


class Branches(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) if x.sum() > 0 else torch.sigmoid(x)  # data-dependent control flow


@pytest.mark.parametrize(
    "module, example, match",
    [
        (lambda x: x, torch.randn(1, 3, 8, 8), "needs a torch.nn.Module"),
        (nn.ReLU(), torch.randn(3, 8), None),  # (N, F): a vector input is fine
        (nn.ReLU(), torch.randn(8, 8, 8), r"\(N, C, H, W\) or \(N, F\), got \(8, 8, 8\)"),
        (nn.ReLU(), [1.0, 2.0], "example input tensor"),
        (nn.ReLU(), torch.randn(1, 3, 8, 8, dtype=torch.float64), "float32"),
        (Branches(), torch.randn(1, 3, 8, 8), "torch.export could not export Branches"),
        (nn.Identity(), torch.randn(1, 3, 8, 8), "not computed from its input"),
    ],
)
def test_bad_input_is_one_clear_error(module, example, match):
    if match is None:
        assert from_torch(module, example, layer_types()).output_shape == (8,)
        return
    with pytest.raises(NAToolkitError, match=match) as info:
        from_torch(module, example, layer_types())
    assert "\n" not in str(info.value)


@pytest.fixture
def se_plugin(monkeypatch):
    """The example plugin imported from its source tree (tests/test_example_plugin.py installs it)."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "plugins" / "na_toolkit_example_se"))
    module = importlib.import_module("na_toolkit_example_se")
    yield module
    for name in [m for m in sys.modules if m.startswith("na_toolkit_example_se")]:
        del sys.modules[name]


def test_a_plugins_layer_type_imports_from_torch_through_its_onnx_importer(se_plugin):
    """No torch code in the plugin: its squeeze_excite block (mean, 1x1, relu, 1x1, sigmoid, scale) comes
    back from torch.export as one node, because its ONNX importer claims that pattern."""
    tk = load_toolkit(entry_points=False, extra_plugins=(se_plugin,))
    b = ArchitectureBuilder((8, 6, 6), layer_types=tk.layer_types)
    x = b.layer("squeeze_excite", b.layer("conv2d", b.input, filters=16), reduction=4)
    arch = b.build(b.layer("linear", b.layer("flatten", b.layer("global_avg_pool", x)), units=3))
    model = arch.to_torch(seed=0).eval()
    back, state = from_torch(model, torch.randn(1, 8, 6, 6), tk.layer_types, return_weights=True)
    assert back.hash == arch.hash and [n.type for n in back.nodes][1] == "squeeze_excite"
    again = back.to_torch().eval()
    again.load_state_dict(state)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-6)


class WithUnusedHeads(nn.Module):
    """A module that keeps what forward no longer uses: an auxiliary head never called, a head computed and
    dropped, a parameter of its own; one parameter of `body` is shared with `tied`."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.aux = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))  # 16 + 4 + 4 + 4 parameters
        self.dropped = nn.Conv2d(4, 2, 1)  # 8 + 2
        self.scale = nn.Parameter(torch.ones(1))
        self.tied = nn.Conv2d(3, 4, 3)
        self.tied.weight = self.body[0].weight  # used, through body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        self.dropped(y)
        return y


def test_submodules_forward_does_not_use_are_named_in_one_warning():
    model = WithUnusedHeads()
    with pytest.warns(TorchImportWarning) as caught:
        arch = from_torch(model, torch.randn(1, 3, 8, 8), layer_types())
    (warning,) = [w for w in caught if w.category is TorchImportWarning]
    message = str(warning.message)
    assert "'aux', 'dropped', 'scale', 'tied.bias' (43 of its 155 parameters)" in message and "\n" not in message
    assert "do not contribute to forward's output" in message and warning.filename == __file__
    assert arch.cost.params == 155 - 43


def test_a_module_that_uses_all_its_parameters_imports_without_a_warning():
    model = Hand().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", TorchImportWarning)
        arch = from_torch(model, torch.randn(1, 3, 16, 16), layer_types())
    assert arch.cost.params == sum(p.numel() for p in model.parameters())  # every parameter is in the network


def test_the_unsupported_op_error_lists_what_a_module_writes_not_aten_internals():
    """Every lowered ATen op is listed as a module's code writes it (a new lowering must say how), and the ops
    torch.export writes on its own (alias, lift_fresh_copy) are not listed."""
    lowered = {key.split(".")[1].rstrip("_") for key in LOWERINGS}
    written = {op for ops in WRITTEN_AS.values() for op in ops}
    assert written | NOT_WRITTEN == lowered and not written & NOT_WRITTEN
    with pytest.raises(TorchImportError) as info:
        from_torch(Flipping(), torch.randn(1, 3, 8, 8), layer_types())
    listed = str(info.value).split("from_torch imports ")[-1]
    assert listed.startswith("nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.ReLU,") and "torch.cat, view" in listed
    assert not any(internal in listed for internal in ("alias", "lift_fresh", "_native", "convolution", "aten"))


@pytest.mark.parametrize(
    "layer, fix",
    [
        (nn.MaxPool2d(2, ceil_mode=True), "use ceil_mode=False"),
        (nn.GELU(approximate="tanh"), "use nn.GELU()"),
    ],
)
def test_a_refused_variant_of_a_supported_op_says_which_to_use(layer, fix):
    # they named the problem alone ("ceil_mode=True pooling is not supported")
    model = nn.Sequential(nn.Conv2d(3, 4, 3), layer, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(TorchImportError, match=fix):
        from_torch(model, torch.randn(1, 3, 9, 9), layer_types())

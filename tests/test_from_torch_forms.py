"""`from_torch` on the forms a researcher's own network writes its blocks in: the squeeze-and-excitation of
the SENet paper's code (linear layers on the pooled vector, `view(b, c, 1, 1)`, `expand_as`), the pooled
vector made by `squeeze`, and what an `expand` cannot be. Each imports as the layer types the IR has, to
the original module's outputs and parameter count."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import layer_types
from na_toolkit.builtin.layers import _Activation
from na_toolkit.builtin.layers_mobile import builtin_registry
from na_toolkit.errors import TorchImportError, TorchImportWarning
from na_toolkit.ir.layers import LayerType
from na_toolkit.ir.torch_import import from_torch


class LinearSE(nn.Module):
    """Squeeze-and-excitation as SENet's code writes it: pool, to a vector, Linear -> act -> Linear -> gate,
    back to (N, C, 1, 1), scale; `to_vector` and `to_map` are the ways one writes the two reshapes."""

    def __init__(self, channels: int, to_vector: str, to_map: str, act: type[nn.Module], gate: type[nn.Module]):
        super().__init__()
        self.to_vector, self.to_map = to_vector, to_map
        self.fc = nn.Sequential(nn.Linear(channels, 2), act(), nn.Linear(2, channels), gate())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        if self.to_vector == "view":
            s = F.adaptive_avg_pool2d(x, 1).view(b, c)
        elif self.to_vector == "mean":
            s = x.mean((2, 3))
        else:
            s = F.adaptive_avg_pool2d(x, 1).squeeze(-1).squeeze(-1)
        s = self.fc(s)
        if self.to_map == "view_expand_as":
            return x * s.view(b, c, 1, 1).expand_as(x)
        return s.unsqueeze(-1).unsqueeze(-1) * x


class Net(nn.Module):
    def __init__(self, se: nn.Module, head: str = "flatten"):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.se, self.head = se, head
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(F.relu6(self.conv(x)))
        pooled = F.adaptive_avg_pool2d(x, 1)
        return self.fc(pooled.squeeze(-1).squeeze(-1) if self.head == "squeeze" else torch.flatten(pooled, 1))


def _imports_to_the_same_outputs(model: nn.Module):
    model = model.eval()
    x = torch.randn(2, 3, 6, 6)
    arch, state = from_torch(model, x, layer_types(), return_weights=True)
    again = arch.to_torch().eval()
    again.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-6)
    assert arch.params == sum(p.numel() for p in model.parameters())
    return arch


@pytest.mark.parametrize(
    "to_vector, to_map, act, gate, attrs",
    [
        ("view", "view_expand_as", nn.ReLU, nn.Sigmoid, ("relu", "sigmoid")),  # SENet's own code
        ("mean", "unsqueeze", nn.SiLU, nn.Sigmoid, ("silu", "sigmoid")),  # EfficientNet's
        ("squeeze", "view_expand_as", nn.ReLU, nn.Hardsigmoid, ("relu", "hardsigmoid")),  # MobileNetV3's
    ],
)
def test_a_squeeze_excitation_written_with_linear_layers_is_one_node(to_vector, to_map, act, gate, attrs):
    # before: view(b, c, 1, 1) was "Reshape is supported as a flatten to (N, -1) only", expand_as and
    # squeeze were unsupported ops
    arch = _imports_to_the_same_outputs(Net(LinearSE(8, to_vector, to_map, act, gate)))
    assert [n.type for n in arch.nodes] == [
        *("conv2d", "relu6", "squeeze_excitation", "global_avg_pool", "flatten", "linear")
    ]
    se = arch.nodes[2]
    assert arch.attrs(se.id) == {"squeeze_channels": 2, "activation": attrs[0], "gate": attrs[1]}


def test_a_pooled_vector_made_by_squeeze_is_a_flatten():
    arch = _imports_to_the_same_outputs(Net(nn.Identity(), head="squeeze"))
    assert [n.type for n in arch.nodes] == ["conv2d", "relu6", "global_avg_pool", "flatten", "linear"]


class ExpandsIntoACat(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return torch.cat([x, s.expand_as(x)], dim=1)  # EXPAND-LINE


def test_an_expand_that_a_broadcast_cannot_replace_is_named_with_what_to_do():
    with pytest.raises(TorchImportError) as info:
        from_torch(ExpandsIntoACat(), torch.randn(1, 3, 4, 4), layer_types())
    message = str(info.value)
    assert message.startswith("torch op aten.expand_as.default") and "`return torch.cat(" in message
    assert "aten.cat.default" in message and "drop the expand and let the product broadcast" in message


class BiaslessSE(nn.Module):
    def __init__(self, linear: bool):
        super().__init__()
        self.linear = linear
        layer = (lambda i, o: nn.Linear(i, o, bias=False)) if linear else (lambda i, o: nn.Conv2d(i, o, 1, bias=False))
        self.fc1, self.fc2 = layer(8, 2), layer(2, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3)) if self.linear else x.mean((2, 3), keepdim=True)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * (s[:, :, None, None] if self.linear else s)


@pytest.mark.parametrize("linear", [False, True])
def test_a_squeeze_excitation_without_biases_says_so(linear):
    # before: "torch op aten.mul.Tensor ... ONNX op 'Mul' is supported, but not in this form (inputs
    # ['conv2d', 'sigmoid'], ...); the layer types that import it (gelu, zero) do not take it so"
    with pytest.raises(TorchImportError) as info:
        from_torch(Net(BiaslessSE(linear)), torch.randn(1, 3, 4, 4), layer_types())
    message = str(info.value)
    assert "in module 'se' (BiaslessSE)" in message and "squeeze-and-excitation block (8 -> 2 -> 8 channels)" in message
    assert ("linear layers" if linear else "1x1 convolutions") in message and "give both bias=True" in message


class HSigmoid(nn.Module):
    """h_sigmoid as MobileNetV3 code wrote it before torch had nn.Hardsigmoid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0, inplace=True) / 6.0


class HSwish(nn.Module):
    def __init__(self, form: str):
        super().__init__()
        self.form, self.sigmoid = form, HSigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "x * h_sigmoid(x)":
            return x * self.sigmoid(x)
        if self.form == "x * relu6(x + 3) / 6":
            return x * F.relu6(x + 3) / 6
        return torch.clamp(x + 3, 0, 6) * (1 / 6) * x  # clamp, a product by 1/6, x last


class HandSE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(8, 2), nn.ReLU(inplace=True), nn.Linear(2, 8), HSigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.size()
        return x * self.fc(F.adaptive_avg_pool2d(x, 1).view(b, c)).view(b, c, 1, 1)


@pytest.mark.parametrize(
    "act, layer_type",
    [
        (HSigmoid(), "hardsigmoid"),
        (HSwish("x * h_sigmoid(x)"), "hardswish"),
        (HSwish("x * relu6(x + 3) / 6"), "hardswish"),
        (HSwish("clamp(x + 3, 0, 6) * (1 / 6) * x"), "hardswish"),
    ],
)
def test_a_written_out_hard_activation_is_its_layer(act, layer_type):
    # before: "torch op aten.div.Tensor ... unsupported op" (and clamp too)
    class WithAct(Net):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(act(self.conv(x)), 1), 1))

    arch = _imports_to_the_same_outputs(WithAct(nn.Identity()))
    assert [n.type for n in arch.nodes] == ["conv2d", layer_type, "global_avg_pool", "flatten", "linear"]


def test_a_squeeze_excitation_gated_by_a_written_out_hard_sigmoid_is_one_node():
    arch = _imports_to_the_same_outputs(Net(HandSE()))
    se = next(n for n in arch.nodes if n.type == "squeeze_excitation")
    assert arch.attrs(se.id) == {"squeeze_channels": 2, "activation": "relu", "gate": "hardsigmoid"}
    assert len(arch.nodes) == 6


class PoolsTheWholeMap(nn.Module):
    """pytorch-cifar's head: F.avg_pool2d(out, 4) on the last 4x4 map; here a 16x16 one."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.avg_pool2d(F.relu(self.conv(x)), 16)
        return self.fc(out.view(out.size(0), -1))


def test_an_average_pool_over_a_whole_map_wider_than_a_pooling_kernel_is_a_global_pool():
    # before: "cannot be imported as avgpool2d: attribute 'kernel' must be <= 15, got 16"
    model = PoolsTheWholeMap().eval()
    x = torch.randn(2, 3, 16, 16)
    arch, state = from_torch(model, x, layer_types(), return_weights=True)
    assert [n.type for n in arch.nodes] == ["conv2d", "relu", "global_avg_pool", "flatten", "linear"]
    again = arch.to_torch().eval()
    again.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-6)


class SigmoidReadAsTanh(_Activation):
    """A plugin layer type whose importer claims ONNX Sigmoid but whose torch build is a tanh: a wrong
    importer, as a third party may write one."""

    name, description, torch_class, onnx_op, onnx_ops = "tanh_from_sigmoid", "tanh", "Tanh", "Tanh", ("Sigmoid",)


def test_an_import_that_computes_something_else_is_an_error_not_another_network():
    # before: from_torch returned the tanh network without a word, and a search would have searched from it
    registry = builtin_registry()
    registry.current_plugin = "wrong_plugin"
    registry.add(SigmoidReadAsTanh())
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sigmoid(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    with pytest.raises(TorchImportError) as info:
        from_torch(model, torch.randn(1, 3, 6, 6), registry)
    message = str(info.value)
    assert message.startswith("the imported network does not compute what Sequential does: on the example input")
    assert "an op was lowered or imported wrongly" in message and "\n" not in message
    assert model.training  # the module's own mode is restored after the check too


class PReLU(LayerType):
    """A plugin's layer type for an activation the toolkit has none for: PReLU, one learned slope per channel."""

    name, description, onnx_ops, has_weights = "prelu_plugin", "prelu", ("PRelu",), True

    def build_torch(self, attrs, in_shapes, out_shape):
        return nn.PReLU(in_shapes[0][0])

    def import_onnx(self, ctx, onnx_node):
        slopes = ctx.constant(onnx_node.input[1])
        ctx.add(self.name, [ctx.value(onnx_node.input[0])], {}, {"weight": slopes}, output=onnx_node.output[0])
        return True


def _prelu_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.PReLU(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))


def test_an_activation_without_a_built_in_layer_type_imports_through_a_plugins():
    # before: "torch op aten.prelu.default: unsupported op; ... register a layer type that imports it",
    # and a plugin's layer type importing ONNX PRelu did not help: the ATen op had no lowering
    registry = builtin_registry()
    registry.current_plugin = "prelu_plugin"
    registry.add(PReLU())
    model = _prelu_net()
    nn.init.uniform_(model[1].weight, -1.0, 1.0)  # slopes of their own, so the check sees them
    arch = from_torch(model.eval(), torch.randn(2, 3, 6, 6), registry)  # checked against the module
    assert [n.type for n in arch.nodes] == ["conv2d", "prelu_plugin", "flatten", "linear"]
    with pytest.raises(TorchImportError) as info:
        from_torch(_prelu_net(), torch.randn(1, 3, 6, 6), layer_types())
    message = str(info.value)
    assert message.startswith("torch op aten.prelu.default") and "in module '1' (PReLU)" in message
    assert "no layer type imports the ONNX op it is lowered to (unsupported ONNX op 'PRelu'" in message
    # what to do: a leaky relu of its slope, or a layer type of one's own
    assert "replace nn.PReLU with nn.LeakyReLU(negative_slope=s)" in message
    assert "register a layer type that imports it" in message


def test_an_op_without_a_lowering_says_a_layer_type_cannot_take_it_here_but_through_onnx():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SELU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    with pytest.raises(TorchImportError) as info:
        from_torch(model, torch.randn(1, 3, 6, 6), layer_types())
    message = str(info.value)
    assert message.startswith("torch op aten.selu.default") and "from_torch has no lowering of it" in message
    assert "torch.onnx.export(..., dynamo=False) and import that file" in message


def _head(*middle: nn.Module, channels: int = 8) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), *middle, nn.Flatten())


@pytest.mark.parametrize(
    ("pool", "pooled", "layer"),
    [
        (nn.AdaptiveMaxPool2d(1), 1, "maxpool2d"),
        (nn.AdaptiveMaxPool2d(2), 2, "maxpool2d"),
        (nn.AdaptiveAvgPool2d(2), 2, "avgpool2d"),
        (nn.AdaptiveAvgPool2d(1), 1, "global_avg_pool"),
    ],
    ids=["max-1", "max-2", "avg-2", "avg-1"],
)
def test_adaptive_pooling_to_a_divisor_imports_as_its_plain_pooling(pool, pooled, layer):
    # before: AdaptiveMaxPool2d was an unsupported op and AdaptiveAvgPool2d(2) "supported to 1x1 only", though
    # the ONNX route (torch.onnx.export, then arch import) imported both
    module = nn.Sequential(*_head(pool), nn.Linear(8 * pooled * pooled, 3)).eval()
    arch = from_torch(module, torch.randn(2, 1, 8, 8), layer_types())  # parity checked against the module
    assert layer in [n.type for n in arch.nodes]


def test_adaptive_pooling_to_a_size_that_does_not_divide_says_what_to_do():
    module = nn.Sequential(*_head(nn.AdaptiveAvgPool2d(3)), nn.Linear(72, 3)).eval()
    with pytest.raises(TorchImportError, match=r"from 8x8 to 3x3 is not supported: .* use nn.AvgPool2d"):
        from_torch(module, torch.randn(1, 1, 8, 8), layer_types())


@pytest.mark.parametrize("drop", [nn.Dropout2d(0.2), nn.AlphaDropout(0.1), nn.FeatureAlphaDropout(0.1)])
def test_a_channel_dropout_imports_as_no_layer_and_says_so(drop):
    # before: "unsupported op aten.feature_dropout.default"; the ONNX route drops it silently (eval mode)
    module = nn.Sequential(*_head(drop, nn.AdaptiveAvgPool2d(1)), nn.Linear(8, 3)).eval()
    with pytest.warns(TorchImportWarning, match=rf"nn.{type(drop).__name__}\(p=0.\d\) .* imported as no layer"):
        arch = from_torch(module, torch.randn(2, 1, 8, 8), layer_types())
    assert "dropout" not in [n.type for n in arch.nodes] and arch.params == sum(p.numel() for p in module.parameters())


def test_prelu_is_not_listed_among_what_the_built_ins_import():
    module = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Softmax(dim=1)).eval()
    with pytest.raises(TorchImportError) as info:
        from_torch(module, torch.randn(1, 1, 6, 6), layer_types())
    assert "from_torch imports" in str(info.value) and "nn.PReLU" not in str(info.value)
    assert "nn.AdaptiveMaxPool2d" in str(info.value) and "nn.Dropout2d" in str(info.value)

"""The activations of the networks users bring (na_toolkit.builtin.layers_activations): leaky_relu, elu,
tanh, softplus, mish. Each passes the plugin kit's layer check; a user's torch CNN written with them (modules
and functional forms) imports with `from_torch`, is costed by the roofline and the learned time model's
kernels, exports to ONNX equal to the module in ONNX Runtime; torch.onnx's own export of it imports
(`arch import`); a PReLU is refused saying what to do."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn
from torch.nn import functional as F

from conftest import default_toolkit, layer_types
from na_toolkit.builtin.layers_activations import ACTIVATION_LAYER_TYPES
from na_toolkit.embedding import ArchitectureTokenizer
from na_toolkit.embedding.tokenizer import UNKNOWN_TYPE
from na_toolkit.errors import OnnxImportError, TorchImportError
from na_toolkit.ir.architecture import Architecture
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.ir.layers import LayerTypeRegistry
from na_toolkit.ir.torch_import import from_torch
from na_toolkit.testing import check_layer_type
from na_toolkit.timemodels.kernels import kernels_of
from na_toolkit.timemodels.learned import KernelLatencyModel
from na_toolkit.timemodels.roofline import RooflineTimeModel

NEW = ("leaky_relu", "elu", "tanh", "softplus", "mish")


class UserNet(nn.Module):
    """A user's CNN, each activation once as a module and once as its function."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else 6, 6, 3, padding=1) for i in range(5))
        self.bn = nn.BatchNorm2d(6)
        self.acts = nn.ModuleList([nn.LeakyReLU(0.1), nn.ELU(), nn.Tanh(), nn.Softplus(), nn.Mish()])
        self.head = nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.acts[0](self.bn(self.convs[0](x)))
        x = F.leaky_relu(self.convs[1](x), 0.2)
        x = torch.tanh(self.acts[1](x))
        x = F.elu(self.convs[2](x), alpha=0.5)
        x = F.mish(self.acts[2](x))
        x = self.acts[4](F.softplus(self.convs[3](x)))
        x = self.acts[3](self.convs[4](x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


#: what UserNet imports as (its batch norm kept: from_torch does not fold it)
USER_TYPES = [
    *("conv2d", "batchnorm2d", "leaky_relu", "conv2d", "leaky_relu", "elu", "tanh", "conv2d", "elu", "tanh"),
    *("mish", "conv2d", "softplus", "mish", "conv2d", "softplus", "global_avg_pool", "flatten", "linear"),
]


def _user_net() -> nn.Module:
    torch.manual_seed(0)
    model = UserNet().eval()
    with torch.no_grad():  # statistics of its own, so that the batch norm is not the identity
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model


def _inputs() -> np.ndarray:
    """Inputs of every sign and magnitude: softplus's threshold (x > 20 is x in torch) is crossed too."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.standard_normal((2, 3, 8, 8)), 30 * rng.standard_normal((2, 3, 8, 8))]).astype(
        np.float32
    )


def _ort(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))


@pytest.fixture(scope="module")
def imported() -> tuple[nn.Module, Architecture, dict]:
    model = _user_net()
    arch, state = from_torch(model, torch.from_numpy(_inputs()[:1]), layer_types(), return_weights=True)
    return model, arch, state


# ---- the plugin kit's layer check on each ---------------------------------------------------------------
@pytest.mark.parametrize(
    "name,attrs",
    [("leaky_relu", {"negative_slope": 0.2}), ("elu", {"alpha": 0.5}), ("tanh", {}), ("softplus", {}), ("mish", {})],
)
def test_each_passes_the_layer_type_check(name, attrs):
    # before: no such layer type ("unknown layer type 'leaky_relu'"); tests/test_layer_contract.py checks the
    # defaults on a feature map, this the attributes a user's network sets, on a map and a vector
    results = check_layer_type(name, default_toolkit(), examples=[(attrs, [(4, 5, 5)]), (attrs, [(12,)])])
    for result in results:
        assert result.onnx_max_abs_err <= 1e-4 and result.imported_as == name and result.same_hash_after_import
        n = int(np.prod(result.out_shape))  # FLOPs: the ONNX ops per element (mish: softplus, tanh, product)
        assert result.cost.params == 0 and result.cost.flops == (3 if name == "mish" else 1) * n
        assert result.cost.input_bytes == result.cost.output_bytes == 4 * n


def test_they_are_registered_after_the_mobile_ones_mish_after_softplus():
    names = layer_types().names()
    assert list(names)[-len(NEW) :] == list(NEW) == [cls.name for cls in ACTIVATION_LAYER_TYPES]
    assert names.index("mish") > names.index("softplus")  # mish's importer is asked first for a Softplus


# ---- a user's network, end to end ----------------------------------------------------------------------
def test_a_user_network_imports_from_torch_and_its_onnx_equals_it(imported):
    # before: "torch op aten.leaky_relu.default ...: no layer type imports the ONNX op it is lowered to
    # (unsupported ONNX op 'LeakyRelu'; ...)", and aten.mish had no lowering at all
    model, arch, state = imported
    assert [n.type for n in arch.nodes] == USER_TYPES
    slopes = [arch.attrs(n.id)["negative_slope"] for n in arch.nodes if n.type == "leaky_relu"]
    alphas = [arch.attrs(n.id)["alpha"] for n in arch.nodes if n.type == "elu"]
    assert slopes == [0.1, 0.2] and alphas == [1.0, 0.5]
    assert arch.cost.total.params == sum(p.numel() for p in model.parameters())
    rebuilt = arch.to_torch().eval()
    rebuilt.load_state_dict(state)
    x = _inputs()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = _ort(arch.to_onnx(model=rebuilt, batch_size=None), x)
    assert _rel_err(got, want) <= 1e-5


def test_a_user_network_is_costed_by_the_roofline_and_the_kernels(imported):
    _model, arch, _state = imported
    est = RooflineTimeModel("x86-cpu", hardware_registry=default_toolkit().hardware).estimate(arch)
    assert est.latency_ms > 0 and est.train_step_ms is not None and est.train_step_ms > est.latency_ms
    kinds = {kernel.layers[0][0]: kernel.kind for kernel in kernels_of(arch)}
    assert all(kinds[name] == "act" for name in NEW)
    act_codes = {k.layers[0][0]: k.feature("act") for k in kernels_of(arch) if k.kind == "act"}
    assert len(set(act_codes.values())) == len(NEW)  # each its own code


def test_a_learned_model_that_never_saw_them_predicts_them():
    # fitted on kernels of networks without them (an `act` kind of gelu and hardswish only): their act codes
    # are new to it, and a kind it has no model of falls back on the cost; every prediction finite and > 0
    train = []
    for width in (4, 8, 16, 32):
        b = ArchitectureBuilder((3, 8, 8), layer_types=layer_types())
        x = b.layer("hardswish", b.layer("conv2d", b.input, filters=width))
        b.layer("gelu", b.layer("conv2d", x, filters=width))
        train.extend(kernels_of(b.build()))
    y_ms = np.array([1e-3 + 1e-6 * k.feature("flops") for k in train])
    model = KernelLatencyModel(boost=False, calibrate=False).fit_kernels(train, y_ms)
    assert "act" in model.kinds_
    b = ArchitectureBuilder((3, 8, 8), layer_types=layer_types())
    x = b.layer("conv2d", b.input, filters=8)
    for name in NEW:
        x = b.layer(name, x)
    kernels = kernels_of(b.build())
    pred = model.predict_kernels(kernels)
    assert [k.kind for k in kernels] == ["conv", *["act"] * len(NEW)]
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)


def test_a_tokenizer_without_them_reads_them_as_an_unknown_type(imported):
    # the network embedding of a predictor saved before these types existed: an unknown layer type token
    _model, arch, _state = imported
    old = LayerTypeRegistry()
    for name in layer_types().names():
        if name not in NEW:
            old.add(layer_types().get(name))
    rows = ArchitectureTokenizer.for_registry(old).encode(arch)
    types = [n.type for n in arch.nodes]
    assert all(rows[i, 0] == UNKNOWN_TYPE for i, t in enumerate(types) if t in NEW)
    assert all(rows[i, 0] != UNKNOWN_TYPE for i, t in enumerate(types) if t not in NEW)
    rows = ArchitectureTokenizer.for_registry(layer_types()).encode(arch)
    assert not np.any(rows[:, 0] == UNKNOWN_TYPE)


def test_torch_onnx_export_of_a_user_network_imports(imported):
    # `arch import` of torch.onnx.export's file: LeakyRelu, Elu, Tanh, Softplus and mish written out as
    # Softplus -> Tanh -> Mul (opset 17 has no Mish); the exporter folds the batch norm into the conv
    model = imported[0]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            torch.from_numpy(_inputs()[:1]),
            buf,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            dynamic_axes={"input": {0: "N"}},
        )
    proto = onnx.load_from_string(buf.getvalue())
    assert {"LeakyRelu", "Elu", "Tanh", "Softplus", "Mul"} <= {n.op_type for n in proto.graph.node}
    arch, state = Architecture.from_onnx(proto, layer_types(), return_weights=True)
    assert [n.type for n in arch.nodes] == [t for t in USER_TYPES if t != "batchnorm2d"]
    rebuilt = arch.to_torch().eval()
    rebuilt.load_state_dict(state)
    x = _inputs()
    with torch.no_grad():
        got = rebuilt(torch.from_numpy(x)).numpy()
    assert _rel_err(got, _ort(proto, x)) <= 1e-5


def _graph(nodes: list, opset: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 4, 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 4, 4])
    graph = helper.make_graph(nodes, "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_mish_op_of_opset_18_and_a_softplus_tanh_that_is_not_mish():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32) * 4
    proto = _graph([helper.make_node("Mish", ["input"], ["output"])], 18)
    arch = Architecture.from_onnx(proto, layer_types())
    assert [n.type for n in arch.nodes] == ["mish"]
    with torch.no_grad():
        assert _rel_err(arch.to_torch()(torch.from_numpy(x)).numpy(), _ort(proto, x)) <= 1e-5
    # tanh(softplus(x)) times something other than x: a softplus then a tanh, then the product of the two
    proto = _graph(
        [
            helper.make_node("Softplus", ["input"], ["s"]),
            helper.make_node("Tanh", ["s"], ["t"]),
            helper.make_node("Add", ["t", "s"], ["output"]),
        ],
        17,
    )
    arch = Architecture.from_onnx(proto, layer_types())
    assert [n.type for n in arch.nodes] == ["softplus", "tanh", "add"]
    with torch.no_grad():
        assert _rel_err(arch.to_torch()(torch.from_numpy(x)).numpy(), _ort(proto, x)) <= 1e-5


# ---- PReLU: refused, saying what to do -----------------------------------------------------------------
def _prelu_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.PReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 2)).eval()


def test_prelu_is_refused_naming_what_to_do():
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(TorchImportError) as info:
        from_torch(_prelu_net(), x, layer_types())
    message = str(info.value)
    assert message.startswith("torch op aten.prelu.default") and "unsupported ONNX op 'PRelu'" in message
    assert "replace nn.PReLU with nn.LeakyReLU(negative_slope=s)" in message
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_prelu_net(), x, buf, dynamo=False, opset_version=17)
    with pytest.raises(OnnxImportError, match=r"unsupported ONNX op 'PRelu'; PReLU's slopes are learned weights"):
        Architecture.from_onnx(buf.getvalue(), layer_types())


# ---- weight inheritance: they are channel-wise ------------------------------------------------------------
@pytest.mark.parametrize("name", NEW)
def test_widening_a_conv_before_one_inherits_its_weights_exactly(name):
    # before (had they existed): an activation outside CHANNELWISE stops the channel map, so widening the
    # conv before it re-initialised the layers after it ("none") instead of Net2Wider's exact child
    from na_toolkit.evaluation.inherit import inherit_state
    from na_toolkit.moves import Move

    tk = default_toolkit()
    b = ArchitectureBuilder((3, 6, 6), layer_types=tk.layer_types)
    x = b.layer(name, b.layer("batchnorm2d", b.layer("conv2d", b.input, filters=4)))
    b.layer("linear", b.layer("flatten", b.layer("global_avg_pool", b.layer("conv2d", x, filters=5))), units=3)
    arch = b.build()
    model = arch.to_torch(seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1.0, 1.0)
    state = model.state_dict()
    move = Move("scale", {"position": 0, "attribute": "channels", "value": 8})
    child = move.apply(arch, tk.moves)
    got = inherit_state(arch, state, (move.to_json(),), child, tk.moves)
    assert got.preservation == "exact"
    inputs = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    parent_model, child_model = arch.to_torch().eval(), child.to_torch().eval()
    parent_model.load_state_dict(state)
    child_model.load_state_dict(got.state)
    with torch.no_grad():
        assert float((child_model(inputs) - parent_model(inputs)).abs().max()) <= 1e-5

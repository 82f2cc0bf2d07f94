"""ONNX import: round trips through torch.onnx.export (batch norm folded into conv) and through our own
to_onnx, hand-written graphs of the other supported forms, a plugin's import hook, and the errors."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import na_toolkit
from conftest import default_toolkit, get_seed, layer_types
from na_toolkit.errors import OnnxImportError
from na_toolkit.ir.architecture import Architecture
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.ir.layers import LayerType
from na_toolkit.ir.onnx_import import from_onnx, importers_by_op
from na_toolkit.plugins import load_toolkit

SEEDS = ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")


def every_activation() -> Architecture:
    b = ArchitectureBuilder((3, 8, 8), layer_types=layer_types(), name="every-activation")
    x = b.layer("conv2d", b.input, filters=8, kernel=3)
    x = b.layer("batchnorm2d", x)
    y = b.layer("gelu", x)
    y = b.layer("hardswish", y)
    y = b.layer("relu6", y)
    y = b.layer("sigmoid", y)
    y = b.layer("add", y, b.layer("zero", x), x)
    y = b.layer("avgpool2d", y, kernel=3, stride=1, padding=1)
    y = b.layer("maxpool2d", y)
    y = b.layer("batchnorm2d", y)  # after a pool: not folded
    y = b.layer("conv2d", y, filters=8, kernel=3, groups=8, padding=0, bias=True)
    y = b.layer("concat", y, y)
    y = b.layer("global_avg_pool", y)
    y = b.layer("flatten", y)
    y = b.layer("dropout", y, rate=0.2)
    y = b.layer("identity", y)
    b.layer("linear", y, units=5)
    return b.build()


def _trained_looking(arch: Architecture, seed: int = 0) -> torch.nn.Module:
    """A torch build in eval mode with batch-norm statistics far from 0/1, so folding them matters."""
    model = arch.to_torch(seed=seed).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=g) * 2 - 1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.rand(c, generator=g) - 0.5)
    return model


def torch_export(model: torch.nn.Module, input_shape, dynamic: bool = False) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            torch.zeros(1, *input_shape),
            buf,
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            opset_version=17,
            dynamic_axes={"input": {0: "n"}, "output": {0: "n"}} if dynamic else None,
        )
    return onnx.load_from_string(buf.getvalue())


def _imported_model(proto, lt=None):
    arch, state = from_onnx(proto, lt or layer_types(), return_weights=True)
    model = arch.to_torch().eval()
    model.load_state_dict(state)  # strict: every parameter and buffer is there
    return arch, model


def _max_err(a: torch.nn.Module, b: torch.nn.Module, input_shape, n: int = 2) -> float:
    x = torch.randn(n, *input_shape, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


@pytest.mark.parametrize("name", (*SEEDS, "every-activation"))
def test_torch_export_round_trip_folds_batchnorm(name):
    arch = every_activation() if name == "every-activation" else get_seed(name)
    model = _trained_looking(arch)
    imported, back = _imported_model(torch_export(model, arch.input_shape))
    assert imported.input_shape == arch.input_shape and imported.output_shape == arch.output_shape
    assert _max_err(model, back, arch.input_shape) <= 1e-4
    # eval-mode export folds every conv -> batchnorm pair: those convs come back with a bias
    folded = [n for n in arch.nodes if n.type == "batchnorm2d" and arch.node(n.inputs[0]).type == "conv2d"]
    bns = [n for n in imported.nodes if n.type == "batchnorm2d"]
    assert len(bns) == sum(1 for n in arch.nodes if n.type == "batchnorm2d") - len(folded)
    assert sum(1 for n in imported.nodes if n.type == "conv2d" and imported.attrs(n.id)["bias"]) >= len(folded)
    assert not any(n.type in ("dropout", "identity") for n in imported.nodes)  # eval export drops them


def test_a_torch_export_read_from_a_file_is_named_after_the_file(tmp_path):
    # torch names every exported graph "main_graph": from a file, the file's stem says which network it is
    arch = get_seed("simple-cnn")
    proto = torch_export(arch.to_torch().eval(), arch.input_shape)
    assert proto.graph.name == "main_graph"
    onnx.save(proto, tmp_path / "my-net.onnx")
    assert from_onnx(tmp_path / "my-net.onnx", layer_types()).name == "my-net"
    assert from_onnx(str(tmp_path / "my-net.onnx"), layer_types()).hash == from_onnx(proto, layer_types()).hash
    proto.graph.name = "resnet-ish"  # a name of the model's own is kept
    onnx.save(proto, tmp_path / "other.onnx")
    assert from_onnx(tmp_path / "other.onnx", layer_types()).name == "resnet-ish"


@pytest.mark.parametrize("name", (*SEEDS, "every-activation"))
def test_our_to_onnx_round_trip(name):
    arch = every_activation() if name == "every-activation" else get_seed(name)
    model = _trained_looking(arch, seed=1)
    imported, back = _imported_model(arch.to_onnx(model=model, batch_size=None))
    assert _max_err(model, back, arch.input_shape) <= 1e-5
    # the same network, dropout included (written as an ONNX Dropout with its ratio)
    assert [n.type for n in imported.nodes] == [n.type for n in arch.nodes]
    assert [imported.shape(m.id) for m in imported.nodes] == [arch.shape(n.id) for n in arch.nodes]
    assert imported.hash == arch.hash


def test_random_move_networks_import_from_both_exporters():
    ops = [default_toolkit().moves.get(n) for n in ("insert_conv", "insert_add", "scale", "remove")]
    rng = np.random.default_rng(5)
    for seed in SEEDS:
        arch = get_seed(seed)
        for _ in range(8):
            for k in rng.permutation(len(ops)):
                params = ops[k].sample(arch, rng)
                if params is not None:
                    arch = ops[k].apply(arch, **params)
                    break
        model = _trained_looking(arch, seed=2)
        for proto in (torch_export(model, arch.input_shape, dynamic=True), arch.to_onnx(model=model)):
            _imported, back = _imported_model(proto)
            assert _max_err(model, back, arch.input_shape) <= 1e-4


def test_file_path_and_bytes_sources(tmp_path):
    arch = get_seed("simple-cnn")
    proto = arch.to_onnx()
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    for source in (path, str(path), proto.SerializeToString(), proto):
        assert from_onnx(source, layer_types()).output_shape == (10,)
    assert Architecture.from_onnx(path, layer_types()).hash == from_onnx(proto, layer_types=layer_types()).hash


# ---- hand-written graphs: forms torch does not produce from our layers --------------------------------
def _f32(a):
    return np.asarray(a, dtype=np.float32)


def _graph(nodes, inits, in_shape, out_shape, opset=17):
    g = helper.make_graph(
        nodes,
        "hand",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", *in_shape])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", *out_shape])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _ort_vs_import(proto, in_shape):
    x = np.random.default_rng(0).standard_normal((3, *in_shape)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[
        0
    ]
    arch, model = _imported_model(proto)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4
    return arch


def test_matmul_add_reducemean_sum_clip_dropout_gelu_and_mul_by_zero():
    rng = np.random.default_rng(1)
    inits = {
        "w": _f32(rng.standard_normal((6, 4, 3, 3))),
        "lo": _f32(0.0),
        "axes": np.array([2, 3], dtype=np.int64),
        "mm": _f32(rng.standard_normal((6, 5))),
        "b": _f32(rng.standard_normal(5)),
        "ratio": _f32(0.25),
        "zero": _f32(0.0),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c", "lo"], ["r"], name="clip_relu"),  # [0, inf): relu
        helper.make_node("Gelu", ["r"], ["g"], name="gelu"),
        helper.make_node("ReduceMean", ["g", "axes"], ["m"], name="mean", keepdims=0),  # -> (N, 6)
        helper.make_node("MatMul", ["m", "mm"], ["mmo"], name="matmul"),
        helper.make_node("Add", ["mmo", "b"], ["lin"], name="bias"),
        helper.make_node("Dropout", ["lin", "ratio"], ["d"], name="drop"),
        helper.make_node("Mul", ["d", "zero"], ["z"], name="zero"),
        helper.make_node("Sum", ["d", "z", "lin"], ["output"], name="sum3"),
    ]
    arch = _ort_vs_import(_graph(nodes, inits, (4, 6, 6), (5,), opset=20), (4, 6, 6))
    types = [n.type for n in arch.nodes]
    assert types == ["conv2d", "relu", "gelu", "global_avg_pool", "flatten", "linear", "dropout", "zero", "add"]
    lin = next(n.id for n in arch.nodes if n.type == "linear")
    assert arch.attrs(lin)["bias"] and arch.attrs(next(n.id for n in arch.nodes if n.type == "dropout"))["rate"] == 0.25


def test_gemm_without_transpose_reshape_flatten_and_explicit_padding():
    rng = np.random.default_rng(2)
    inits = {
        "w": _f32(rng.standard_normal((3, 2, 3, 3))),
        "shape": np.array([0, -1], dtype=np.int64),
        "g": _f32(rng.standard_normal((3 * 2 * 2, 4))),
        "gb": _f32(rng.standard_normal((1, 4))),
    }
    nodes = [
        helper.make_node(
            "Conv", ["input", "w"], ["c"], name="conv", kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0]
        ),
        helper.make_node(
            "AveragePool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[1, 1], count_include_pad=1
        ),
        helper.make_node("Reshape", ["p", "shape"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "g", "gb"], ["output"], name="gemm", alpha=0.5, beta=2.0),
    ]
    arch = _ort_vs_import(_graph(nodes, inits, (2, 7, 7), (4,)), (2, 7, 7))
    conv = arch.nodes[0].id
    assert arch.attrs(conv)["padding"] == 0 and arch.attrs(conv)["stride"] == 2


def test_standalone_batchnorm_and_sigmoid_hardswish_in_torch_export():
    b = ArchitectureBuilder((2, 6, 6), layer_types=layer_types())
    x = b.layer("maxpool2d", b.input, kernel=2, stride=1)
    x = b.layer("batchnorm2d", x)
    x = b.layer("sigmoid", x)
    x = b.layer("hardswish", x)
    b.layer("conv2d", x, filters=3, kernel=1)
    arch = b.build()
    model = _trained_looking(arch)
    imported, back = _imported_model(torch_export(model, arch.input_shape))
    assert [n.type for n in imported.nodes] == ["maxpool2d", "batchnorm2d", "sigmoid", "hardswish", "conv2d"]
    assert _max_err(model, back, arch.input_shape) <= 1e-5


# ---- a plugin's layer type imports its own op ---------------------------------------------------------
class Tanh(LayerType):
    name, description, onnx_ops = "tanh_test", "tanh (a test plugin's layer type)", ("Tanh",)

    def build_torch(self, attrs, in_shapes, out_shape):
        return torch.nn.Tanh()

    def emit_onnx(self, ctx, node_id, attrs, inputs, in_shapes, out_shape, weights):
        return ctx.node("Tanh", inputs, node_id)

    def import_onnx(self, ctx, onnx_node):
        ctx.add(self.name, [ctx.value(onnx_node.input[0])], output=onnx_node.output[0])
        return True


class _TanhPlugin:
    @na_toolkit.hookimpl
    def na_register_layer_types(self, registry):
        registry.add(Tanh())


def _tanh_graph():
    return _graph(
        [
            helper.make_node("Relu", ["input"], ["r"], name="relu"),
            helper.make_node("Tanh", ["r"], ["output"], name="my_tanh"),
        ],
        {},
        (3, 4, 4),
        (3, 4, 4),
    )


def test_a_plugin_layer_type_imports_its_op():
    tk = load_toolkit(entry_points=False, extra_plugins=(_TanhPlugin(),))
    proto = _tanh_graph()
    arch, state = from_onnx(proto, layer_types=tk.layer_types, return_weights=True)
    assert [n.type for n in arch.nodes] == ["relu", "tanh_test"]
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[
        0
    ]
    with torch.no_grad():
        assert np.abs(arch.to_torch()(torch.from_numpy(x)).numpy() - want).max() <= 1e-6


# ---- errors -------------------------------------------------------------------------------------------
def test_a_plugin_layer_type_round_trips_with_the_same_hash():
    """Export goes through the layer type's emit_onnx, import through its import_onnx: the same network."""
    tk = load_toolkit(entry_points=False, extra_plugins=(_TanhPlugin(),))
    b = ArchitectureBuilder((3, 4, 4), layer_types=tk.layer_types, name="tanh-net")
    x = b.layer("conv2d", b.input, filters=3, kernel=3)
    x = b.layer("tanh_test", x)
    b.layer("relu", b.layer("tanh_test", b.layer("add", x, b.input)))
    arch = b.build()
    back = from_onnx(arch.to_onnx(), tk.layer_types)
    assert [n.type for n in back.nodes] == [n.type for n in arch.nodes]
    assert back.hash == arch.hash


def test_importers_are_the_layer_types_last_registered_first():
    tk = load_toolkit(entry_points=False, extra_plugins=(_TanhPlugin(),))
    by_op = importers_by_op(tk.layer_types)
    assert [lt.name for lt in by_op["Tanh"]] == ["tanh_test", "tanh"]  # the plugin's first, then the built-in
    assert [lt.name for lt in by_op["Conv"]] == ["conv2d"]
    # two built-in layer types import Mul (the zero layer, and the first node of a written-out GELU)
    assert [lt.name for lt in by_op["Mul"]] == ["zero", "gelu"]
    # every op a built-in layer type emits is one some layer type imports
    assert {"Conv", "BatchNormalization", "Clip", "Gemm", "Add", "Sum", "Concat", "Identity", "Mul"} <= set(by_op)


def test_unsupported_op_names_the_op_and_the_node():
    graph = _graph(
        [
            helper.make_node("Relu", ["input"], ["r"], name="relu"),
            helper.make_node("Selu", ["r"], ["output"], name="my_selu"),
        ],
        {},
        (3, 4, 4),
        (3, 4, 4),
    )
    with pytest.raises(OnnxImportError, match=r"my_selu.*Selu.*unsupported ONNX op 'Selu'") as info:
        from_onnx(graph, layer_types())
    assert "\n" not in str(info.value)
    assert "supported: " in str(info.value) and "Conv" in str(info.value)
    assert "register a layer type that imports it" in str(info.value)  # what to do about it


@pytest.mark.parametrize("last", [True, False])
def test_a_final_softmax_is_told_to_go_since_networks_output_logits(last):
    # a classifier exported with its softmax: the op is unsupported, and the advice is to drop it, not to write
    # a layer type; a softmax inside the network gets the general advice
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    layers = [nn.Conv2d(3, 4, 3), *head, nn.Softmax(1)] if last else [nn.Conv2d(3, 4, 3), nn.Softmax(1), *head]
    with pytest.raises(OnnxImportError) as info:
        from_onnx(torch_export(nn.Sequential(*layers).eval(), (3, 8, 8)), layer_types())
    message = str(info.value)
    assert "unsupported ONNX op 'Softmax'" in message and "\n" not in message
    assert ("remove the final softmax" in message) is last
    assert ("register a layer type" in message) is not last


def test_a_toolkit_given_for_the_layer_types_says_to_pass_its_layer_types(tmp_path):
    # from_onnx(path, toolkit) and Architecture.load(path, layer_types=toolkit) raised AttributeError
    # ('Toolkit' object has no attribute 'items' / 'get')
    arch = default_toolkit().seed("simple-cnn")
    arch.save(tmp_path / "a.json")
    calls = [
        lambda tk: from_onnx(arch.to_onnx(), tk),
        lambda tk: Architecture.load(tmp_path / "a.json", layer_types=tk),
        lambda tk: Architecture(arch.input_shape, arch.nodes, layer_types=tk),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=r"got the Toolkit itself: pass toolkit\.layer_types"):
            call(default_toolkit())
        with pytest.raises(TypeError, match=r"got a dict: pass toolkit\.layer_types"):
            call({})


@pytest.mark.parametrize(
    "nodes,inits,match",
    [
        (
            [helper.make_node("Conv", ["input", "w"], ["output"], name="wide", kernel_shape=[1, 3], pads=[0, 1, 0, 1])],
            {"w": _f32(np.ones((3, 3, 1, 3)))},
            r"'wide' \(Conv\): only square",
        ),
        (
            [
                helper.make_node(
                    "Clip",
                    ["input", "a", "b"],
                    ["output"],
                    name="clip",
                )
            ],
            {"a": _f32(-1.0), "b": _f32(1.0)},
            r"'clip' \(Clip\): Clip to \[-1.0, 1.0\]",
        ),
        (
            [helper.make_node("Div", ["input", "two"], ["output"], name="halve")],
            {"two": _f32(2.0)},
            r"'halve' \(Div\): this Div .* is no layer the toolkit has: the layer types that import Div \(gelu\) take "
            r"other forms of it; remove it from the model .*register a layer type",
        ),
        (
            [
                helper.make_node("Div", ["input", "two"], ["d"], name="scale_for_erf"),
                helper.make_node("Erf", ["d"], ["output"], name="erf"),
            ],
            {"two": _f32(2.0)},
            r"'(scale_for_erf|erf)'",
        ),
        (
            [helper.make_node("Mul", ["input", "two"], ["output"], name="double")],
            {"two": _f32(2.0)},
            r"'double' \(Mul\): this Mul \(inputs \['input', 'two'\].* is no layer the toolkit has",
        ),
        (
            [
                helper.make_node(
                    "BatchNormalization", ["input", "s", "s", "s", "s"], ["output"], name="bn_train", training_mode=1
                )
            ],
            {"s": _f32(np.ones(3))},
            r"training mode",
        ),
    ],
)
def test_unsupported_forms(nodes, inits, match):
    with pytest.raises(OnnxImportError, match=match):
        from_onnx(_graph(nodes, inits, (3, 4, 4), (3, 4, 4)), layer_types())


def test_graph_level_errors():
    relu = helper.make_node("Relu", ["a"], ["output"], name="relu")
    two_inputs = helper.make_model(
        helper.make_graph(
            [helper.make_node("Add", ["a", "b"], ["output"], name="add")],
            "g",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in ("a", "b")],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    with pytest.raises(OnnxImportError, match="2 inputs"):
        from_onnx(two_inputs, layer_types())
    ints = helper.make_model(
        helper.make_graph(
            [relu],
            "g",
            [helper.make_tensor_value_info("a", TensorProto.INT64, [1, 3])],
            [helper.make_tensor_value_info("output", TensorProto.INT64, [1, 3])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    with pytest.raises(OnnxImportError, match="float32"):
        from_onnx(ints, layer_types())
    symbolic = helper.make_model(
        helper.make_graph(
            [relu],
            "g",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, "c", 4, 4])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, "c", 4, 4])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    with pytest.raises(OnnxImportError, match="fixed C, H, W"):
        from_onnx(symbolic, layer_types())


def test_garbage_truncated_empty_and_missing_files(tmp_path):
    data = get_seed("simple-cnn").to_onnx().SerializeToString()
    cases = {
        "truncated.onnx": data[: len(data) // 2],
        "garbage.onnx": b"\x08\x07 this is not a protobuf \xff\xfe" * 20,
        "empty.onnx": b"",
        "text.onnx": b"name,value\nconv,3\n",
    }
    for fname, content in cases.items():
        path = tmp_path / fname
        path.write_bytes(content)
        with pytest.raises(OnnxImportError) as info:
            from_onnx(path, layer_types())
        message = str(info.value)
        assert "\n" not in message and ("not a valid ONNX model" in message or "not an ONNX model" in message), message
    with pytest.raises(OnnxImportError, match="no such file"):
        from_onnx(tmp_path / "missing.onnx", layer_types())
    with pytest.raises(OnnxImportError, match="path, bytes or an onnx.ModelProto"):
        from_onnx(3.5, layer_types())


def test_a_group_norm_is_named_as_such_not_as_the_reshape_torch_exports_it_with():
    # torch exports nn.GroupNorm(2, 8) as Reshape -> InstanceNormalization -> Reshape -> Mul -> Add: the error
    # named the first Reshape ("supported as a flatten only"), which the user never wrote
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(OnnxImportError) as info:
        from_onnx(torch_export(model.eval(), (3, 8, 8)), layer_types())
    message = str(info.value)
    assert "nn.GroupNorm(2, 8)" in message and "group normalisation" in message
    assert "replace nn.GroupNorm with nn.BatchNorm2d" in message and "flatten" not in message


def test_a_group_normalization_op_gets_the_group_norm_advice():
    # ONNX's own op (what other exporters write): unsupported, with the same advice
    scale = numpy_helper.from_array(np.ones(4, np.float32), "s")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], name="gn", num_groups=2)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        initializer=[scale, bias],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])  # the op's per-channel form
    with pytest.raises(OnnxImportError, match=r"'GroupNormalization'; it is group normalisation.*nn.BatchNorm2d"):
        from_onnx(proto, layer_types())


def test_a_batch_norm_momentum_survives_the_onnx_round_trip(tmp_path):
    # the exporter wrote epsilon only: momentum 0.3 came back as the default 0.1, under another hash, unsaid
    b = ArchitectureBuilder((1, 8, 8), layer_types=layer_types())
    x = b.layer("batchnorm2d", b.layer("conv2d", b.input, filters=4, kernel=3), momentum=0.3)
    b.layer("linear", b.layer("flatten", b.layer("global_avg_pool", x)), units=3)
    arch = b.build()
    onnx.save(arch.to_onnx(), tmp_path / "m.onnx")
    back = from_onnx(str(tmp_path / "m.onnx"), layer_types=layer_types())
    assert back.hash == arch.hash and back.attrs("batchnorm2d_0")["momentum"] == pytest.approx(0.3)

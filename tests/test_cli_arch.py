"""`na-toolkit arch seeds|show|export|import` through real subprocesses, and every kind of bad input:
one `na-toolkit: error:` line, exit 2, no traceback."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import na_toolkit
from conftest import get_seed

SEEDS = ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")


def test_arch_seeds(run_cli):
    res = run_cli("arch", "seeds", "--json")
    assert res.returncode == 0, res.stderr
    seeds = {s["name"]: s for s in res.json()["seeds"]}
    for name in SEEDS:
        arch = get_seed(name)
        assert seeds[name]["params"] == arch.params and seeds[name]["flops"] == arch.flops
        assert seeds[name]["hash"] == arch.hash and seeds[name]["nodes"] == len(arch.nodes)
        assert seeds[name]["plugin"] == f"na_toolkit.builtin.seeds (na-toolkit {na_toolkit.__version__})"
    text = run_cli("arch", "seeds").stdout
    assert "resnet-cifar" in text and f"{get_seed('resnet-cifar').params:,}" in text


def test_arch_show_seed_table(run_cli):
    arch = get_seed("simple-cnn")
    res = run_cli("arch", "show", "simple-cnn")
    assert res.returncode == 0, res.stderr
    rows = res.stdout.splitlines()
    for i, node in enumerate(arch.nodes):
        row = next(r for r in rows if r.split()[:3] == [str(i), node.id, node.type])
        assert "x".join(map(str, arch.shape(node.id))) in row
        assert f"{arch.cost.per_node[node.id].flops:,}" in row
    assert any(r.split()[:1] == ["total"] and f"{arch.params:,}" in r for r in rows)
    assert f"params {arch.params:,}, MACs {arch.cost.macs:,}, FLOPs {arch.flops:,}" in res.stdout
    assert "filters=16" in res.stdout  # required attributes are shown, defaults are not
    assert "dilation=1" not in res.stdout


def test_arch_show_json_of_a_file(run_cli, tmp_path):
    arch = get_seed("resnet-cifar")
    path = tmp_path / "resnet.json"
    arch.save(path)
    doc = run_cli("arch", "show", path, "--json").json()
    assert doc["hash"] == arch.hash and doc["output_shape"] == [10]
    assert len(doc["nodes"]) == len(arch.nodes)
    assert doc["totals"]["params"] == arch.params == sum(n["params"] for n in doc["nodes"])
    assert doc["totals"]["flops"] == arch.flops and doc["totals"]["macs"] == arch.cost.macs
    assert doc["totals"]["peak_activation_bytes"] == arch.peak_activation_bytes
    first = doc["nodes"][0]
    assert first["attrs"] == arch.attrs(arch.nodes[0].id) and first["shape"] == [16, 32, 32]


def test_arch_export_checked_and_dynamic_batch(run_cli, tmp_path):
    out = tmp_path / "resnet.onnx"
    res = run_cli("arch", "export", "resnet-cifar", "--onnx", out, "--check", "--json")
    assert res.returncode == 0, res.stderr
    doc = res.json()
    assert doc["parity_max_abs_err"] <= 1e-4 and doc["checker"] == "passed" and doc["bytes"] == out.stat().st_size
    model = onnx.load(out)
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    assert sess.run(None, {"input": x})[0].shape == (1, 10)

    arch_file = tmp_path / "simple.json"
    get_seed("simple-cnn").save(arch_file)
    dyn = tmp_path / "simple.onnx"
    res = run_cli("arch", "export", arch_file, "--onnx", dyn, "--dynamic-batch")
    assert res.returncode == 0 and "onnx.checker passed" in res.stdout, res.stderr
    sess = ort.InferenceSession(str(dyn), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": np.zeros((3, 1, 8, 8), np.float32)})[0].shape == (3, 10)
    # a static and a symbolic batch contradict each other: refused, not one of them silently winning
    res = run_cli("arch", "export", arch_file, "--onnx", tmp_path / "both.onnx", "--batch-size", "4", "--dynamic-batch")
    assert res.returncode == 2 and "not allowed with argument --batch-size" in res.stderr
    assert not (tmp_path / "both.onnx").exists()


def test_arch_import_round_trip(run_cli, tmp_path):
    arch = get_seed("mobilenetv2-cifar")
    model_path, json_path = tmp_path / "m.onnx", tmp_path / "m.json"
    assert run_cli("arch", "export", "mobilenetv2-cifar", "--onnx", model_path).returncode == 0
    res = run_cli("arch", "import", model_path, "--out", json_path, "--json")
    assert res.returncode == 0, res.stderr
    doc = res.json()
    assert doc["params"] == arch.params and doc["flops"] == arch.flops and doc["output_shape"] == [10]
    imported = json.loads(json_path.read_text())
    assert imported["schema_version"] == 1 and len(imported["nodes"]) == doc["nodes"]
    # the written JSON is a valid architecture the other commands read
    shown = run_cli("arch", "show", json_path, "--json").json()
    assert shown["hash"] == doc["hash"] and shown["totals"]["params"] == arch.params
    # and `show` reads the ONNX model directly too
    assert run_cli("arch", "show", model_path, "--json").json()["hash"] == doc["hash"]


# ---- bad input ----------------------------------------------------------------------------------------
def arch_doc(*nodes, input_shape=(3, 8, 8)):
    return {"schema_version": 1, "name": "bad", "input_shape": list(input_shape), "nodes": list(nodes)}


def node(id, type, inputs, **attrs):
    return {"id": id, "type": type, "attrs": attrs, "inputs": list(inputs)}


BAD_JSON = {
    "malformed_json": ('{"schema_version": 1, "nodes": [', "malformed architecture JSON"),
    "unknown_layer_type": (arch_doc(node("c", "conv3d", ["input"], filters=4)), "unknown layer type 'conv3d'"),
    "cycle": (arch_doc(node("a", "relu", ["b"]), node("b", "relu", ["a"])), "cycle"),
    "dangling_input": (arch_doc(node("a", "relu", ["ghost"])), "'ghost' does not exist (dangling input)"),
    "add_shape_mismatch": (
        arch_doc(
            node("c8", "conv2d", ["input"], filters=8),
            node("c16", "conv2d", ["input"], filters=16),
            node("sum", "add", ["c8", "c16"]),
        ),
        "node 'sum': add needs inputs of one shape",
    ),
    "non_positive_channels": (
        arch_doc(node("c", "conv2d", ["input"], filters=0)),
        "node 'c': attribute 'filters' must be >= 1",
    ),
    "negative_input_shape": (arch_doc(node("r", "relu", ["input"]), input_shape=(3, -8, 8)), "input shape"),
    "wrong_schema_version": ({**arch_doc(node("r", "relu", ["input"])), "schema_version": 99}, "schema_version"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_bad_architecture_json_is_one_line_exit_2(run_cli, tmp_path, case):
    content, expected = BAD_JSON[case]
    path = tmp_path / f"{case}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    line = run_cli("arch", "show", path).error_line()
    assert expected in line


def test_missing_file_and_unknown_seed(run_cli, tmp_path):
    assert "cannot read architecture file" in run_cli("arch", "show", tmp_path / "nope.json").error_line()
    line = run_cli("arch", "show", "resnet-cifa").error_line()
    assert "unknown seed network 'resnet-cifa'. Did you mean 'resnet-cifar'" in line


def test_unwritable_output_is_one_line(run_cli, tmp_path):
    line = run_cli("arch", "export", "simple-cnn", "--onnx", tmp_path / "no" / "such" / "dir.onnx").error_line()
    assert "cannot write" in line and "dir.onnx" in line


def unsupported_op_model() -> bytes:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])
    graph = helper.make_graph(
        [helper.make_node("Hardmax", ["input"], ["output"], name="the_hardmax", axis=1)], "g", [x], [y]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def truncated_model() -> bytes:
    blob = get_seed("simple-cnn").to_onnx().SerializeToString()
    return blob[: len(blob) // 2]


BAD_ONNX = {
    "truncated": (truncated_model, ()),
    "garbage": (lambda: bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), ()),
    "empty": (lambda: b"", ()),
    "unsupported_op": (unsupported_op_model, ("Hardmax", "the_hardmax")),
    "missing_file": (None, ("cannot read ONNX file",)),
}


@pytest.mark.parametrize("case", sorted(BAD_ONNX))
def test_bad_onnx_is_one_line_exit_2(run_cli, tmp_path, case):
    make, expected = BAD_ONNX[case]
    path = tmp_path / f"{case}.onnx"
    if make is not None:
        path.write_bytes(make())
    line = run_cli("arch", "import", path, "--out", tmp_path / "out.json").error_line()
    assert all(e in line for e in expected), line
    assert not (tmp_path / "out.json").exists()


def test_python_dash_m_na_toolkit_is_the_command():
    import subprocess
    import sys

    import na_toolkit

    proc = subprocess.run(
        [sys.executable, "-m", "na_toolkit", "arch", "seeds", "--json"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "resnet-cifar" in {s["name"] for s in json.loads(proc.stdout)["seeds"]}
    version = subprocess.run([sys.executable, "-m", "na_toolkit", "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"na-toolkit {na_toolkit.__version__}"

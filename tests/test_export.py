"""A run's exports as a deployer receives them: `na-toolkit export` (real subprocesses) writes files that a
fresh interpreter WITHOUT na_toolkit loads in ONNX Runtime at batch 1 and N, that say what the network
expects of its input and where it comes from (run, network hash, toolkit version, trained or not), and that
reproduce the test accuracy the run recorded, sample for sample."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import SMALL_SEARCH, config_doc
from na_toolkit import __version__
from na_toolkit.datasets import get_dataset
from na_toolkit.errors import ConfigError
from na_toolkit.plugins import load_toolkit
from na_toolkit.search import run_search

# what a deployer runs: numpy and ONNX Runtime only; na_toolkit cannot be imported (not even from an install)
DEPLOYER = """
import json, sys
sys.path[:0] = sys.argv[1].split("|")
sys.modules["na_toolkit"] = None  # an import of it raises ImportError
import numpy as np, onnxruntime as ort
folder = sys.argv[2]
out = {}
for name in sys.argv[3:]:
    sess = ort.InferenceSession(f"{folder}/{name}.onnx", providers=["CPUExecutionProvider"])
    side = json.load(open(f"{folder}/{name}.preprocessing.json"))
    meta = {k: json.loads(v) for k, v in sess.get_modelmeta().custom_metadata_map.items()}
    data = np.load(f"{folder}/test.npz")
    norm = meta["na_toolkit.input_normalization"]
    mean, std = (np.asarray(norm[k], np.float32)[None, :, None, None] for k in ("mean", "std"))
    x = ((data["x"] - mean) / std).astype(np.float32)
    feed = meta["na_toolkit.input"]["name"]
    batch = meta["na_toolkit.input"]["shape"][0]
    if batch is None:  # a symbolic batch: one at a time and all at once give the same answers
        one = np.concatenate([sess.run(None, {feed: x[i : i + 1]})[0] for i in range(len(x))])
        all_ = sess.run(None, {feed: x})[0]
        assert np.abs(one - all_).max() < 1e-4, np.abs(one - all_).max()
    else:  # a static one: whole batches only
        starts = range(0, len(x) - batch + 1, batch)
        all_ = np.concatenate([sess.run(None, {feed: x[i : i + batch]})[0] for i in starts])
    correct = int((all_.argmax(1) == data["y"][: len(all_)]).sum())
    out[name] = {"meta": meta, "sidecar": side, "correct": correct, "n": len(all_)}
print(json.dumps(out))
"""


def deployer_run(folder: Path, *names: str) -> dict:
    paths = "|".join(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", DEPLOYER, paths, str(folder), *names],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    result = run_search(config_doc(SMALL_SEARCH, tmp / "runs"), progress=False)
    # the split the evaluator tested on (its split_seed 0), as a deployer's test set
    ds = get_dataset("digits", load_toolkit(entry_points=False).datasets, seed=0)
    np.savez(tmp / "test.npz", x=ds.x_test, y=ds.y_test)
    return tmp, result


def test_exports_run_without_na_toolkit_and_reproduce_the_recorded_test_accuracy(finished, run_cli):
    tmp, result = finished
    run = Path(result.run_dir)
    best = result.best["cpu"]
    (evaluated,) = [e for e in result.evaluated if e.hash == best]
    for name, extra, shape in (("dyn", (), "Nx1x8x8"), ("b7", ("--batch-size", "7"), "7x1x8x8")):
        res = run_cli("export", run, "--device", "cpu", "--format", "onnx", "--out", tmp / f"{name}.onnx", *extra)
        assert res.returncode == 0, res.stderr
        assert f"{tmp / name}.preprocessing.json" in res.stdout
        assert f"its input 'input': float32 NCHW {shape}, dataset digits" in res.stdout

    got = deployer_run(tmp, "dyn", "b7")
    n_test = 359  # digits' test split
    want_correct = round(evaluated.score.metrics["test_accuracy"] * n_test)
    dyn, b7 = got["dyn"], got["b7"]
    assert dyn["n"] == n_test and dyn["correct"] == want_correct  # every sample, not about the same accuracy
    assert b7["n"] == 357 and b7["meta"]["na_toolkit.input"]["shape"] == [7, 1, 8, 8]
    for one in (dyn, b7):
        meta, side = one["meta"], one["sidecar"]
        assert {k.removeprefix("na_toolkit."): v for k, v in meta.items()} == side  # one record, two places
        assert side["arch_hash"] == best and side["run_id"] == result.run_id
        assert side["toolkit_version"] == __version__ and side["trained_weights"] is True
        assert side["dataset"] == "digits" and side["class_names"] == [str(c) for c in range(10)]
        assert side["input"] == {"name": "input", "shape": side["input"]["shape"], "layout": "NCHW", "dtype": "float32"}
        assert side["metrics"]["test_accuracy"] == evaluated.score.metrics["test_accuracy"]
    assert onnx.load(tmp / "dyn.onnx").producer_version == __version__

    # the run folder's own best/ carries the same record, once, as preprocessing.json
    side = json.loads((run / "best" / "cpu" / "preprocessing.json").read_text())
    assert side == dyn["sidecar"]
    assert sorted(p.name for p in (run / "best" / "cpu").iterdir()) == [
        "arch.json",
        "model.onnx",
        "model.pt",
        "preprocessing.json",
    ]


def test_a_torch_export_has_its_sidecar_and_a_batch_size_is_for_onnx_only(finished, run_cli):
    tmp, result = finished
    run = Path(result.run_dir)
    out = tmp / "t" / "m.pt"
    res = run_cli("export", run, "--arch", result.best["cpu"][:8], "--format", "torch", "--out", out, "--json")
    assert res.returncode == 0, res.stderr
    doc = res.json()
    assert doc["files"] == [str(out), str(out.with_suffix(".json")), str(tmp / "t" / "m.preprocessing.json")]
    side = json.loads((tmp / "t" / "m.preprocessing.json").read_text())
    assert side["input_normalization"] == doc["input_normalization"] and side["trained_weights"] is True
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.json", "m.preprocessing.json", "m.pt"]
    line = run_cli("export", run, "--device", "cpu", "--format", "torch", "--batch-size", "4").error_line()
    assert "a torch export is a state dict, it has no batch size" in line
    # a second export to the same name replaces the first (its .json has its .pt beside it)...
    again = run_cli("export", run, "--arch", result.best["cpu"][:8], "--format", "torch", "--out", out)
    assert again.returncode == 0, again.stderr
    # ...but a network file of the user's with no state dict beside it is not an export's: kept (before: replaced)
    mine = tmp / "t" / "resnet.json"
    mine.write_text((tmp / "t" / "m.json").read_text())
    line = run_cli("export", run, "--device", "cpu", "--format", "torch", "--out", mine.with_suffix(".pt")).error_line()
    assert f"a torch export writes its architecture to {str(mine)!r}, which holds a network with no resnet.pt" in line
    assert mine.read_text() == (tmp / "t" / "m.json").read_text() and not mine.with_suffix(".pt").exists()
    line = run_cli("export", run, "--device", "cpu", "--format", "onnx", "--batch-size", "0").error_line()
    assert "give a batch size in [1, 1000000], or leave it out" in line


def test_an_export_without_trained_weights_says_so_in_the_file(tmp_path, run_cli):
    result = run_search(config_doc(SMALL_SEARCH, tmp_path / "runs", search__keep_weights=False), progress=False)
    best = Path(result.run_dir) / "best" / "cpu"
    meta = {p.key: json.loads(p.value) for p in onnx.load(best / "model.onnx").metadata_props}
    assert meta["na_toolkit.trained_weights"] is False
    assert json.loads((best / "preprocessing.json").read_text())["trained_weights"] is False
    # the run and the export say why: the config kept no weights (before: "the evaluator kept no trained ones")
    assert any(w.startswith("search.keep_weights = false: no trained weights are kept") for w in result.warnings)
    res = run_cli("export", result.run_dir, "--device", "cpu", "--format", "onnx", "--out", tmp_path / "x.onnx")
    assert "initial weights (the run kept none: search.keep_weights = false)" in res.stdout

    # `arch export` writes an architecture with random weights: its file says so too
    out = tmp_path / "arch.onnx"
    res = run_cli("arch", "export", best / "arch.json", "--onnx", out, "--dynamic-batch")
    assert res.returncode == 0, res.stderr
    assert "random weights (seed 0), not trained ones" in res.stdout
    meta = {p.key: json.loads(p.value) for p in onnx.load(out).metadata_props}
    assert meta == {
        "na_toolkit.arch_hash": result.best["cpu"],
        "na_toolkit.trained_weights": False,
        "na_toolkit.weights_seed": 0,
    }


def test_best_device_holds_that_devices_best_only_and_its_files_agree(tmp_path, run_cli):
    """`export RUN --arch H --out RUN/best/cpu/model.onnx` put another network beside the best's arch.json
    and model.pt (exit 0), and a torch export into best/cpu/ rewrote its shared preprocessing.json to say a
    symbolic batch beside an ONNX model of batch 4: both are refused, each saying where to export instead."""
    result = run_search(config_doc(SMALL_SEARCH, tmp_path / "runs", evaluations=3), progress=False)
    run, best = Path(result.run_dir), result.best["cpu"]
    other = next(e.hash for e in result.evaluated if e.hash != best and e.error is None)
    before = {p.name: p.read_bytes() for p in (run / "best" / "cpu").iterdir()}
    res = run_cli("export", run, "--arch", other, "--format", "onnx", "--out", run / "best" / "cpu" / "model.onnx")
    assert res.returncode == 2 and "best/cpu/ holds the best network for device cpu" in res.stderr
    # the search wrote model.onnx and model.pt there, both of any batch size: an ONNX model of batch 4 would
    # leave the shared preprocessing.json contradicting one of them
    res = run_cli("export", run, "--device", "cpu", "--format", "onnx", "--batch-size", "4")
    assert res.returncode == 2 and "also describes model.pt beside it, whose input is [None, " in res.stderr
    assert before == {p.name: p.read_bytes() for p in (run / "best" / "cpu").iterdir()}  # nothing changed
    assert run_cli("export", run, "--device", "cpu", "--format", "onnx").returncode == 0  # the same again: fine


def test_a_file_of_another_kind_named_like_a_model_is_not_overwritten(tmp_path, run_cli):
    # only JSON and TOML outputs were read for what they are: a .onnx or .pt of anything else was replaced
    junk = tmp_path / "junk.onnx"
    junk.write_text("junk\n")
    res = run_cli("arch", "export", "simple-cnn", "--onnx", junk)
    assert res.returncode == 2 and "it is an existing file that is not an ONNX model" in res.stderr
    assert junk.read_text() == "junk\n"
    from na_toolkit.cli._output import check_out

    config = tmp_path / "w.pt"
    config.write_text('name = "a search config"\n')
    with pytest.raises(ConfigError, match="not a torch save"):
        check_out(config)
    assert run_cli("arch", "export", "simple-cnn", "--onnx", tmp_path / "ok.onnx").returncode == 0
    assert run_cli("arch", "export", "simple-cnn", "--onnx", tmp_path / "ok.onnx").returncode == 0  # its own: again

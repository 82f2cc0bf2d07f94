"""`na-toolkit predict` given the wrong files, as a user gives them: each error names the file at fault and what
to give instead, and a --dataset the saved predictor cannot use is said, not silently ignored. Real CLI
subprocesses on a real saved predictor and real files of a run's best/ folder (JSON, ONNX, torch weights)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import default_toolkit
from na_toolkit.errors import DataError
from na_toolkit.predictors import load_predictor, make_predictor
from test_predict_profile_inputs import cnn

TK = default_toolkit()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved predictor fit without a dataset, and a best/ folder: arch.json, model.onnx, model.pt."""
    folder = tmp_path_factory.mktemp("predict")
    archs = [cnn(w, d) for w in (4, 8, 16) for d in (1, 2)]
    model = make_predictor("bayesian-ridge", {}, TK).fit(archs, [0.5 + 0.01 * a.params / 1e4 for a in archs])
    (folder / "model.json").write_text(json.dumps(model.to_json()))
    best = folder / "best"
    best.mkdir()
    arch = cnn(8, 2)
    arch.save(best / "arch.json")
    (best / "model.onnx").write_bytes(arch.to_onnx().SerializeToString())
    torch.save(arch.to_torch().state_dict(), best / "model.pt")
    (best / "preprocessing.json").write_text(json.dumps({"arch_hash": arch.hash, "input": {}}))
    return folder


def test_an_architecture_given_as_the_model_names_the_file_and_says_what_it_is(files, run_cli):
    arch = files / "best" / "arch.json"
    res = run_cli("predict", files / "best" / "model.onnx", "--model", arch)
    assert res.returncode == 2
    assert f"saved predictor '{arch}'" in res.stderr and "it is an architecture" in res.stderr
    with pytest.raises(DataError, match="arch.json'.* it is an architecture"):  # the library names it too
        load_predictor(arch, TK)


def test_a_wrong_architecture_among_several_is_named(files, run_cli):
    best = files / "best"
    model = files / "model.json"
    ok = run_cli("predict", best / "arch.json", best / "model.onnx", "--model", model)
    assert ok.returncode == 0, ok.stderr
    first, second = [float(line.split()[0]) for line in ok.stdout.splitlines()]
    assert first == pytest.approx(second)  # the IR JSON and its ONNX export are one network
    res = run_cli("predict", best / "arch.json", best / "preprocessing.json", "--model", model)
    said = f"architecture file '{best / 'preprocessing.json'}': not an architecture"
    assert res.returncode == 2 and said in res.stderr
    # torch weights were read as text: "not UTF-8 text ...; save it as UTF-8"
    res = run_cli("predict", best / "model.pt", "--model", model)
    assert res.returncode == 2 and "is a torch weights file, not an architecture" in res.stderr
    assert "UTF-8" not in res.stderr and "arch.json and model.onnx" in res.stderr


def test_a_dataset_the_predictor_cannot_use_is_said(files, run_cli):
    args = ("predict", files / "best" / "arch.json", "--model", files / "model.json")
    plain = run_cli(*args)
    given = run_cli(*args, "--dataset", "digits")
    assert given.returncode == 0 and given.stdout == plain.stdout  # the descriptor changes nothing ...
    assert "was fit without a dataset (it records none), so --dataset digits changes none" in given.stderr
    assert "--dataset" not in plain.stderr


def test_a_neural_file_whose_params_and_weights_disagree_says_how(tmp_path):
    # the message was torch's first line alone: "Error(s) in loading state_dict for EmbeddingRegressor:"
    archs = [cnn(w, d) for w in (4, 8) for d in (1, 2, 3)]
    small = {"epochs": 1, "heads": 2, "hidden": 4, "token_dim": 4, "layer_dim": 4, "net_dim": 4, "device": "cpu"}
    doc = make_predictor("neural", small, TK).fit(archs, [0.1 * i for i in range(6)]).to_json()
    doc["params"]["heads"] = 1  # edited: one head, two heads' weights
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"edited\.json.*Unexpected key\(s\) in state_dict: \"heads\.1\..*fit it again"):
        load_predictor(path, TK)


def test_a_bad_architecture_in_the_data_names_its_line(files, tmp_path, run_cli):
    # a malformed inline architecture or a missing file on line 2 of a long file said only what was wrong with it
    good = json.loads((files / "best" / "arch.json").read_text())
    lines = [{"arch": good, "y": 1.0}, {"arch": {"schema_version": 1, "nodes": []}, "y": 2.0}]
    lines += [{"arch": "simple-cnn", "y": 3.0}, {"arch": "nets/missing.json", "y": 4.0}]
    for bad, words in ((1, "'input_shape' must be a list of ints"), (3, "missing.json")):
        data = tmp_path / f"bad{bad}.jsonl"
        kept = [line for i, line in enumerate(lines) if i == bad or i in (0, 2)]
        data.write_text("".join(json.dumps(line) + "\n" for line in kept))
        res = run_cli("predict", "fit", "--data", data, "--target", "y", "--out", tmp_path / "m.json")
        line = 2 if bad == 1 else 3
        assert res.returncode == 2 and f"--data {data} line {line}: arch: " in res.stderr and words in res.stderr

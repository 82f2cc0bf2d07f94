"""The torch evaluator: real training on digits, determinism, shape checks, options, the evaluate command."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import default_toolkit, get_seed, layer_types
from na_toolkit.builtin.seeds import simple_cnn
from na_toolkit.datasets import dataset_from_arrays
from na_toolkit.errors import ConfigError, DataError
from na_toolkit.evaluation import EvaluationResult, make_evaluator
from na_toolkit.evaluation.torch_trainer import TorchEvaluator


def torch_evaluator(**options) -> TorchEvaluator:
    """The torch evaluator as the toolkit builds it (dataset names looked up in its registry)."""
    evaluator = make_evaluator("torch", options, default_toolkit())
    assert isinstance(evaluator, TorchEvaluator)
    return evaluator


@pytest.mark.slow
def test_simple_cnn_reaches_97_percent_on_digits_in_15_epochs():
    arch = get_seed("simple-cnn")
    result = make_evaluator("torch", {"dataset": "digits", "epochs": 15, "seed": 0}, default_toolkit()).evaluate(arch)
    assert result.test_accuracy >= 0.97, result
    assert result.valid_accuracy >= 0.97
    assert result.evaluator == "torch" and result.dataset == "digits" and result.arch_hash == arch.hash
    assert result.epochs == 15 and 1 <= result.best_epoch <= 15
    history = result.extra["history"]
    # the reported accuracy is the best epoch's, and training made progress
    assert result.valid_accuracy == max(h["valid_accuracy"] for h in history)
    assert history[result.best_epoch - 1]["valid_accuracy"] == result.valid_accuracy
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 3
    assert 0 < result.train_time_s == pytest.approx(sum(h["train_time_s"] for h in history))
    assert result.train_time_s <= result.extra["total_time_s"]


def test_same_seed_gives_identical_results_and_another_seed_does_not():
    arch = get_seed("simple-cnn")
    a = torch_evaluator(epochs=2, seed=7).evaluate(arch)
    b = torch_evaluator(epochs=2, seed=7).evaluate(arch)
    c = torch_evaluator(epochs=2, seed=8).evaluate(arch)
    assert (a.valid_accuracy, a.test_accuracy) == (b.valid_accuracy, b.test_accuracy)
    assert [h["train_loss"] for h in a.extra["history"]] == [h["train_loss"] for h in b.extra["history"]]
    assert [h["train_loss"] for h in a.extra["history"]] != [h["train_loss"] for h in c.extra["history"]]
    # training leaves torch's global settings as it found them
    assert not torch.are_deterministic_algorithms_enabled()


def test_input_shape_mismatch_names_both_shapes():
    rgb = simple_cnn(layer_types(), input_shape=(3, 8, 8))
    with pytest.raises(DataError, match=r"input shape \(3, 8, 8\).*input shape \(1, 8, 8\)"):
        torch_evaluator(epochs=1).evaluate(rgb)


def test_output_must_have_one_unit_per_class():
    five = simple_cnn(layer_types(), classes=5)
    with pytest.raises(DataError, match=r"outputs shape \(5,\).*10 classes"):
        torch_evaluator(epochs=1).evaluate(five)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"epoch": 3}, r"options\.epoch: unknown key.*'evaluator\.options\.epochs'"),
        ({"epochs": 0}, r"options\.epochs: .*greater than or equal to 1"),
        ({"optimizer": "lbfgs"}, r"options\.optimizer: .*'sgd', 'adam' or 'adamw'"),
        ({"lr": -1.0}, r"options\.lr: .*greater than 0"),
        ({"device": "tpu"}, None),
    ],
)
def test_bad_options_raise_config_error(options, match):
    if match is None:  # the device is checked when training starts
        with pytest.raises(ConfigError, match="unknown device 'tpu'"):
            torch_evaluator(epochs=1, **options).evaluate(get_seed("simple-cnn"))
        return
    with pytest.raises(ConfigError, match=match):
        torch_evaluator(**options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is absent")
def test_cuda_asked_for_but_absent_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA device"):
        torch_evaluator(epochs=1, device="cuda").evaluate(get_seed("simple-cnn"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda():
    result = torch_evaluator(epochs=2, device="cuda").evaluate(get_seed("simple-cnn"))
    assert result.device.startswith("cuda") and result.valid_accuracy > 0.5


def test_user_arrays_dataset_and_picklable_evaluator():
    # two separable classes of 6x6 images: bright left half vs bright right half, plus noise
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    x = rng.normal(0, 0.3, (120, 1, 6, 6)).astype(np.float32)
    x[y == 0, :, :, :3] += 1
    x[y == 1, :, :, 3:] += 1
    ds = dataset_from_arrays("halves", x, y).load()
    arch = simple_cnn(layer_types(), input_shape=(1, 6, 6), classes=2)
    evaluator = TorchEvaluator(dataset=ds, epochs=3, batch_size=16, lr=0.05)
    clone = pickle.loads(pickle.dumps(evaluator))  # the local executor ships evaluators to workers
    result, weights = clone.evaluate_with_weights(arch)
    assert result.dataset == "halves" and result.extra["options"]["dataset"] == "halves"
    assert result.test_accuracy >= 0.9
    # the returned weights are the selected ones: they reproduce the test accuracy (inputs standardised with
    # the training split's per-channel statistics, as the evaluator does)
    model = arch.to_torch()
    model.load_state_dict(weights)
    mean = ds.x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = ds.x_train.std(axis=(0, 2, 3), keepdims=True)
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(((ds.x_test - mean) / std).astype(np.float32)))
    assert float((logits.argmax(1).numpy() == ds.y_test).mean()) == result.test_accuracy
    assert EvaluationResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_registered_as_torch():
    assert default_toolkit().evaluators.get("torch") is TorchEvaluator


def test_a_dataset_name_needs_the_registry_a_loaded_dataset_does_not():
    # built directly, without the toolkit: a registered name cannot be looked up, and the error says how
    with pytest.raises(DataError, match="no dataset registry"):
        TorchEvaluator(epochs=1).evaluate(get_seed("simple-cnn"))
    assert torch_evaluator(epochs=1).datasets is default_toolkit().datasets
    assert "datasets" not in torch_evaluator(epochs=1).options  # a dependency, not an option


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "na_toolkit.cli.main", *args], capture_output=True, text=True, timeout=180
    )


def test_cli_evaluate_json_and_errors(tmp_path):
    out = _cli("evaluate", "simple-cnn", "--dataset", "digits", "--epochs", "1", "--seed", "3", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["architecture"] == "simple-cnn" and doc["epochs"] == 1 and doc["seed"] == 3
    assert 0.5 < doc["valid_accuracy"] <= 1 and 0.5 < doc["test_accuracy"] <= 1 and doc["train_time_s"] > 0
    assert "epoch" in out.stderr  # the tqdm progress bar goes to stderr, never into the JSON
    # an IR JSON file whose input does not fit the dataset: one line, exit 2
    path = tmp_path / "rgb.json"
    simple_cnn(layer_types(), input_shape=(3, 8, 8)).save(path)
    bad = _cli("evaluate", str(path), "--epochs", "1")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().count("\n") == 0 and "(3, 8, 8)" in bad.stderr and "(1, 8, 8)" in bad.stderr


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--epochs", "99999999999999999999", "epochs: Input should be less than or equal to 1000000"),
        ("--seed", "99999999999999999999", "seed: Input should be less than or equal to 9223372036854775807"),
        ("--seed", "-1", "seed: Input should be greater than or equal to 0"),
        ("--split-seed", "-1", "split_seed: Input should be greater than or equal to 0"),
        ("--threads", "99999999999999999999", "threads: Input should be less than or equal to 1024"),
    ],
)
def test_cli_evaluate_refuses_a_count_or_seed_past_what_torch_takes_in_one_line(option, value, said):
    # an overflow in torch or numpy once training started: a traceback, exit 1 (or -1 taken for a seed)
    bad = _cli("evaluate", "simple-cnn", option, value)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert bad.stderr.strip() == f"na-toolkit: error: evaluator.options.{said} (got {value})"


def test_cli_evaluate_of_a_seed_built_for_one_shape_names_the_seeds_built_for_the_data():
    # said "build the network for the dataset's shape", which a seed name leaves the user no way to do
    bad = _cli("evaluate", "mobilenetv3-small", "--dataset", "digits", "--epochs", "1")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert "seed 'mobilenetv3-small' takes input (3, 224, 224) and outputs (1000,)" in bad.stderr
    assert "the seed is built for one input shape" in bad.stderr and "simple-cnn, resnet-cifar" in bad.stderr


def test_cli_evaluate_refuses_a_dataset_or_an_option_the_evaluator_does_not_take():
    # the rule of a search config's `dataset`: an evaluator whose options do not name it takes none
    bad = _cli("evaluate", "simple-cnn", "--evaluator", "synthetic", "--dataset", "digits")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert bad.stderr.strip() == (
        "na-toolkit: error: --dataset: evaluator 'synthetic' takes no dataset option; leave it out"
    )
    bad = _cli("evaluate", "simple-cnn", "--evaluator", "synthetic", "--epochs", "2")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    assert bad.stderr.strip().startswith("na-toolkit: error: evaluator 'synthetic' options.epochs: unknown key.")
    ok = _cli("evaluate", "simple-cnn", "--evaluator", "synthetic", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["evaluator"] == "synthetic", ok.stderr

"""A search on a user's own task, as an audit ran it: a training that diverges is a failed evaluation (never a
result, a best network or an export), the Pareto front's floor knows an imbalanced dataset's commonest class,
a byte budget written in another unit is refused, a batched device's latency says per how many images, and
a misspelt seed file or images too small for a seed get errors that say what to do."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from conftest import default_toolkit
from na_toolkit.errors import ConfigError, TrainingDivergedError
from na_toolkit.search import open_run, run_search
from na_toolkit.search.plots import update_points

TK = default_toolkit()


def _doc(tmp_path, dataset, evaluations=2, **evaluator):
    return {
        "name": "own",
        "seed_network": "simple-cnn",
        "dataset": dataset,
        "evaluations": evaluations,
        "output": str(tmp_path / "runs"),
        "search": {"per_round": 1, "moves": ["scale"]},
        "strategy": {"name": "random"},
        "evaluator": {"name": "torch", "options": {"epochs": 1, "threads": 1, **evaluator}},
        "devices": {"cpu": {"time_model": {"name": "roofline", "options": {"device": "x86-cpu"}}}},
    }


def _imbalanced(tmp_path):
    """150 images of 1x8x8, 3 classes of 90, 30 and 30: always answering class 0 scores 60%."""
    rng = np.random.default_rng(0)
    y = np.array([0] * 90 + [1] * 30 + [2] * 30)
    x = (rng.normal(size=(150, 1, 8, 8)) + y[:, None, None, None] * 0.8).astype(np.float32)
    np.savez(tmp_path / "imb.npz", x=x, y=y)
    return str(tmp_path / "imb.npz")


def test_a_training_that_diverges_is_a_failed_evaluation_not_a_result(tmp_path):
    # before: the NaN network's "accuracy" (the argmax of NaN logits is class 0 for every input: class 0's
    # share) was stored as a result, the predictors were refit on it, and it could be exported as the best
    result = run_search(_doc(tmp_path, "digits", lr=1e6), toolkit=TK, progress=False)
    assert result.counters.failed_evaluations == 2
    assert all("TrainingDivergedError: training" in e.error and "lower the learning rate" in e.error
               for e in result.evaluated)  # fmt: skip
    assert result.best == {"cpu": None} and not (result.run_dir / "best" / "cpu").exists()


def test_evaluate_says_the_training_diverged(run_cli):
    res = run_cli("evaluate", "simple-cnn", "--lr", "1e6", "--epochs", "2", "--no-progress")
    assert res.returncode == 2
    assert "training simple-cnn diverged in epoch 1 of 2 (a non-finite loss, lr 1e+06)" in res.stderr
    assert TrainingDivergedError.__doc__ and "valid_accuracy" not in res.stdout


def test_the_front_floor_is_above_the_commonest_class(tmp_path):
    # 1.1 / classes (36.7% here) let a network that answers class 0 for everything (60%) onto the front
    result = run_search(_doc(tmp_path, _imbalanced(tmp_path), evaluations=1), toolkit=TK, progress=False)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["pareto_min_accuracy"] == pytest.approx(0.66)
    assert summary["config"]["search"]["pareto_min_accuracy"] == pytest.approx(0.66)  # the default, stored
    assert open_run(result.run_dir, toolkit=TK).summary()["pareto_min_accuracy"] == pytest.approx(0.66)
    assert all(result.get(h).score.metrics["accuracy"] >= 0.66 for h in result.pareto)


def test_a_byte_budget_below_one_byte_is_refused(tmp_path):
    doc = _doc(tmp_path, "digits")
    doc["budgets"] = {"model_size_bytes": 0.04}  # meant: 0.04 MB
    with pytest.raises(ConfigError) as err:
        run_search(doc, toolkit=TK, progress=False)
    assert str(err.value) == (
        "budgets.model_size_bytes: limit 0.04 is less than one byte: the limit is in bytes (16 MB is 16_000_000, "
        "40 KiB is 40_960) (got 0.04)"
    )
    assert not (tmp_path / "runs").exists()


def test_a_batched_devices_latency_says_per_how_many_images(tmp_path):
    doc = _doc(tmp_path, "digits", evaluations=1)
    doc["evaluator"] = {"name": "synthetic"}
    del doc["dataset"]  # the synthetic evaluator trains nothing
    doc["devices"]["cpu"]["batch_size"] = 8
    result = run_search(doc, toolkit=TK, progress=False)
    report = (result.run_dir / "report.md").read_text()
    assert "latency cpu (ms per batch of 8, estimated)" in report
    assert "ms per batch of 8 (estimated)" in report  # the best line


def test_a_misspelt_seed_file_names_the_files_beside_it(tmp_path):
    (tmp_path / "mynet.json").write_text(json.dumps(TK.seed("simple-cnn").to_json()))
    doc = _doc(tmp_path, "digits")
    doc["seed_network"] = str(tmp_path / "mynet.jsn")
    with pytest.raises(ConfigError, match=r"is no file that exists in .* \(did you mean '.*mynet\.json'\?\)"):
        run_search(doc, toolkit=TK, progress=False)


def test_evaluate_names_the_seed_and_the_images_too_small_for_it(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "wide.npz", x=rng.normal(size=(60, 1, 1, 14)).astype(np.float32), y=np.arange(60) % 3)
    res = run_cli("evaluate", "simple-cnn", "--dataset", tmp_path / "wide.npz", "--epochs", "1", "--no-progress")
    assert res.returncode == 2
    assert "seed 'simple-cnn' cannot be built for dataset 'wide' (input (1, 1, 14), 3 classes)" in res.stderr
    assert "--resize" in res.stderr


def test_controller_updates_on_real_results_are_drawn_apart():
    series = [{"value_loss": 1.0}, {"value_loss": 1.01}, {"value_loss": 0.005, "evaluated": 1.0}, {"value_loss": 1.0}]
    scored, real = update_points(series, "value_loss")
    assert scored == [(1, 1.0), (2, 1.01), (4, 1.0)] and real == [(3, 0.005)]


def test_a_non_square_kernel_is_refused_with_what_to_do(tmp_path):
    torch = pytest.importorskip("torch")
    from na_toolkit.errors import OnnxImportError
    from na_toolkit.ir.onnx_import import from_onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, (3, 5)), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    x = torch.zeros(1, 1, 8, 8)
    model(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False, as docs/cli.md says to export
        torch.onnx.export(model.eval(), x, tmp_path / "m.onnx", dynamo=False)
    with pytest.raises(OnnxImportError, match=r"only square 2-D kernels are supported, got \[3, 5\].*use a square one"):
        from_onnx(str(tmp_path / "m.onnx"), layer_types=TK.layer_types)


def test_a_diverged_training_keeps_what_it_cost():
    # `bench train-time` times every training, diverged ones too (its record counts 2 that stopped early)
    from na_toolkit.evaluation.torch_trainer import TorchEvaluator

    ev = TorchEvaluator.from_toolkit(TK, dataset="digits", epochs=2, lr=1e6, threads=1)
    with pytest.raises(TrainingDivergedError) as err:
        ev.evaluate(TK.seed("simple-cnn"))
    assert err.value.epochs == 1 and err.value.train_time_s > 0 and err.value.train_cpu_time_s > 0

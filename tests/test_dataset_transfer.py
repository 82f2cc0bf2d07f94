"""Dataset descriptors reach the predictors: a predictor conditioned on its dataset records it and warns about
another; one fit on several datasets (per-row descriptors) predicts for one of them in its units and ranks
another's networks; a search conditions its predictors on its dataset; `predict` takes --dataset; the NB201
`bench transfer` figure on a small draw; the demo's dataset rule."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import default_toolkit, layer_types
from na_toolkit.datasets import DatasetDescriptor, get_dataset
from na_toolkit.errors import DataError
from na_toolkit.predictors import make_predictor
from na_toolkit.predictors.base import Predictor

nb = pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
from na_toolkit_nb201.descriptors import CIFAR10, CIFAR100, DESCRIPTORS, IMAGENET16_120  # noqa: E402


@pytest.fixture(scope="module")
def cells():
    """120 random NB201 cells with their CIFAR-10 / CIFAR-100 / ImageNet16-120 validation accuracies."""
    table = nb.load_table()
    rows = np.random.default_rng(3).permutation(len(table))[:120]
    archs = [nb.nb201_architecture(table.arch_strs[i], layer_types=layer_types()) for i in rows]
    columns = {"c10": "c10_valid_acc_200ep", "c100": "c100_valtest_acc_200ep", "in16": "in16_valtest_acc_200ep"}
    return SimpleNamespace(archs=archs, y={d: table.column(c)[rows] for d, c in columns.items()})


def forest():
    return make_predictor("random-forest", {"n_estimators": 30}, default_toolkit())


def test_a_conditioned_predictor_records_its_dataset_and_warns_about_another(cells):
    digits = get_dataset("digits", default_toolkit().datasets).descriptor
    p = forest().condition_on(digits).fit(cells.archs[:40], cells.y["c10"][:40])
    # one dataset: recorded, not a feature (a constant column teaches nothing)
    assert p.features_.dataset_dim == 0
    assert [(r["name"], r["rows"]) for r in p.trained_datasets_] == [("digits", 40)]
    assert p.domain_warnings(cells.archs[40:42]) == [[], []]
    warned = p.domain_warnings(cells.archs[40:41], datasets=CIFAR10)[0]
    assert warned[0] == "dataset 'cifar10' was never in training (trained on digits)"
    assert any(w.startswith("log2_height = 5") for w in warned)  # 32x32 against digits' 8x8
    # the conditioned dataset travels with clone (scikit-learn tooling) and the record with the saved file
    from sklearn.base import clone

    assert clone(p).dataset_descriptor is digits
    loaded = Predictor.from_json(json.loads(json.dumps(p.to_json())), default_toolkit())
    assert loaded.trained_datasets_ == p.trained_datasets_
    assert loaded.domain_warnings(cells.archs[40:41], datasets=CIFAR10)[0] == warned
    np.testing.assert_allclose(loaded.predict(cells.archs[40:]), p.predict(cells.archs[40:]))


def test_several_datasets_are_standardised_each_and_predicted_back_in_their_units(cells):
    archs, y = cells.archs[:90], cells.y
    per_row = [CIFAR10] * 30 + [CIFAR100] * 30 + [IMAGENET16_120] * 30
    targets = np.concatenate([y["c10"][:30], y["c100"][30:60], y["in16"][60:90]])
    p = forest().fit(archs, targets, datasets=per_row)
    # the published descriptors leave pixel statistics unknown: only the known entries are features
    names = IMAGENET16_120.vector_names()
    assert [names[c] for c in p.features_.used_dataset_columns] == [
        "log10_samples",
        "log10_train_samples",
        "log2_classes",
        "channels",
        "log2_height",
        "log2_width",
        "pixel_mean",
        "pixel_std",
    ]
    assert [r["name"] for r in p.trained_datasets_] == ["cifar10", "cifar100", "ImageNet16-120"]
    test = cells.archs[90:]
    for key, descriptor in DESCRIPTORS.items():
        pred = p.predict(test, datasets=descriptor)
        # each dataset's predictions come back in its own range (CIFAR-10 ~90%, ImageNet16-120 ~40%)
        assert abs(np.median(pred) - np.median(y[key][90:])) < 0.5 * np.std(targets), (key, np.median(pred))
        mean, std = p.predict_with_std(test, datasets=descriptor)
        np.testing.assert_allclose(mean, pred)
        assert np.all(std >= 0)
    # conditioning picks the dataset when the call names none (what a search does)
    np.testing.assert_allclose(p.condition_on(CIFAR100).predict(test), p.predict(test, datasets=CIFAR100))
    with pytest.raises(DataError, match="pass datasets="):
        p.condition_on(None).predict(test)
    loaded = Predictor.from_json(json.loads(json.dumps(p.to_json())), default_toolkit())
    np.testing.assert_allclose(loaded.predict(test, datasets=IMAGENET16_120), p.predict(test, datasets=IMAGENET16_120))


def test_a_statistic_unknown_for_one_training_dataset_is_left_out_and_needed_ones_are_required(cells):
    toolkit = default_toolkit()
    digits = get_dataset("digits", toolkit.datasets).descriptor
    y = np.concatenate([cells.y["c10"][:20], cells.y["c100"][:20]])
    # digits knows its pixel statistics, CIFAR-10's are not published: they are no feature
    p = forest().fit(cells.archs[:40], y, [digits] * 20 + [CIFAR10] * 20)
    assert "pixel_entropy_bits" not in [digits.vector_names()[c] for c in p.features_.used_dataset_columns]
    assert p.predict(cells.archs[40:42], datasets=digits).shape == (2,)
    # a predictor that learned from them cannot be asked about a dataset that leaves them unknown
    mnist_like = DatasetDescriptor.from_json({**digits.to_json(), "name": "other", "samples": 5000})
    q = forest().fit(cells.archs[:40], y, [digits] * 20 + [mnist_like] * 20)
    with pytest.raises(DataError, match="leaves a statistic unknown"):
        q.predict(cells.archs[40:42], datasets=CIFAR10)


@pytest.mark.slow
def test_bench_transfer_gains_on_a_small_draw():
    import argparse

    from na_toolkit_nb201.bench.transfer import configure, run

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(
        [
            "--seeds",
            "1",
            "--test",
            "300",
            "--source-cells",
            "150",
            "--predictor",
            "random-forest",
            "--n-estimators",
            "40",
        ]
    )
    result = run(args, default_toolkit())
    assert set(result["kendall_tau"]) == {"alone", "transfer", "pooled", "pooled_standardised"}
    # 20 ImageNet16-120 cells alone rank worse than with the CIFAR columns and their descriptors
    assert result["tau_gain"] > 0.05, result["kendall_tau"]
    assert result["unseen_dataset_warning"][0].startswith("dataset 'ImageNet16-120' was never in training")
    json.dumps(result, allow_nan=False)  # strict JSON: unknown statistics are null


def test_a_search_conditions_its_predictors_on_its_dataset(tmp_path):
    from na_toolkit.search.components import build_components
    from na_toolkit.search.config import load_config

    doc = {
        "name": "cond",
        "seed_network": "simple-cnn",
        "dataset": "digits",
        "evaluations": 2,
        "output": str(tmp_path),
        "evaluator": {"name": "torch", "options": {"epochs": 1}},
        "predictors": {"accuracy": {"name": "random-forest", "options": {"n_estimators": 10}}},
        "devices": {"cpu": {"time_model": {"name": "roofline", "options": {"device": "x86-cpu"}}}},
    }
    components = build_components(load_config(doc), default_toolkit())
    try:
        assert components.dataset_descriptor is not None and components.dataset_descriptor.name == "digits"
        assert components.new_predictor("accuracy").dataset_descriptor is components.dataset_descriptor
    finally:
        components.close()


@pytest.mark.slow
def test_predict_cli_fits_on_several_datasets_and_predicts_for_one(tmp_path, run_cli, cells):
    table = nb.load_table()
    files = {}
    for key, descriptor in DESCRIPTORS.items():
        files[key] = tmp_path / f"{key}.json"
        files[key].write_text(json.dumps({"datasets": [{"name": key, "descriptor": descriptor.to_json()}]}))
    columns = {"c10": "c10_valid_acc_200ep", "c100": "c100_valtest_acc_200ep", "in16": "in16_valtest_acc_200ep"}
    lines = []
    for k, i in enumerate(range(60)):
        key = ("c10", "c100", "in16")[k % 3]
        lines.append(
            json.dumps(
                {"arch": table.arch_strs[i], "acc": float(table.column(columns[key])[i]), "dataset": str(files[key])}
            )
        )
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(lines))
    model = tmp_path / "m.json"
    fit = run_cli(
        "predict",
        "fit",
        "--data",
        data,
        "--target",
        "acc",
        "--predictor",
        "random-forest",
        "--param",
        "n_estimators=20",
        "--out",
        model,
        "--json",
    )
    assert fit.returncode == 0, fit.stderr
    assert fit.json()["datasets"] == {"cifar10": 20, "cifar100": 20, "ImageNet16-120": 20}
    cell = table.arch_strs[100]
    missing = run_cli("predict", cell, "--model", model)
    assert "fit on 3 datasets" in missing.error_line() and "--dataset" in missing.error_line()
    ok = run_cli("predict", cell, "--model", model, "--dataset", files["in16"], "--json")
    assert ok.returncode == 0, ok.stderr
    doc = ok.json()
    assert doc["dataset"] == "ImageNet16-120" and doc["predictions"][0]["outside_training_domain"] == []
    assert 10 < doc["predictions"][0]["mean"] < 60  # ImageNet16-120's units, not CIFAR-10's
    other = run_cli("predict", cell, "--model", model, "--dataset", "digits", "--json")
    assert other.returncode == 0, other.stderr
    assert "dataset 'digits' was never in training" in other.stderr
    assert other.json()["predictions"][0]["outside_training_domain"][0].startswith("dataset 'digits'")


@pytest.mark.slow
def test_the_demo_takes_the_first_dataset_its_seed_does_not_saturate():
    from na_toolkit.search.demo import SATURATION_ACCURACY, _default_config, choose_dataset

    doc = _default_config()
    doc["evaluator"]["options"]["epochs"] = 2
    choice = choose_dataset(doc, default_toolkit(), ("no/such/data.npz", "digits", "mnist-5k"))
    assert "no/such/data.npz" in choice.unavailable
    if choice.dataset == "digits":
        assert choice.seed_valid_accuracy["digits"] < SATURATION_ACCURACY
    else:  # digits saturated: the last one, without a trial
        assert choice.dataset == "mnist-5k" and choice.seed_valid_accuracy["digits"] >= SATURATION_ACCURACY
        assert "mnist-5k" not in choice.seed_valid_accuracy
    only = choose_dataset(doc, default_toolkit(), ("mnist-5k",))
    assert only.dataset == "mnist-5k" and only.seed_valid_accuracy == {}

"""Contract tests over the predictor registry (scikit-learn conventions, NotFittedError, persistence without
pickle, uncertainty shape, bad input), a learning sanity check on NB201 rows, features, and the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import default_toolkit, get_seed, layer_types
from na_toolkit.errors import ConfigError, DataError, NotFittedError
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.predictors import DEFAULT_PREDICTOR, load_predictor, make_predictor
from na_toolkit.predictors.base import PREDICTOR_SCHEMA_VERSION, Predictor
from na_toolkit.predictors.features import architecture_features

PREDICTORS = default_toolkit().predictors.names()
#: smaller settings so the contract tests stay fast (applied where the predictor has the parameter)
FAST = {"n_estimators": 20, "epochs": 2, "n_restarts": 0, "mc_samples": 4, "net_dim": 16, "layer_dim": 16, "hidden": 16}


def fast(name: str, **extra) -> Predictor:
    cls = default_toolkit().predictors.get(name)
    params = {k: v for k, v in FAST.items() if k in cls._get_param_names()}
    return cls(**params, **extra)


def small_cnn(width: int, depth: int, kernel: int) -> object:
    b = ArchitectureBuilder((1, 8, 8), name=f"cnn-{width}-{depth}-{kernel}", layer_types=layer_types())
    x = b.input
    for _ in range(depth):
        x = b.layer("conv2d", x, filters=width, kernel=kernel)
        x = b.layer("batchnorm2d", x)
        x = b.layer("relu", x)
    x = b.layer("global_avg_pool", x)
    x = b.layer("flatten", x)
    x = b.layer("linear", x, units=10)
    return b.build()


@pytest.fixture(scope="module")
def data():
    archs = [small_cnn(w, d, k) for w in (4, 8, 16, 32) for d in (1, 2, 3) for k in (1, 3)]
    y = np.array([np.log10(a.params) + 0.1 * a.cost.macs / 1e6 for a in archs])
    return archs, y


def test_registry_has_the_documented_predictors_and_default():
    for name in (
        "ensemble",
        "random-forest",
        "extra-trees",
        "gbm",
        "bayesian-ridge",
        "kernel-ridge",
        "gp",
        "neural",
        "fewshot-latency",
    ):
        assert name in PREDICTORS
    assert DEFAULT_PREDICTOR == "ensemble"


@pytest.mark.parametrize("name", PREDICTORS)
def test_sklearn_parameter_protocol(name):
    from sklearn.base import clone

    p = fast(name)
    params = p.get_params()
    assert set(params) == set(type(p)._get_param_names())
    assert set(vars(p)) == set(params), "__init__ must store its parameters and nothing else"
    c = clone(p)
    assert type(c) is type(p) and c.get_params().keys() == params.keys() and c is not p
    key = next(iter(params))
    assert p.set_params(**{key: params[key]}) is p
    with pytest.raises(ValueError, match="(?i)invalid parameter"):  # scikit-learn's message: "Invalid parameter"
        p.set_params(no_such_parameter=1)
    assert repr(p).startswith(type(p).__name__ + "(")


# ---- scikit-learn's estimator checks ------------------------------------------------------------------------
# A predictor takes a sequence of Architecture objects, not an array (its tags say so: two_d_array=False),
# so scikit-learn's array-fed checks cannot be given to it. They run in full, none expected to fail, on each
# feature predictor's array half (`FeatureRegressor`: the target transform and model(s) that `fit` runs on
# the feature matrix); every registered predictor gets the checks that need no input data, and the array
# checks' properties are checked again on architectures below (fit returns self and leaves the parameters
# alone, refitting gives the same model, predictions do not depend on the batch, pickling keeps them).
def _feature_regressors() -> list:
    from na_toolkit.predictors.feature_regressor import FeatureRegressor
    from na_toolkit.predictors.sklearn_predictors import FEATURE_PREDICTORS

    return [
        FeatureRegressor(cls(**{k: v for k, v in FAST.items() if k in cls._get_param_names()}))
        for cls in FEATURE_PREDICTORS
    ]


@parametrize_with_checks(_feature_regressors())
def test_feature_regressors_pass_sklearn_estimator_checks(estimator, check):
    check(estimator)


#: scikit-learn's checks that need no input data: they hold for every predictor as registered
API_CHECKS = (
    "check_estimator_cloneable",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
)


@pytest.mark.parametrize("check", API_CHECKS)
@pytest.mark.parametrize("name", PREDICTORS)
def test_predictors_pass_sklearn_api_checks(name, check):
    from sklearn.utils import estimator_checks

    p = fast(name)
    getattr(estimator_checks, check)(type(p).__name__, p)


@pytest.mark.parametrize("name", PREDICTORS)
def test_sklearn_array_checks_restated_on_architectures(name, data):
    import pickle

    from sklearn.base import clone

    archs, y = data
    p = fast(name)
    params = repr(p.get_params())
    assert p.fit(archs, y) is p and repr(p.get_params()) == params  # fit leaves the parameters alone
    pred = p.predict(archs)
    np.testing.assert_allclose(clone(p).fit(archs, y).predict(archs), pred, rtol=1e-6)  # idempotent fit
    np.testing.assert_allclose(p.fit(archs, y).predict(archs), pred, rtol=1e-6)
    order = np.random.default_rng(0).permutation(len(archs))
    np.testing.assert_allclose(p.predict([archs[i] for i in order]), pred[order], rtol=1e-5)  # sample order
    np.testing.assert_allclose(np.concatenate([p.predict(archs[:5]), p.predict(archs[5:])]), pred, rtol=1e-5)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(p)).predict(archs), pred, rtol=1e-12)
    assert p.score(archs, y) == pytest.approx(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    with pytest.raises(DataError, match="1-D array"):
        fast(name).fit(archs, None)  # check_requires_y_none: y is required


@pytest.mark.parametrize("name", PREDICTORS)
def test_fit_predict_contract_and_persistence(name, data, tmp_path):
    archs, y = data
    p = fast(name)
    with pytest.raises(NotFittedError, match=rf"predictor '{name}' is not fitted yet: call fit\(archs, y\) first"):
        p.predict(archs[:2])
    with pytest.raises(NotFittedError):  # not "inside the domain": it has none yet
        p.domain_warnings(archs[:2])
    assert p.fit(archs, y) is p
    learned = [k for k in vars(p) if k not in p.get_params()]
    assert learned and all(k.endswith("_") for k in learned)
    pred = p.predict(archs[:5])
    assert pred.shape == (5,) and np.all(np.isfinite(pred))
    mean, std = p.predict_with_std(archs[:5])
    assert mean.shape == std.shape == (5,) and np.all(std >= 0)
    np.testing.assert_allclose(mean, pred, rtol=1e-6, atol=1e-9)
    if p.has_uncertainty:
        assert np.any(std > 0), f"{name} claims an uncertainty but returned zeros"
    else:  # documented: a predictor without an uncertainty gives zeros for the std
        assert not np.any(std), f"{name} claims no uncertainty but returned {std}"
    assert p.predict([]).shape == (0,)
    # save / load without pickle: a JSON document with the schema and library versions
    path = tmp_path / f"{name}.json"
    p.save(path)
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == PREDICTOR_SCHEMA_VERSION and doc["predictor"] == name
    assert {"numpy", "na-toolkit", "python"} <= set(doc["versions"])
    back = load_predictor(path, default_toolkit())
    assert type(back) is type(p)
    # the same predictions bit for bit (docs/predictors.md): the refit of a seeded model, or the saved weights
    np.testing.assert_array_equal(back.predict(archs[:5]), pred)
    np.testing.assert_array_equal(back.predict_with_std(archs[:5])[1], p.predict_with_std(archs[:5])[1])


@pytest.mark.parametrize("name", PREDICTORS)
def test_bad_input_is_a_typed_error(name, data):
    archs, y = data
    p = fast(name)
    with pytest.raises(DataError, match="architectures but"):
        p.fit(archs, y[:-1])
    with pytest.raises(DataError, match="at least"):
        p.fit(archs[:2], y[:2])
    with pytest.raises(DataError, match="NaN"):
        p.fit(archs, np.where(np.arange(len(y)) == 3, np.nan, y))
    with pytest.raises(DataError, match="not an Architecture"):
        p.fit(["|none~0|"] * len(y), y)
    with pytest.raises(DataError, match="single Architecture"):
        p.fit(archs[0], y[:1])


def test_load_rejects_corrupt_and_foreign_documents(tmp_path, data):
    archs, y = data
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_predictor(path, default_toolkit())
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(DataError, match="not a saved na_toolkit predictor"):
        load_predictor(path, default_toolkit())
    doc = fast("random-forest").fit(archs, y).to_json()
    doc["schema_version"] = 999
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="schema version 999"):
        load_predictor(path, default_toolkit())
    doc["schema_version"] = PREDICTOR_SCHEMA_VERSION
    doc["state"]["X_train"]["shape"] = [1, 1]
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match="corrupt array in saved predictor: cannot reshape"):
        load_predictor(path, default_toolkit())
    with pytest.raises(DataError, match="cannot read"):
        load_predictor(tmp_path / "missing.json", default_toolkit())


def test_make_predictor_checks_params_against_the_options_model():
    with pytest.raises(ConfigError, match=r"predictor 'gp' params.n_estimators: unknown key"):
        make_predictor("gp", {"n_estimators": 5}, default_toolkit())
    with pytest.raises(ConfigError, match=r"params.n_estimators: Input should be greater than or equal to 1"):
        make_predictor("random-forest", {"n_estimators": -5}, default_toolkit())
    assert make_predictor("random-forest", {"n_estimators": 7}, default_toolkit()).n_estimators == 7


def test_saved_predictor_file_is_validated_by_its_document_model(tmp_path, data):
    """Every field of a saved predictor is checked before anything is built: unknown keys, types, and the
    parameters against the predictor's Options model (the same ranges a search config gets)."""
    archs, y = data
    good = fast("random-forest").fit(archs, y).to_json()
    path = tmp_path / "p.json"
    cases = {
        "saved predictor.n_trian: unknown key. Did you mean 'n_train'": {"n_trian": 3},
        "saved predictor.n_train": {"n_train": "abc"},
        "saved predictor.predictor": {"predictor": "x" * 300},
        "saved predictor 'random-forest': params.n_estimators": {"params": {**good["params"], "n_estimators": -5}},
    }
    for message, change in cases.items():
        path.write_text(json.dumps({**good, **change}))
        with pytest.raises(DataError, match=re.escape(message)):
            load_predictor(path, default_toolkit())
    path.write_text(json.dumps(good))
    assert load_predictor(path, default_toolkit()).n_train_ == len(archs)


def test_neural_predictor_multi_output_heads(data):
    archs, y = data
    Y = np.stack([y, 2 * y + 1], axis=1)
    p = fast("neural").fit(archs, Y)
    pred = p.predict(archs[:4])
    assert pred.shape == (4, 2)
    mean, std = p.predict_with_std(archs[:4])
    assert mean.shape == std.shape == (4, 2)


def test_dataset_descriptor_is_a_feature(data):
    from na_toolkit.datasets import get_dataset

    archs, y = data
    descriptor = get_dataset("digits", default_toolkit().datasets).descriptor
    dim = len(descriptor.to_vector())
    # one dataset, given to fit or by condition_on: recorded, not a feature (one constant column teaches a model
    # nothing), and the same model either way (it was a feature given to fit: other tree splits, other predictions)
    p = fast("random-forest").fit(archs, y, datasets=descriptor)
    conditioned = fast("random-forest").condition_on(descriptor).fit(archs, y)
    assert p.features_.dataset_dim == conditioned.features_.dataset_dim == 0
    assert np.array_equal(p.predict(archs[:5]), conditioned.predict(archs[:5]))
    assert [r["name"] for r in p.trained_datasets_] == ["digits"]
    # one descriptor per architecture: two datasets in one training set
    other = np.array(descriptor.to_vector()) * 2
    per_arch = [descriptor if i % 2 else other for i in range(len(archs))]
    r = fast("random-forest").fit(archs, y, datasets=per_arch)
    assert r.features_.dataset_dim == dim
    with pytest.raises(DataError, match="pass datasets="):
        r.predict(archs[:2])
    assert r.predict(archs[:2], datasets=descriptor).shape == (2,)
    q = fast("neural").fit(archs, y, datasets=per_arch)
    assert q.predict(archs[:3], datasets=per_arch[:3]).shape == (3,)
    with pytest.raises(DataError, match="3 values, the predictor was fit on"):
        q.predict(archs[:2], datasets=np.array([1.0, 2.0, 3.0]))
    with pytest.raises(DataError, match="dataset descriptors for"):
        p.fit(archs, y, datasets=per_arch[:5])


def test_path_features_see_dead_and_live_paths():
    nb = pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    dead = architecture_features(
        nb.nb201_architecture(
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|", layer_types=layer_types()
        )
    )
    assert dead["has_effective_path"] == 0.0
    resnet = architecture_features(nb.nb201_architecture(nb.RESNET_CELL, layer_types=layer_types()))
    assert resnet["has_effective_path"] == 1.0
    # the cell's two paths: skip, and conv-conv; 15 cells: 2**15 paths through the cells, x2 per reduction
    assert resnet["eff_compute.log_paths"] == pytest.approx(np.log10(1 + 2**15 * 4), rel=1e-9)
    assert resnet["eff_compute.max"] > resnet["eff_compute.min"]
    f = architecture_features(get_seed("resnet-cifar"))
    assert f["count.conv2d"] == 21 and f["depth"] > 20


def test_learning_sanity_on_nb201_rows():
    nb = pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    from scipy.stats import kendalltau

    table = nb.load_table()
    rows = np.random.default_rng(0).permutation(len(table))[:260]
    archs = [nb.nb201_architecture(table.arch_strs[i], layer_types=layer_types()) for i in rows]
    y_valid = table.column("c10_valid_acc_200ep")[rows]
    y_test = table.column("c10_test_acc_200ep")[rows]
    p = make_predictor(DEFAULT_PREDICTOR, {"n_estimators": 100}, default_toolkit()).fit(archs[:60], y_valid[:60])
    tau = kendalltau(p.predict(archs[60:]), y_test[60:])[0]
    assert tau > 0.5, tau
    times = table.column("c10_train_time_s_200ep")[rows]
    t = make_predictor("kernel-ridge", {}, default_toolkit()).fit(archs[:60], times[:60])
    mape = np.mean(np.abs(t.predict(archs[60:]) / times[60:] - 1))
    assert mape < 0.04, mape


def test_predict_cli_fit_and_predict(tmp_path, run_cli):
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    model = tmp_path / "m.json"
    r = run_cli(
        "predict",
        "fit",
        "--target",
        "c10_valid_acc_200ep",
        "--train",
        "40",
        "--predictor",
        "gbm",
        "--out",
        model,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert r.json()["predictor"] == "gbm" and model.exists()
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    r = run_cli("predict", cell, "--model", model, "--json")
    assert r.returncode == 0, r.stderr
    out = r.json()
    assert out["predictions"][0]["arch"] == cell and 10 < out["predictions"][0]["mean"] < 100
    assert run_cli("predict", "|bad|", "--model", model).error_line().startswith("na-toolkit: error: malformed NB201")
    assert "no column" in run_cli("predict", "fit", "--target", "nope", "--out", tmp_path / "x.json").error_line()
    assert "cannot read" in run_cli("predict", cell, "--model", tmp_path / "missing.json").error_line()


def test_neural_ranking_loss_and_head_spread(data):
    import torch

    from na_toolkit.predictors.neural_torch import pairwise_rank_loss

    target = torch.tensor([[0.0], [1.0], [2.0]])
    right, wrong = 10 * target[None], -10 * target[None]  # [heads=1, B, outputs]
    assert float(pairwise_rank_loss(right, target)) < 1e-4 < 9.0 < float(pairwise_rank_loss(wrong, target))
    assert float(pairwise_rank_loss(right, torch.zeros(3, 1))) == 0.0  # ties carry no order
    archs, y = data
    # several heads: the uncertainty is their spread (nonzero), one head: MC dropout; the IR features are inputs
    p = fast("neural", heads=3).fit(archs, y)
    assert p.features_ is not None and len(p.model_.heads) == 3
    assert np.all(p.predict_with_std(archs[:4])[1] > 0)
    q = fast("neural", heads=1, feature_inputs=False).fit(archs, y)
    assert q.features_ is None and q.predict_with_std(archs[:4])[1].shape == (4,)


def test_neural_share_embedding_fit_first_then_lend(data):
    archs, y = data
    # fit before any controller asked: the embedding it then lends is the one it trained
    p = fast("neural", share_embedding=True).fit(archs, y)
    shared = p.shared_embedding(archs[0].layer_types)
    assert shared.module is p.model_.embedding and shared.tokenizer is p.tokenizer_
    assert p.keeps_state and not fast("neural").keeps_state


def test_neural_fit_is_the_same_whatever_the_global_torch_state(data):
    # a committed benchmark's neural figures must rerun: the fit seeds its own draws and sets its own threads
    import torch

    archs, y = data[0][:8], data[1][:8]
    first = fast("neural", share_embedding=True).fit(archs, y).predict(archs)
    threads = torch.get_num_threads()
    torch.manual_seed(12345)
    torch.rand(1000)
    state = torch.get_rng_state()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        again = fast("neural", share_embedding=True).fit(archs, y).predict(archs)
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(first, again)
    assert torch.equal(torch.get_rng_state(), state), "fitting drew from the global torch generator"


def test_a_predictor_knows_its_training_domain_and_says_when_a_network_is_outside_it():
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    from na_toolkit_nb201.space import nb201_architecture
    from na_toolkit_nb201.table import load_table

    tk = default_toolkit()
    table = load_table(None)
    rows = np.random.default_rng(0).permutation(len(table))[:40]
    archs = [nb201_architecture(table.arch_strs[i], layer_types=tk.layer_types) for i in rows]
    y = table.column("c10_valid_acc_200ep")[rows] / 100
    model = make_predictor("bayesian-ridge", {}, tk).fit(archs, y)
    inside, outside = model.domain_warnings([archs[0], tk.seed("simple-cnn")])
    assert inside == []
    assert outside and any("never in training" in r for r in outside)  # its maxpool: no NB201 cell has one
    # the same after a save / load (the training matrix travels with the model)
    back = type(model).from_json(model.to_json(), tk)
    assert back.domain_warnings([tk.seed("simple-cnn")]) == [outside]


# ---- the target's valid range: every predictor clips into it through the base, and says from what -----------
@pytest.mark.parametrize("name", PREDICTORS)
def test_predictions_are_clipped_into_the_targets_valid_range(name, data, tmp_path):
    from na_toolkit.predictors.targets import Target

    archs, y = data
    high = float(np.median(y))  # a range the fitted model's predictions overshoot for about half the networks
    p = fast(name).for_target(Target("y", "%", 0.0, high)).fit(archs, y)
    pred = p.predict(archs)
    mean, std, notes = p.predict_with_notes(archs)
    assert np.all(pred <= high) and np.any(pred == high)
    np.testing.assert_allclose(p.predict_with_std(archs)[0], pred, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(mean, pred, rtol=1e-6, atol=1e-9)
    clipped = [i for i, n in enumerate(notes) if n]
    assert clipped and all(mean[i] == high for i in clipped)
    assert re.fullmatch(
        rf"predicted [\d.]+ %, outside y's valid range 0\.\.{high:g} %: clipped to {high:.4g} %", notes[clipped[0]][0]
    )
    # the range travels with the saved predictor
    p.save(tmp_path / "p.json")
    back = load_predictor(tmp_path / "p.json", default_toolkit())
    assert back.target == p.target and np.all(back.predict(archs) <= high)


def test_a_plugin_predictor_with_predict_alone_is_clipped_by_the_base(data):
    from na_toolkit.predictors.targets import Target

    class Overshoot(Predictor):  # the minimal plugin predictor of docs/plugin_hooks.md
        name = "overshoot"

        def fit(self, archs, y):
            self.mean_ = float(np.mean(y))
            return self

        def predict(self, archs):
            return np.full(len(archs), 1.5)

    archs, y = data
    p = Overshoot().for_target(Target("accuracy", "fraction", 0.0, 1.0)).fit(archs, y)
    mean, _, notes = p.predict_with_notes(archs[:2])
    assert mean.tolist() == [1.0, 1.0] and p.predict_with_std(archs[:2])[0].tolist() == [1.0, 1.0]
    assert notes[0] == ["predicted 1.5 (fraction), outside accuracy's valid range 0..1: clipped to 1 (fraction)"]

    class OwnStd(Overshoot):  # a plugin's own predict_with_std: predict_with_notes (what the search calls) clips it
        has_uncertainty = True

        def predict_with_std(self, archs):
            return np.full(len(archs), -0.5), np.full(len(archs), 0.1)

    q = OwnStd().for_target(Target("accuracy", "fraction", 0.0, 1.0)).fit(archs, y)
    mean, std, notes = q.predict_with_notes(archs[:2])
    assert mean.tolist() == [0.0, 0.0] and std.tolist() == [0.1, 0.1] and "clipped to 0 (fraction)" in notes[1][0]


def test_a_plugin_predictor_taking_archs_alone_predicts_when_conditioned_on_a_dataset(data):
    # a search conditions every predictor on its dataset's descriptor: a plugin's predict(archs) or
    # predict_with_std(archs) is still called with the architectures alone (it was given the descriptor too,
    # a TypeError)
    from na_toolkit.datasets import get_dataset
    from na_toolkit.predictors.targets import Target

    class Half(Predictor):
        name = "half"

        def fit(self, archs, y):
            return self

        def predict(self, archs):
            return np.full(len(archs), 0.5)

    class HalfStd(Half):
        has_uncertainty = True

        def predict_with_std(self, archs):
            return np.full(len(archs), 1.5), np.full(len(archs), 0.1)

    archs, y = data
    descriptor = get_dataset("digits", default_toolkit().datasets).descriptor
    target = Target("accuracy", "fraction", 0.0, 1.0)
    p = Half().for_target(target).condition_on(descriptor).fit(archs, y)
    assert p.predict_with_notes(archs[:2])[0].tolist() == [0.5, 0.5]
    assert p.predict_with_std(archs[:2])[0].tolist() == [0.5, 0.5]
    q = HalfStd().for_target(target).condition_on(descriptor).fit(archs, y)
    mean, std, notes = q.predict_with_notes(archs[:2])
    assert mean.tolist() == [1.0, 1.0] and std.tolist() == [0.1, 0.1] and notes[0]


def test_the_search_scores_accuracy_clipped_to_a_fraction(tmp_path):
    """The scorer ranks on what the predictor returns: a predicted accuracy past 1 (a regression extrapolating)
    would outrank every measured network; the search's predictors know accuracy is a fraction in [0, 1]."""
    import search_parts_plugin
    from na_toolkit.plugins import load_toolkit
    from na_toolkit.search import Counters, Scorer, build_components, load_config
    from test_search_parts import doc

    tk = load_toolkit(entry_points=False, extra_plugins=(search_parts_plugin,))
    components = build_components(load_config(doc(tmp_path)), tk)
    try:
        archs = [small_cnn(w, d, 3) for w in (4, 8, 16) for d in (1, 2)]
        y = np.array([0.5 + 0.1 * d + 0.02 * np.log2(w) for w in (4, 8, 16) for d in (1, 2)])
        pred = components.new_predictor("accuracy").fit(archs, y)
        assert pred.target.unit == "fraction" and (pred.target.low, pred.target.high) == (0.0, 1.0)
        scorer = Scorer(components, Counters())
        scorer.predictors["accuracy"] = pred
        deep = [small_cnn(32, 6, 3)]  # far past the training depths: the linear model says > 1
        assert pred._raw_predict(deep, None)[0] > 1.0
        assert scorer.score(deep)[0].metrics["accuracy"] == 1.0
    finally:
        components.close()


def test_the_neural_predictor_knows_its_feature_ranges(data, tmp_path):
    archs, y = data
    p = fast("neural").fit(archs, y)
    wide = small_cnn(512, 8, 3)  # the same layer types, far wider and deeper than any training network
    inside, outside = p.domain_warnings([archs[0], wide])
    assert inside == [] and "max_channels = 512 (trained on 4..32)" in outside
    p.save(tmp_path / "n.json")
    assert load_predictor(tmp_path / "n.json", default_toolkit()).domain_warnings([wide]) == [outside]


# ---- `na-toolkit predict`: units, clipping, --data paths, options it would ignore (real subprocesses) ---------
def accuracy_lines() -> list[dict]:
    """A run's evaluations as `predict fit --data` reads them: accuracy (a fraction) rising with depth."""
    return [
        {"arch": small_cnn(w, d, 3).to_json(), "accuracy": 0.5 + 0.1 * d + 0.02 * np.log2(w)}
        for w in (4, 8, 16)
        for d in (1, 2)
    ]


def write_jsonl(path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_predict_cli_prints_the_unit_its_target_is_defined_in(tmp_path, run_cli):
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    fit = ["predict", "fit", "--target", "lat_pixel3", "--train", "12", "--predictor", "bayesian-ridge"]
    assert run_cli(*fit, "--out", tmp_path / "lat.json").returncode == 0
    r = run_cli("predict", "nb201:5", "--model", tmp_path / "lat.json")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"[\d.]+ ± [\d.]+ ms lat_pixel3  nb201:5\n", r.stdout), r.stdout  # NB201 latencies: ms
    # a target nothing defines: the unit given at fit time
    write_jsonl(tmp_path / "d.jsonl", [{**line, "score": line["accuracy"]} for line in accuracy_lines()])
    fit = ["predict", "fit", "--data", tmp_path / "d.jsonl", "--target", "score", "--predictor", "bayesian-ridge"]
    assert run_cli(*fit, "--unit", "points", "--out", tmp_path / "s.json").returncode == 0
    r = run_cli("predict", "simple-cnn", "--model", tmp_path / "s.json")
    assert re.match(r"[\d.]+ ± [\d.]+ points score  simple-cnn", r.stdout), r.stdout


def test_predict_cli_clips_an_accuracy_past_its_range_and_says_so(tmp_path, run_cli):
    write_jsonl(tmp_path / "d.jsonl", accuracy_lines())
    fit = ["predict", "fit", "--data", tmp_path / "d.jsonl", "--target", "accuracy", "--predictor", "bayesian-ridge"]
    assert run_cli(*fit, "--out", tmp_path / "m.json").returncode == 0
    (tmp_path / "deep.json").write_text(json.dumps(small_cnn(32, 6, 3).to_json()))  # the model says > 1 for it
    r = run_cli("predict", tmp_path / "deep.json", "--model", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout.startswith("1 ± ") and "(fraction) accuracy" in r.stdout and "clipped into the valid range" in r.stdout
    )
    assert re.search(
        r"predicted 1\.\d+ \(fraction\), outside accuracy's valid range 0\.\.1: clipped to 1 \(fraction\)", r.stderr
    )
    out = run_cli("predict", tmp_path / "deep.json", "--model", tmp_path / "m.json", "--json").json()
    assert out["unit"] == "fraction" and out["valid_range"] == [0.0, 1.0]
    assert out["predictions"][0]["mean"] == 1.0 and len(out["predictions"][0]["clipped"]) == 1


def test_predict_fit_data_reads_relative_arch_paths_beside_the_data_file(tmp_path, run_cli):
    folder = tmp_path / "run"
    lines = accuracy_lines()
    for i, line in enumerate(lines):
        (folder / "archs").mkdir(parents=True, exist_ok=True)
        (folder / "archs" / f"a{i}.json").write_text(json.dumps(line["arch"]))
        line["arch"] = f"archs/a{i}.json"
    write_jsonl(folder / "d.jsonl", lines)
    fit = ["predict", "fit", "--data", "run/d.jsonl", "--target", "accuracy", "--predictor", "bayesian-ridge"]
    r = run_cli(*fit, "--out", "m.json", "--json", cwd=tmp_path)  # run from elsewhere than the data's folder
    assert r.returncode == 0, r.stderr
    assert r.json()["samples"] == len(lines)
    write_jsonl(folder / "bad.jsonl", [{**lines[0], "arch": "archs/missing.json"}])
    err = run_cli(*fit[:3], "run/bad.jsonl", *fit[4:], "--out", "m.json", cwd=tmp_path).error_line()
    assert "run/archs/missing.json" in err


def test_predict_refuses_options_it_would_ignore(tmp_path, run_cli):
    write_jsonl(tmp_path / "d.jsonl", accuracy_lines())
    fit = ["predict", "fit", "--data", tmp_path / "d.jsonl", "--out", tmp_path / "m.json"]
    err = run_cli(*fit, "--target", "accuracy", "--train", "50").error_line()
    assert "--train chooses rows of a table evaluator and --data gives the rows itself" in err
    err = run_cli(*fit, "--target", "accuracy", "--from", "nb201-table").error_line()
    assert "--from chooses rows of a table evaluator" in err
    assert "predict fit --data needs --target KEY" in run_cli(*fit).error_line()
    write_jsonl(tmp_path / "odd.jsonl", [*accuracy_lines()[:3], {**accuracy_lines()[3], "accuracy": "n/a"}])
    err = run_cli(*fit[:3], tmp_path / "odd.jsonl", *fit[4:], "--target", "accuracy").error_line()
    assert f"--data {tmp_path / 'odd.jsonl'} line 4: accuracy is 'n/a', not a finite number" in err
    err = run_cli(*fit, "--target", "accuracy", "--unit", "ms").error_line()
    assert "--unit 'ms': accuracy is defined in 'fraction'" in err
    assert "predict fit writes one: give --out" in run_cli(*fit, "--model", tmp_path / "x.json").error_line()
    err = run_cli("predict", "simple-cnn", "--model", tmp_path / "m.json", "--target", "y", "--train", "5").error_line()
    assert "--target, --train are options of `predict fit`" in err


def test_recorded_versions_are_the_running_code_s():
    # an editable install's metadata keeps the version it was installed at (this checkout's venv said 0.1.0
    # after the code became 0.2.0): a saved predictor and the machine record said na-toolkit 0.1.0
    import na_toolkit
    from na_toolkit.machine import library_version, machine_info
    from na_toolkit.predictors.base import library_versions

    assert library_version("na-toolkit") == na_toolkit.__version__
    assert library_versions()["na-toolkit"] == na_toolkit.__version__
    assert machine_info()["libraries"]["na-toolkit"] == na_toolkit.__version__
    assert library_version("no-such-distribution-xyz") is None

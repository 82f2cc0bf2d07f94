"""One performance network with the controller: the neural predictor's embedding shared with the controller
(joint training), a pretrained predictor loaded by a search config (frozen or fine-tuned), and the
scikit-learn predictors left as they were. Real searches on the NAS-Bench-201 table (cheap ground truth)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from conftest import default_toolkit
from na_toolkit.errors import ConfigError, DataError
from na_toolkit.predictors import load_predictor, make_predictor
from na_toolkit.predictors.base import Predictor
from na_toolkit.search import run_search
from na_toolkit.search.components import build_components
from na_toolkit.search.config import load_config
from na_toolkit.search.loop import SearchLoop
from na_toolkit.store import MemoryRunStore

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
from na_toolkit_nb201 import space as nb201_space
from na_toolkit_nb201 import table as nb201_table

#: small widths and few epochs: the tests check the wiring, bench predictor checks the quality
SMALL = {"epochs": 2, "heads": 2, "hidden": 16, "token_dim": 8, "layer_dim": 16, "net_dim": 16}
NB201 = {
    "name": "nb",
    "seed_network": "nb201",
    "dataset": "c10",
    "evaluations": 8,
    "random_seed": 0,
    "search": {"per_round": 4, "moves": ["set_edge_op"], "min_fit": 4},
    "strategy": {"name": "neural-architect", "options": {"updates": 1, "episodes": 4, "train_embedding": True}},
    "evaluator": "nb201-table",
    "predictors": {"accuracy": {"name": "neural", "options": {**SMALL, "share_embedding": True}}},
}


@pytest.fixture(scope="module")
def tk():
    return default_toolkit()


def nb201_doc(tmp_path, predictor=None):
    doc = copy.deepcopy(NB201)
    doc["output"] = str(tmp_path)
    if predictor is not None:
        doc["predictors"] = {"accuracy": predictor}
    return doc


def cells(tk, n, seed=0):
    table = nb201_table.load_table()
    rows = np.random.default_rng(seed).permutation(len(table))[:n]
    archs = [nb201_space.nb201_architecture(table.arch_strs[i], layer_types=tk.layer_types) for i in rows]
    return archs, table.column("c10_valid_acc_200ep")[rows] / 100


def run_loop(tk, doc):
    """A search run by hand, so that its strategy and predictors can be looked at afterwards."""
    components = build_components(load_config(doc, toolkit=tk), tk)
    loop = SearchLoop(components, MemoryRunStore("t", doc))
    loop.run()
    return loop


def weights(module):
    return [p.detach().clone() for p in module.parameters()]


# ---- joint training ---------------------------------------------------------------------------------------
def test_joint_search_builds_the_controller_on_the_predictor_embedding(tk, tmp_path):
    loop = run_loop(tk, nb201_doc(tmp_path))
    assert loop.counters.evaluations == 8 and loop.counters.failed_evaluations == 0
    assert loop.counters.predictor_fits >= 2
    pred = loop.scorer.predictors["accuracy"]
    # one instance kept across the refits, and the controller holds the very same parameter tensors
    assert loop.components.new_predictor("accuracy") is pred and pred.keeps_state
    controller = loop.strategy.controller
    shared = list(pred.model_.embedding.parameters())
    assert shared and all(a is b for a, b in zip(controller.net.embedding.parameters(), shared, strict=True))
    assert controller.net.embedding is pred.model_.embedding
    # the controller's optimizer trains those tensors too (train_embedding = true)
    trained = {id(p) for group in controller.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in trained for p in shared)


def _controller_on(pred, tk):
    from na_toolkit.controller.action_space import ActionSpace
    from na_toolkit.controller.policy import Controller

    shared = pred.shared_embedding(tk.layer_types)
    space = ActionSpace.from_move_types([tk.moves.get("set_edge_op")])
    ctl = Controller(
        shared.tokenizer,
        space,
        0,
        train_embedding=True,
        token_dim=shared.token_dim,
        layer_dim=shared.layer_dim,
        net_dim=shared.net_dim,
        embedding=shared.module,
    )
    shared.listeners.append(ctl.forget_embeddings)
    return ctl


def test_a_refit_changes_the_controller_embedding_and_keeps_its_training(tk):
    archs, y = cells(tk, 12)
    pred = make_predictor("neural", {**SMALL, "share_embedding": True}, tk)
    ctl = _controller_on(pred, tk)
    before = ctl.embed(archs[:2])[0][0].clone()  # cached by the controller
    pred.fit(archs, y)
    after = ctl.embed(archs[:2])[0][0]
    assert not torch.allclose(before, after), "the refit must reach the controller (cache dropped)"
    # what the predictor predicts is computed by the same weights the controller embeds with
    with torch.no_grad():
        direct = pred.model_.embedding(*map(torch.from_numpy, pred.tokenizer_.batch(archs[:2])))[0][0]
    assert torch.allclose(after, direct, atol=1e-6)
    # warm start: the weights a refit starts from are the current ones (the controller's changes included),
    # not a new initialisation: with a vanishing learning rate a refit leaves them where they are
    with torch.no_grad():
        for p in ctl.net.embedding.parameters():
            p.add_(0.01)
    moved = weights(ctl.net.embedding)
    pred.set_params(lr=1e-12)
    pred.fit(archs, y)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(moved, weights(pred.model_.embedding), strict=True))


def test_a_training_time_predictor_shares_the_same_embedding(tk, tmp_path):
    doc = nb201_doc(tmp_path)
    doc["predictors"]["train_time_s"] = copy.deepcopy(doc["predictors"]["accuracy"])
    doc["budgets"] = {"train_time_s": 1e6}
    components = build_components(load_config(doc, toolkit=tk), tk)
    acc, train = components.new_predictor("accuracy"), components.new_predictor("train_time_s")
    assert acc is not train and components.shared_embedding() is acc.shared_embedding(tk.layer_types)
    assert train.shared_embedding(tk.layer_types).module is acc.shared_embedding(tk.layer_types).module
    components.close()


def test_frozen_pretrained_and_shared_embedding_is_refused(tk):
    # the controller would train the embedding the config says to keep frozen
    with pytest.raises(ConfigError, match="fine_tune = true"):
        make_predictor("neural", {"share_embedding": True, "pretrained": "x.json", "fine_tune": False}, tk)


# ---- pretrained ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory, run_cli):
    """A neural predictor fit with `na-toolkit predict fit` on NB201 table rows."""
    folder = tmp_path_factory.mktemp("pretrained")
    params = [a for k, v in SMALL.items() for a in ("--param", f"{k}={v}")]
    out = folder / "model.json"
    res = run_cli("predict", "fit", "--predictor", "neural", *params, "--train", "16", "--out", str(out), "--json")
    assert res.json()["samples"] == 16
    doc = json.loads(out.read_text())
    assert doc["predictor"] == "neural" and doc["target"] == "c10_valid_acc_200ep"  # JSON, no pickle
    return out


def _search_toml(folder, model_name, fine_tune):
    # the pretrained file is named relative to the config file, which is not the working directory
    (folder / "search.toml").write_text(
        f"""
name = "nb"
seed_network = "nb201"
dataset = "c10"
evaluations = 8
output = "runs"
[search]
per_round = 4
moves = ["set_edge_op"]
min_fit = 4
[strategy]
name = "neural-architect"
options = {{ updates = 1, episodes = 4 }}
[evaluator]
name = "nb201-table"
[predictors.accuracy]
name = "neural"
options = {{ pretrained = "{model_name}", fine_tune = {str(fine_tune).lower()}, epochs = 2 }}
"""
    )
    return folder / "search.toml"


@pytest.mark.parametrize("fine_tune", [False, True])
def test_pretrained_predictor_in_a_search(tk, tmp_path, saved, fine_tune):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.json").write_bytes(saved.read_bytes())
    config = _search_toml(tmp_path, "models/m.json", fine_tune)
    store = MemoryRunStore("t", {})
    res = run_search(config, toolkit=tk, progress=False, outputs=False, store=store)
    assert res.counters.evaluations == 8 and res.counters.predictor_fits >= 2
    found = store.load_checkpoint("predictor:accuracy")
    assert found is not None
    doc = {k: v for k, v in found[1].items() if k != "trained_on"}  # what the checkpoint adds to the document
    in_search = Predictor.from_json(doc, tk)
    original = load_predictor(saved, tk)
    archs, _ = cells(tk, 20, seed=3)
    saved_weights = json.loads(saved.read_text())["state"]["weights"]
    if fine_tune:
        assert found[1]["state"]["weights"] != saved_weights
        assert not np.allclose(in_search.predict(archs), original.predict(archs))
    else:  # frozen: the search's refits left every weight as saved, so the predictions are the file's
        assert found[1]["state"]["weights"] == saved_weights
        # in the search's unit: the file learned percentages (the NB201 column), a search records fractions
        assert original.target.unit == "%" and in_search.target.unit == "fraction"
        assert np.allclose(in_search.predict(archs), original.predict(archs) / 100)
    assert np.all((in_search.predict(archs) > 0) & (in_search.predict(archs) < 1))


def test_a_pretrained_file_of_another_unit_or_none_is_refused_unless_it_predicts_in_range(tk, tmp_path):
    from na_toolkit.predictors.targets import Target

    archs, y = cells(tk, 8)

    def fit_and_save(name, target, values):
        pred = make_predictor("neural", dict(SMALL), tk).for_target(target)
        pred.fit(archs, values)
        (tmp_path / name).write_text(json.dumps(pred.to_json()))
        return load_config(_search_toml(tmp_path, name, False), toolkit=tk)

    cases = [
        ("seconds.json", Target("t", "s"), y, r"predicts t in s, and accuracy is in fraction, which it cannot"),
        ("nounit.json", Target("acc"), y * 100, r"names no unit .* predicts \d+\.?\d* for the seed network, outside "),
    ]
    for name, target, values, message in cases:
        with pytest.raises(ConfigError, match=r"predictors\.accuracy\.options\.pretrained: .*" + message):
            build_components(fit_and_save(name, target, values), tk).close()
    # a file without a unit whose predictions are fractions is taken, and clips as the search's accuracy
    components = build_components(fit_and_save("fractions.json", Target("acc"), y), tk)
    try:
        assert components.kept_predictors["accuracy"].target.unit == "fraction"
    finally:
        components.close()


def test_predict_fit_from_a_pretrained_file_learns_in_the_targets_unit(tk, tmp_path, saved, run_cli):
    # `predict fit --param pretrained=FILE` on a run's fractions, from a file fit on NB201 percentages: the file's
    # output is brought into the fractions (as a search does), and the saved predictor says it predicts accuracy
    archs, y = cells(tk, 8, seed=4)
    data = tmp_path / "evaluations.jsonl"
    data.write_text("".join(json.dumps({"arch": a.to_json(), "accuracy": float(v)}) + "\n" for a, v in zip(archs, y)))
    out = tmp_path / "tuned.json"
    fit = ("predict", "fit", "--predictor", "neural", "--param", f"pretrained={saved}", "--data", str(data))
    res = run_cli(*fit, "--param", "fine_tune=false", "--target", "accuracy", "--out", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    assert (doc["target"], doc["unit"], doc["valid_range"]) == ("accuracy", "fraction", [0.0, 1.0])
    # frozen: the file's predictions, in fractions
    assert np.allclose(load_predictor(out, tk).predict(archs), load_predictor(saved, tk).predict(archs) / 100)
    # a unit the file's cannot be converted to is refused, naming both
    times = tmp_path / "times.jsonl"
    times.write_text(
        "".join(json.dumps({"arch": a.to_json(), "train_time_s": 5.0 + i}) + "\n" for i, a in enumerate(archs))
    )
    res = run_cli(*fit[:-1], str(times), "--target", "train_time_s", "--out", str(tmp_path / "t.json"))
    assert res.returncode == 2 and res.stderr.count("na-toolkit: error: ") == 1 and "Traceback" not in res.stderr
    assert "predicts c10_valid_acc_200ep in %, and train_time_s is in s, which it cannot" in res.stderr


def test_a_library_pretrained_predictor_converts_as_a_search_does(tk, tmp_path, saved):
    # NeuralPredictor(pretrained=FILE) given its target in a program: the file's percentages become the
    # target's fractions when the file is read (before: the file's target replaced the one given, and a fit on
    # fractions fine-tuned a model of percentages), whether the target is given before or after the file is read
    from na_toolkit.predictors.neural import NeuralPredictor
    from na_toolkit.predictors.targets import Target, metric_target

    archs, y = cells(tk, 6, seed=6)
    original = load_predictor(saved, tk).predict(archs)
    before = NeuralPredictor(pretrained=str(saved), fine_tune=False).for_target(metric_target("accuracy"))
    before.fit(archs, y)
    after = NeuralPredictor(pretrained=str(saved), fine_tune=False)
    after.restore_pretrained()
    after.for_target(metric_target("accuracy"))
    for pred in (before, after):
        assert pred.target.unit == "fraction"
        assert np.allclose(pred.predict(archs), original / 100)
    with pytest.raises(ConfigError, match=r"model\.json' predicts c10_valid_acc_200ep in %, and t is in s"):
        NeuralPredictor(pretrained=str(saved)).for_target(Target("t", "s")).fit(archs, y)
    # a file that names no unit is tried on the networks it is first fit on, as a search tries it on its seed
    nounit = make_predictor("neural", dict(SMALL), tk).for_target(Target("acc")).fit(archs, y * 100)
    (tmp_path / "nounit.json").write_text(json.dumps(nounit.to_json()))
    pred = NeuralPredictor(pretrained=str(tmp_path / "nounit.json")).for_target(metric_target("accuracy"))
    with pytest.raises(ConfigError, match=r"names no unit .* for the 6 network\(s\) it was first given"):
        pred.fit(archs, y)


def test_pretrained_load_keeps_the_saved_shape(tk, saved):
    # the configured widths give way to the file's: the weights decide the model's shape
    pred = make_predictor("neural", {"pretrained": str(saved), "fine_tune": False, "net_dim": 64}, tk)
    archs, y = cells(tk, 6, seed=5)
    pred.fit(archs, y)
    assert pred.net_dim == SMALL["net_dim"]
    assert np.array_equal(pred.predict(archs), load_predictor(saved, tk).predict(archs))


def test_a_missing_or_bad_pretrained_file_is_one_line(tk, tmp_path):
    def build(name):
        doc = nb201_doc(tmp_path, {"name": "neural", "options": {"pretrained": name}})
        build_components(load_config(doc, toolkit=tk, base_dir=tmp_path), tk).close()

    with pytest.raises(ConfigError) as missing:
        build("absent.json")
    assert "absent.json" in str(missing.value) and "\n" not in str(missing.value)
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "other.json").write_text(
        json.dumps(make_predictor("bayesian-ridge", {}, tk).fit(*cells(tk, 5)).to_json())
    )
    for name, words in (("garbage.json", "garbage.json"), ("other.json", "not 'neural'")):
        with pytest.raises(ConfigError) as bad:
            build(name)
        message = str(bad.value)
        assert message.startswith("predictors.accuracy") and words in message and "\n" not in message
    with pytest.raises(DataError, match="does not share its embedding"):
        make_predictor("neural", {}, tk).shared_embedding(tk.layer_types)


# ---- the scikit-learn predictors -------------------------------------------------------------------------------
def test_sklearn_predictors_are_refit_fresh(tk, tmp_path):
    doc = nb201_doc(tmp_path, {"name": "ensemble", "options": {"n_estimators": 10}})
    loop = run_loop(tk, doc)
    assert loop.components.kept_predictors == {} and loop.components.shared_embedding() is None
    assert loop.components.new_predictor("accuracy") is not loop.scorer.predictors["accuracy"]
    assert loop.counters.predictor_fits >= 2


def test_bench_predictor_measures_the_shared_embedding_predictor(run_cli):
    args = ["--predictors", "neural", "--train", "8", "--test", "20", "--seeds", "1", "--neural-epochs", "1"]
    out = run_cli("bench", "predictor", *args, "--throughput-archs", "10", "--json").json()
    assert set(out["kendall_tau"]) == {"neural", "baseline_path_rf", "baseline_onehot_ridge"}
    assert -1 <= out["kendall_tau"]["neural"] <= 1 and out["neural_params"]["share_embedding"] is True

"""The predictors a search keeps across its refits (a pretrained neural predictor fine-tuned on the run): a
resumed run replays every refit and ends with the predictor an uninterrupted run ends with, and a refit on a
snapshot (the async schedule's background fit) leaves the predictor the scorer uses alone until it is handed
over. Real searches on the NAS-Bench-201 table (cheap ground truth) with a small real torch model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import default_toolkit
from killed_run import cut_run
from na_toolkit.errors import ConfigError
from na_toolkit.predictors import make_predictor
from na_toolkit.predictors.base import Predictor
from na_toolkit.predictors.targets import metric_target
from na_toolkit.search import run_search
from na_toolkit.search.components import build_components
from na_toolkit.search.config import load_config
from na_toolkit.search.loop import SearchLoop
from na_toolkit.store import STORE_FILE, MemoryRunStore, SQLiteRunStore

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
from na_toolkit_nb201 import space as nb201_space
from na_toolkit_nb201 import table as nb201_table

SMALL = {"epochs": 3, "heads": 2, "hidden": 8, "token_dim": 4, "layer_dim": 8, "net_dim": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def tk():
    return default_toolkit()


@pytest.fixture(scope="module")
def pretrained(tk, tmp_path_factory):
    """A small neural predictor fit on 12 NB201 cells' accuracies (fractions), saved."""
    table = nb201_table.load_table()
    rows = np.random.default_rng(7).permutation(len(table))[:12]
    archs = [nb201_space.nb201_architecture(table.arch_strs[i], layer_types=tk.layer_types) for i in rows]
    pred = make_predictor("neural", dict(SMALL), tk).for_target(metric_target("accuracy"))
    pred.fit(archs, table.column("c10_valid_acc_200ep")[rows] / 100)
    path = tmp_path_factory.mktemp("kept") / "acc.json"
    path.write_text(json.dumps(pred.to_json()))
    return path


def search_doc(tmp_path, pretrained, schedule="rounds"):
    return {
        "name": "kept",
        "seed_network": "nb201",
        "dataset": "c10",
        "evaluations": 9,
        "random_seed": 5,
        "output": str(tmp_path),
        "search": {"per_round": 3, "moves": ["set_edge_op"], "min_fit": 4, "schedule": schedule},
        "strategy": {"name": "random", "options": {"oversample": 3}},
        "evaluator": "nb201-table",
        "predictors": {"accuracy": {"name": "neural", "options": {"pretrained": str(pretrained), "epochs": 3}}},
    }


def _final_predictor(run_dir, tk) -> Predictor:
    store = SQLiteRunStore.open(run_dir / STORE_FILE, readonly=True)
    try:
        found = store.load_checkpoint("predictor:accuracy")
    finally:
        store.close()
    assert found is not None
    return Predictor.from_json({k: v for k, v in found[1].items() if k != "trained_on"}, tk)


@pytest.mark.parametrize("schedule", ["rounds", "async"])
def test_a_resumed_run_ends_with_the_kept_predictor_of_an_uninterrupted_one(tk, tmp_path, pretrained, schedule):
    # the predictor checkpoints are not read back: a resume replays every refit of the kept predictor from the
    # file, in order, on the stored evaluations (the same fits the killed run made), and goes on from there
    full = run_search(search_doc(tmp_path, pretrained, schedule), toolkit=tk, progress=False, outputs=False)
    assert full.counters.predictor_fits >= 2
    cut = tmp_path / "cut"
    cut_run(full.run_dir, cut, 5, checkpoints_from=2).close()  # killed in round 2, after one refit
    resumed = run_search(None, resume=cut, toolkit=tk, progress=False, outputs=False)
    assert resumed.counters.evaluations_replayed == 5
    assert [e.hash for e in resumed.evaluated] == [e.hash for e in full.evaluated]
    # what the kept predictor predicted for each evaluation before it learned it, and its last state
    assert [e.predicted_accuracy for e in resumed.evaluated] == [e.predicted_accuracy for e in full.evaluated]
    assert resumed.counters.predictor_fits == full.counters.predictor_fits
    ours, theirs = _final_predictor(cut, tk), _final_predictor(full.run_dir, tk)
    assert ours._state_to_json()["weights"] == theirs._state_to_json()["weights"]
    archs = [e.candidate.arch for e in full.evaluated]
    assert np.array_equal(ours.predict(archs), theirs.predict(archs))


def test_a_refit_on_a_snapshot_leaves_the_kept_predictor_in_use_alone_until_handed_over(tk, tmp_path, pretrained):
    # the async schedule fits in a background thread while the loop scores candidates with the scorer's
    # predictor: a kept predictor fine-tuned in place changed under the loop (half-trained weights, dropout on)
    components = build_components(load_config(search_doc(tmp_path, pretrained), toolkit=tk), tk)
    loop = SearchLoop(components, MemoryRunStore("t", {}))
    loop.run()
    truth, scorer = loop.ground_truth, loop.scorer
    archs = [e.candidate.arch for e in truth.history]
    in_use = scorer.predictors["accuracy"]
    before = in_use.predict(archs)
    fit = truth.fit_predictors(truth.history)
    assert np.array_equal(scorer.predictors["accuracy"].predict(archs), before)
    truth.apply_fit(fit, scorer)
    handed = scorer.predictors["accuracy"]
    assert handed is fit[0]["accuracy"] and not np.array_equal(handed.predict(archs), before)
    # the next refit starts from the one handed over (fine-tuning goes on), not from the file
    assert components.new_predictor("accuracy")._state_to_json() == handed._state_to_json()


def test_a_device_the_neural_predictor_cannot_have_is_a_config_error_before_the_run(tk, tmp_path, run_cli):
    # device = "cuda:7" (or a CUDA device on a CPU-only torch) was a torch AssertionError traceback at the
    # first fit of `predict fit`, and in a search a warning at every refit while the run went on unpredicted
    doc = search_doc(tmp_path, "unused.json")
    doc["predictors"] = {"accuracy": {"name": "neural", "options": {"device": "cuda:7"}}}
    with pytest.raises(ConfigError, match=r"^predictors\.accuracy\.options\.device: device 'cuda:7'"):
        build_components(load_config(doc, toolkit=tk), tk)
    assert not (tmp_path / "kept").exists()  # nothing stored
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"arch": f"nb201:{i}", "accuracy": 0.5 + i / 100}) + "\n" for i in range(6)))
    fit = ("predict", "fit", "--predictor", "neural", "--data", data, "--target", "accuracy", "--out", tmp_path / "m")
    res = run_cli(*fit, "--param", "device=gpu")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unknown device 'gpu'; use 'cpu', 'cuda', 'cuda:N' or 'auto'" in res.stderr

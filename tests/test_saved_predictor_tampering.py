"""A saved predictor file is user input (`predictors/saved_state.py`): one edited by hand, damaged, or written by
another features version is a DataError saying to refit when it is loaded, never a model that loads and then
predicts NaN, says nothing about its domain, or fails later with numpy's own error."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from conftest import default_toolkit, get_seed
from na_toolkit.errors import DataError
from na_toolkit.predictors import make_predictor
from na_toolkit.predictors.base import Predictor
from na_toolkit.predictors.fewshot import LatencyPrior

TK = default_toolkit()


@pytest.fixture(scope="module")
def cells():
    from na_toolkit_nb201.space import nb201_architecture
    from na_toolkit_nb201.table import load_table

    table = load_table()
    rows = np.arange(0, 1200, 40)  # 30 cells
    archs = [nb201_architecture(table.arch_strs[i], layer_types=TK.layer_types) for i in rows]
    return archs, table.column("c10_valid_acc_200ep")[rows], table.column("lat_gold_6226")[rows], table


def _load(doc):
    return Predictor.from_json(doc, TK)


def test_a_feature_predictor_file_with_damaged_training_rows_is_refused(cells):
    archs, acc, _, _ = cells
    doc = make_predictor("random-forest", {"n_estimators": 10}, TK).fit(archs, acc).to_json()
    assert np.array_equal(_load(copy.deepcopy(doc)).predict(archs), _load(doc).predict(archs))
    huge = copy.deepcopy(doc)
    huge["state"]["y_train"]["data"][0] = 1e300  # fit refuses it (MAX_TARGET); loaded, it predicted inf / NaN
    with pytest.raises(DataError, match="NaN, infinite or targets beyond 1e"):
        _load(huge)
    nan = copy.deepcopy(doc)
    nan["state"]["X_train"]["data"][0] = None
    with pytest.raises(DataError, match="NaN, infinite"):
        _load(nan)
    short = copy.deepcopy(doc)
    short["state"]["y_train"]["data"].pop()
    short["state"]["y_train"]["shape"] = [len(archs) - 1]
    with pytest.raises(DataError, match="does not match its feature list"):
        _load(short)


def test_a_neural_file_of_another_features_version_or_with_damaged_ranges_is_refused(cells):
    archs, acc, _, _ = cells
    p = make_predictor("neural", {"epochs": 1, "heads": 1, "net_dim": 8, "layer_dim": 8, "hidden": 8}, TK)
    doc = p.fit(archs, acc).to_json()
    wide = get_seed("simple-cnn")
    assert _load(copy.deepcopy(doc)).domain_warnings([wide]) == p.domain_warnings([wide]) != [[]]
    other = copy.deepcopy(doc)
    other["state"]["features"]["features_version"] = 99  # its IR features would be other numbers: loaded before
    with pytest.raises(DataError, match="features version 99, this na_toolkit computes version 1; refit it"):
        _load(other)
    ranges = copy.deepcopy(doc)
    ranges["state"]["feature_range"].update(shape=[2, 3], data=[0.0] * 6)  # loaded before, and warned of nothing
    with pytest.raises(DataError, match=r"feature ranges have shape \(2, 3\)"):
        _load(ranges)


def test_a_fewshot_latency_file_with_damaged_samples_is_refused(cells):
    archs, _, lat, table = cells
    prior_archs = archs[:12]
    prior = LatencyPrior.fit(prior_archs, {"pixel3": table.column("lat_pixel3")[np.arange(0, 480, 40)]}, shots=5)
    doc = make_predictor("fewshot-latency", {"prior": prior}, TK).fit(archs[12:20], lat[12:20]).to_json()
    assert np.array_equal(_load(copy.deepcopy(doc)).predict(archs), _load(doc).predict(archs))
    negative = copy.deepcopy(doc)
    negative["state"]["y_train"]["data"][0] = -1.0  # fit refuses a non-positive latency
    with pytest.raises(DataError, match="latencies are not all positive"):
        _load(negative)
    names = copy.deepcopy(doc)
    names["state"]["names"].pop()  # loaded before, then a numpy broadcast error at predict
    with pytest.raises(DataError, match="kernel features differ from its prior's"):
        _load(names)
    short = copy.deepcopy(doc)
    short["state"]["y_train"]["data"].pop()  # an IndexError before
    short["state"]["y_train"]["shape"] = [7]
    with pytest.raises(DataError, match="does not match its feature list"):
        _load(short)


def test_a_file_fit_under_another_scikit_learn_says_its_refit_may_predict_otherwise(cells, tmp_path, caplog, run_cli):
    """The feature predictors are refit on load from the rows the file holds: under another scikit-learn the
    same file may predict differently, which loaded without a word though the file records the version."""
    import json
    import logging

    archs, acc, _, _ = cells
    doc = make_predictor("random-forest", {"n_estimators": 10}, TK).fit(archs, acc).to_json()
    same, other = tmp_path / "same.json", tmp_path / "other.json"
    same.write_text(json.dumps(doc))
    here = doc["versions"]["scikit-learn"]
    doc["versions"]["scikit-learn"] = "0.24.2"
    other.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="na_toolkit.predictors"):
        Predictor.load(same, TK)
        assert caplog.records == []
        loaded = Predictor.load(other, TK)
    (record,) = caplog.records
    assert record.getMessage() == (
        f"saved predictor {str(other)!r} was fit with scikit-learn 0.24.2, this environment has {here}: its "
        "predictions may differ from those it gave there; refit it here to be sure"
    )
    assert np.array_equal(loaded.predict(archs), Predictor.load(same, TK).predict(archs))  # still loads and works
    json_arch = tmp_path / "seed.json"
    get_seed("simple-cnn").save(json_arch)
    res = run_cli("predict", str(json_arch), "--model", str(other))
    assert res.returncode == 0 and "was fit with scikit-learn 0.24.2" in res.stderr, res.stderr

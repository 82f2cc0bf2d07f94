"""A device whose `measure` judges the evaluated networks and whose time model runs nothing: the run scales the
time model's latency estimates by the median of measured over estimated latency of its evaluated networks
(`devices.NAME.rescale_by_measure`, on by default there), at each refit. Here the time model is a roofline of
the `x86-cpu` hardware model and ONNX Runtime measures on this machine, so the factor is far from 1 and the
measured figures are real."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pytest

from na_toolkit.errors import ConfigError
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.components import build_components
from na_toolkit.search.config import load_config
from na_toolkit.search.loop import run_search
from na_toolkit.search.rescale import Signature, similarity
from na_toolkit.search.scorer import MIN_RESCALE_NETWORKS, Scorer
from na_toolkit.search.strategy import random_move
from na_toolkit.search.summary import Counters
from na_toolkit.timemodels import get_time_model

TK = load_toolkit()
FAST = {"warmup_runs": 2, "warmup_s": 0.01, "min_runs": 5, "max_runs": 8, "max_time_s": 0.3}
METRIC = "latency_ms@cpu"


def search_doc(tmp_path, **device):
    return {
        "name": "rescale",
        "seed_network": "simple-cnn",
        "evaluations": 6,
        "output": str(tmp_path),
        "search": {"per_round": 2, "moves": ["scale", "insert_conv"]},
        "strategy": {"name": "random", "options": {"oversample": 3}},
        "evaluator": {"name": "synthetic"},
        "devices": {
            "cpu": {
                "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
                "measure": {"name": "onnxruntime", "options": {"settings": FAST}},
                "budgets": {"latency_ms": 50.0},
                **device,
            }
        },
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    result = run_search(search_doc(tmp_path_factory.mktemp("rescale")), toolkit=TK, progress=False)
    return result, json.loads((result.run_dir / "summary.json").read_text())


def ratios_of(evaluated):
    roofline = get_time_model("roofline", TK, device="x86-cpu")
    return [e.score.metrics[METRIC] / roofline.estimate(e.candidate.arch).latency_ms for e in evaluated]


def test_the_run_ends_with_its_estimates_scaled_by_the_median_measured_over_estimated(run):
    result, summary = run
    assert result.counters.evaluations == 6 and all(e.error is None for e in result.evaluated)
    ratios = ratios_of(result.evaluated)  # the last refit learns from every evaluation
    scale = summary["latency_scales"]["cpu"]
    assert scale["networks"] == 6
    assert scale["scale"] == pytest.approx(np.median(ratios), rel=1e-9)
    assert scale["ratio_p10"] == pytest.approx(np.percentile(ratios, 10), rel=1e-9)
    assert scale["ratio_p90"] == pytest.approx(np.percentile(ratios, 90), rel=1e-9)
    assert result.latency_scales == summary["latency_scales"]
    assert scale["neighbours"] == 0  # one factor for every network (the default)
    # the defaults the run chose are in its stored config: a resume by code with other defaults keeps them
    assert summary["config"]["devices"]["cpu"]["rescale_by_measure"] is True
    assert summary["config"]["devices"]["cpu"]["rescale_neighbours"] == 0
    report = (result.run_dir / "report.md").read_text()
    assert (
        f"latency_ms@cpu estimates (what chose the candidates) ended the run scaled by {scale['scale']:.4g}" in report
    )
    assert "most similar measured networks" not in report


def test_each_network_gets_the_factor_of_the_measured_networks_most_like_it(run):
    """With `rescale_neighbours = 3` a network's log factor moves from the device's median towards the
    similarity-weighted mean log ratio of its 3 most similar measured networks, by the closest one's similarity
    (search/rescale.py); the formula is written out here again from `similarity`."""
    result, _ = run
    cfg = neighbours(result.config, 3)
    scorer = Scorer(build_components(cfg, TK), Counters())
    dev = cfg.device("cpu")
    scorer.rescale(result.evaluated)
    assert scorer.scales["cpu"].neighbours == 3
    ratios = np.array(ratios_of(result.evaluated))
    sigs = [Signature.of(e.candidate.arch) for e in result.evaluated]
    roofline = get_time_model("roofline", TK, device="x86-cpu")
    # the measured networks themselves and proposals a move away from them
    archs = [e.candidate.arch for e in result.evaluated]
    moves = [TK.moves.get(name) for name in ("scale", "insert_conv")]
    rng = np.random.default_rng(0)
    archs += [random_move(result.evaluated[-1].candidate.arch, moves, rng)[1] for _ in range(4)]
    for arch in archs:
        sims = np.array([similarity(Signature.of(arch), s) for s in sigs])
        top = np.argsort(-sims, kind="stable")[:3]
        w = sims[top]
        g = np.log(np.median(ratios))
        expected = np.exp(g + w.max() * (w @ np.log(ratios[top]) / w.sum() - g))
        raw = roofline.estimate(arch).latency_ms
        assert scorer.estimate(dev, arch, "time_model")[METRIC] == pytest.approx(raw * expected, rel=1e-9)
    # a later refit replaces the factors it gave: none is served from before it
    scorer.rescale(result.evaluated[:MIN_RESCALE_NETWORKS])
    sims = np.array([similarity(Signature.of(archs[-1]), s) for s in sigs[:MIN_RESCALE_NETWORKS]])
    w, r = sims, ratios[:MIN_RESCALE_NETWORKS]
    g = np.log(np.median(r))
    expected = np.exp(g + w.max() * (w @ np.log(r) / w.sum() - g)) if w.max() > 0 else np.median(r)
    raw = roofline.estimate(archs[-1]).latency_ms
    assert scorer.estimate(dev, archs[-1], "time_model")[METRIC] == pytest.approx(raw * expected, rel=1e-9)


def neighbours(config, k):
    """The run's config with each network's factor from its k most similar measured networks (0: one factor)."""
    doc = copy.deepcopy(dict(config))
    doc["devices"]["cpu"]["rescale_neighbours"] = k
    return load_config(doc)


def test_a_rescaled_estimate_is_the_time_models_times_the_factor_and_a_measurement_is_not_touched(run, caplog):
    result, _ = run
    caplog.set_level(logging.INFO, logger="na_toolkit.search")
    cfg = neighbours(result.config, 0)
    scorer = Scorer(build_components(cfg, TK), Counters())
    dev = cfg.device("cpu")
    assert scorer.rescales(dev)
    arch = result.evaluated[-1].candidate.arch
    raw = get_time_model("roofline", TK, device="x86-cpu").estimate(arch).latency_ms
    assert scorer.score([arch])[0].metrics[METRIC] == pytest.approx(raw)  # nothing measured yet
    scorer.rescale(result.evaluated[: MIN_RESCALE_NETWORKS - 1])
    assert scorer.scales == {} and scorer.score([arch])[0].metrics[METRIC] == pytest.approx(raw)  # too few
    scorer.rescale(result.evaluated)
    factor = float(np.median(ratios_of(result.evaluated)))
    assert scorer.scales["cpu"].scale == pytest.approx(factor)
    said = [r for r in caplog.records if r.name == "na_toolkit.search" and "latency estimates scaled" in r.message]
    assert (
        said
        and said[-1].levelname == "INFO"
        and f"roofline latency estimates scaled by {factor:.4g}" in said[-1].message
    )
    assert scorer.score([arch])[0].metrics[METRIC] == pytest.approx(raw * factor)
    assert scorer.estimate(dev, arch, "time_model")[METRIC] == pytest.approx(raw * factor)
    # the estimate is cached unscaled: a later factor replaces the earlier one, it does not compound
    scorer.rescale(result.evaluated)
    assert scorer.score([arch])[0].metrics[METRIC] == pytest.approx(raw * factor)


def test_rescaling_off_leaves_the_estimates_as_the_time_model_gives_them(run, tmp_path):
    result, _ = run
    cfg = load_config(search_doc(tmp_path, rescale_by_measure=False))
    scorer = Scorer(build_components(cfg, TK), Counters())
    assert not scorer.rescales(cfg.device("cpu"))
    scorer.rescale(result.evaluated)
    arch = result.evaluated[-1].candidate.arch
    raw = get_time_model("roofline", TK, device="x86-cpu").estimate(arch).latency_ms
    assert scorer.scales == {} and scorer.score([arch])[0].metrics[METRIC] == pytest.approx(raw)


def test_a_device_without_a_measure_is_not_rescaled_and_may_not_ask_to_be(tmp_path):
    doc = search_doc(tmp_path)
    del doc["devices"]["cpu"]["measure"]
    assert load_config(doc).device("cpu").rescale_by_measure is False
    doc["devices"]["cpu"]["rescale_by_measure"] = True
    with pytest.raises(ConfigError, match=r"devices\.cpu\.rescale_by_measure: true needs a `measure`"):
        load_config(doc)
    bad = search_doc(tmp_path, rescale_by_measure="sometimes")
    with pytest.raises(ConfigError, match=r"devices\.cpu\.rescale_by_measure"):
        load_config(bad)


def test_resuming_the_finished_run_replays_the_same_factor(run):
    """Every measurement is served from the store: the replayed refits give the same factor, and the
    candidates are ranked and scored as in the run."""
    result, _ = run
    again = run_search(None, resume=result.run_dir, toolkit=TK, progress=False, outputs=False)
    assert again.counters.evaluations_replayed == 6
    assert again.counters.measurements == again.counters.measurements_replayed > 0  # all of them served
    assert again.latency_scales == result.latency_scales
    assert [e.hash for e in again.evaluated] == [e.hash for e in result.evaluated]


def test_the_async_schedule_rescales_from_the_evaluations_its_fit_learnt_from(tmp_path):
    doc = copy.deepcopy(search_doc(tmp_path))
    doc["search"].update(schedule="async", max_in_flight=2, refit_every=2)
    result = run_search(doc, toolkit=TK, progress=False, outputs=False)
    scale = result.latency_scales["cpu"]
    assert MIN_RESCALE_NETWORKS <= scale["networks"] <= 6
    # the final fit learns from everything
    assert scale["networks"] == 6 and scale["scale"] == pytest.approx(np.median(ratios_of(result.evaluated)))

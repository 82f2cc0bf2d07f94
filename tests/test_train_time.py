"""Training time as a search objective: `train_time_s@DEVICE` = steps per epoch x epochs (the evaluator's
training plan) x each time model's training-step time; budgets on it per device; a time model or evaluator
that cannot give it is a config error naming the device, never a silent 0."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

import search_parts_plugin
from conftest import default_toolkit
from na_toolkit.errors import ConfigError, TimeModelError
from na_toolkit.evaluation import make_evaluator
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.components import build_components
from na_toolkit.search.config import load_config
from na_toolkit.search.loop import run_search
from na_toolkit.search.outputs import outcome_lines, pareto_table
from na_toolkit.search.scorer import Scorer
from na_toolkit.search.summary import Counters
from na_toolkit.timemodels import get_time_model
from na_toolkit.timemodels.measure import MeasureSettings
from na_toolkit.timemodels.roofline import RooflineTimeModel
from na_toolkit.timemodels.sampling import all_move_types, random_variants
from na_toolkit.timemodels.training import TrainCalibration, TrainingPlan, fit_train_calibration, train_step_terms

TK = default_toolkit()
#: a few timed runs: these tests check what is measured, not how precisely
QUICK = MeasureSettings.quick(warmup_runs=1, min_runs=3, max_runs=10, max_time_s=0.2).to_json()

DOC = {
    "name": "tt",
    "seed_network": "simple-cnn",
    "dataset": "digits",
    "evaluations": 2,
    "search": {"per_round": 1, "moves": ["scale"]},
    "strategy": {"name": "random"},
    "evaluator": {"name": "torch", "options": {"epochs": 1}},
    "devices": {
        "a100": {
            "device": "a100-sxm4",
            "batch_size": 1,
            "time_model": "roofline",
            "budgets": {"train_time_s": {"limit": 3600}, "latency_ms": 1.0},
        }
    },
}


def doc_with(**devices):
    doc = copy.deepcopy(DOC)
    doc["devices"] = devices
    return doc


# ---- the plan --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "samples, batch, steps_per_epoch",
    [(1259, 32, 40), (64, 32, 2), (65, 32, 2), (66, 32, 3), (10, 32, 1), (65, 64, 1)],
)
def test_steps_per_epoch_count_as_the_torch_evaluator_does(samples, batch, steps_per_epoch):
    # the evaluator drops a last batch of one sample (batch norm cannot train on it)
    plan = TrainingPlan(samples, batch, epochs=3)
    assert plan.steps_per_epoch == steps_per_epoch
    assert plan.steps == 3 * steps_per_epoch
    assert plan.step_batch_size == min(batch, samples)


def test_the_torch_evaluator_plan_is_its_dataset_split_batch_and_epochs():
    evaluator = make_evaluator("torch", {"epochs": 7, "batch_size": 16}, TK)
    plan = evaluator.training_plan()
    assert (plan.train_samples, plan.batch_size, plan.epochs) == (len(evaluator.load_dataset().y_train), 16, 7)
    assert "digits" in plan.source and plan.to_json()["steps"] == plan.steps


@pytest.mark.parametrize("field, value", [("train_samples", 0), ("batch_size", -1), ("epochs", 1.5)])
def test_a_bad_plan_names_the_field(field, value):
    args = {"train_samples": 100, "batch_size": 10, "epochs": 1, field: value}
    with pytest.raises(TimeModelError, match=f"training plan: {field} must be a positive integer"):
        TrainingPlan(**args)


# ---- every time model gives a training time or says why not ------------------------------------------------
def _model(name):
    options = {"settings": QUICK} if name in ("torch", "onnxruntime") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shipped profile was measured on another CPU
        return get_time_model(name, TK, **options)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "torch" else n for n in TK.time_models.names()]
)
def test_every_time_model_gives_a_training_time_or_a_clear_error(name):
    model = _model(name)
    plan = TrainingPlan(200, 16, 2)
    arch = TK.seed("simple-cnn")
    if model.train_step_source() is None:
        with pytest.raises(TimeModelError, match="training step"):
            model.train_time(arch, plan)
        return
    est = model.train_time(arch, plan)
    assert est.steps == plan.steps == 26 and est.batch_size == 16
    assert est.train_step_ms > 0 and math.isfinite(est.train_time_s)
    assert est.train_time_s == pytest.approx(est.train_step_ms * plan.steps / 1000)
    assert est.source == model.train_step_source() and est.time_model == name
    if name == "learned":
        assert "x86-cpu roofline" in est.source  # the shipped profile is of a CPU


def test_roofline_train_time_on_an_a100_scales_with_the_plan():
    model = get_time_model("roofline", TK, device="a100-sxm4")
    arch = TK.seed("resnet-cifar")
    one = model.train_time(arch, TrainingPlan(50_000, 128, 1))
    assert one.train_step_ms == pytest.approx(model.estimate(arch, 128).train_step_ms)
    assert model.train_time(arch, TrainingPlan(50_000, 128, 10)).train_time_s == pytest.approx(10 * one.train_time_s)
    # a bigger batch: fewer, longer steps
    assert model.train_time(arch, TrainingPlan(50_000, 256, 1)).train_step_ms > one.train_step_ms
    assert "roofline of a100-sxm4" in one.source


def test_onnxruntime_says_it_measures_inference_and_measures_a_torch_step_when_asked():
    arch = TK.seed("simple-cnn")
    plain = get_time_model("onnxruntime", TK, settings=QUICK)
    assert plain.train_step_source() is None and plain.estimate(arch, 4).train_step_ms is None
    with pytest.raises(TimeModelError, match="onnxruntime.*inference only"):
        plain.train_time(arch, TrainingPlan(100, 4, 1))
    trained = get_time_model("onnxruntime", TK, settings=QUICK, train_step="torch")
    est = trained.estimate(arch, 4)
    assert est.train_step_ms > 0 and est.details["train_measurement"]["runs"] >= 1
    assert "torch training step" in trained.train_step_source()


def test_learned_takes_its_training_step_from_a_roofline():
    # a profile measures inference only: the training step is train_hardware's roofline (a CPU profile: x86-cpu)
    calibration = {"scale": 2.0, "step_overhead_s": 1e-3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learned = get_time_model(
            "learned", TK, device="example-cpu", train_hardware="a100-sxm4", train_calibration=calibration
        )
    arch, plan = TK.seed("simple-cnn"), TrainingPlan(300, 8, 1)
    roof = get_time_model("roofline", TK, device="a100-sxm4", train_calibration=calibration)
    assert learned.train_time(arch, plan).train_time_s == pytest.approx(roof.train_time(arch, plan).train_time_s)
    assert learned.estimate(arch, 1).train_step_ms == pytest.approx(roof.estimate(arch, 1).train_step_ms)
    assert "a100-sxm4 roofline" in learned.train_step_source() and "calibrated" in learned.train_step_source()


def test_learned_without_a_hardware_model_says_how_to_get_a_training_step():
    from na_toolkit.timemodels.learned import LearnedTimeModel
    from na_toolkit.timemodels.profile import DeviceProfile, resolve_profile_path

    profile = DeviceProfile.load(resolve_profile_path("example-cpu", TK.hardware))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learned = LearnedTimeModel(profile, layer_types=TK.layer_types)  # no registry: no default x86-cpu
    assert learned.train_step_source() is None and learned.estimate(TK.seed("simple-cnn")).train_step_ms is None
    with pytest.raises(TimeModelError, match="give the option train_hardware"):
        learned.train_time(TK.seed("simple-cnn"), TrainingPlan(100, 10, 1))


# ---- calibration -----------------------------------------------------------------------------------------
def test_a_calibration_is_recovered_from_the_steps_it_generates():
    hardware = get_time_model("roofline", TK, device="x86-cpu")
    seeds = {s: TK.seed(s) for s in ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")}
    variants = random_variants(seeds, 8, np.random.default_rng(0), 3, move_types=all_move_types(TK))
    archs = [v.arch for v in variants]
    truth = TrainCalibration(scale=0.6, launch_overhead_s=4e-5, step_overhead_s=2e-4)
    steps_ms = []
    for arch in archs:
        batch = 8
        kernels = hardware.train_kernels(arch, batch)
        steps_ms.append(truth.step_s(kernels, hardware.hardware.launch_overhead_s) * 1000)
        assert train_step_terms(hardware, arch, batch)[1] == sum(k.launches for k in kernels)
    fit = fit_train_calibration(hardware, archs, steps_ms, 8)
    assert fit.scale == pytest.approx(0.6, rel=1e-3)
    assert fit.launch_overhead_s == pytest.approx(4e-5, rel=1e-3)
    calibrated = RooflineTimeModel.from_toolkit(TK, device="x86-cpu", train_calibration=fit.to_json())
    assert calibrated.estimate(archs[1], 8).train_step_ms == pytest.approx(steps_ms[1], rel=1e-3)
    assert calibrated.estimate(archs[1], 8).details["train_calibration"]["scale"] == pytest.approx(0.6, rel=1e-3)


@pytest.mark.parametrize(
    "calibration, fragment",
    [
        ({"scale": -1.0}, "train_calibration.scale must be a finite number >= 0"),
        ({"scael": 1.0}, r"no key\(s\) \['scael'\]"),
        ({"scale": 0.0}, "all 0"),
        ("fast", "must be a table of numbers"),
    ],
)
def test_a_bad_calibration_is_one_clear_error(calibration, fragment):
    with pytest.raises(TimeModelError, match=fragment):
        RooflineTimeModel.from_toolkit(TK, device="x86-cpu", train_calibration=calibration)


def test_a_fit_needs_enough_positive_measurements():
    hardware = get_time_model("roofline", TK, device="x86-cpu")
    arch = TK.seed("simple-cnn")
    with pytest.raises(TimeModelError, match=">= 4"):
        fit_train_calibration(hardware, [arch] * 3, [1.0] * 3, 8)
    with pytest.raises(TimeModelError, match="finite number > 0"):
        fit_train_calibration(hardware, [arch] * 4, [1.0, 0.0, 1.0, 1.0], 8)


# ---- budgets per device in a search ----------------------------------------------------------------------
def test_a_train_time_budget_on_an_a100_scores_the_roofline_estimate(tmp_path):
    doc = {**DOC, "output": str(tmp_path)}
    components = build_components(load_config(doc), TK)
    try:
        plan = components.training_plan
        assert plan is not None and plan.epochs == 1 and plan.batch_size == 32
        arch = components.seed_arch
        score = Scorer(components, Counters()).score([arch])[0]
        expected = get_time_model("roofline", TK, device="a100-sxm4").train_time(arch, plan).train_time_s
        assert score.metrics["train_time_s@a100"] == pytest.approx(expected)
        assert score.feasible  # seconds of A100 time, far inside an hour
    finally:
        components.close()


def test_a_tight_train_time_budget_is_violated_and_penalised(tmp_path):
    doc = copy.deepcopy({**DOC, "output": str(tmp_path)})
    doc["devices"]["a100"]["budgets"] = {"train_time_s": {"limit": 1e-6, "weight": 1.0}}
    components = build_components(load_config(doc), TK)
    try:
        score = Scorer(components, Counters()).score([components.seed_arch])[0]
        assert "train_time_s@a100" in score.violations and not score.feasible
    finally:
        components.close()


def test_without_a_budget_no_plan_is_made(tmp_path):
    doc = copy.deepcopy({**DOC, "output": str(tmp_path)})
    doc["devices"]["a100"]["budgets"] = {"latency_ms": 1.0}
    components = build_components(load_config(doc), TK)
    try:
        assert components.training_plan is None
        assert "train_time_s@a100" not in Scorer(components, Counters()).score([components.seed_arch])[0].metrics
    finally:
        components.close()


def test_a_time_model_without_a_training_step_is_a_config_error_naming_the_device(tmp_path):
    doc = doc_with(
        mycpu={"device": "cpu", "time_model": "onnxruntime", "budgets": {"train_time_s": 60.0}},
    )
    with pytest.raises(ConfigError, match=r"devices\.mycpu\.budgets\.train_time_s: device 'mycpu'.*onnxruntime.*"):
        build_components(load_config({**doc, "output": str(tmp_path)}), TK)
    assert not list(tmp_path.iterdir())


def test_a_measuring_model_without_a_training_step_is_a_config_error_too(tmp_path):
    doc = doc_with(
        a100={
            "device": "a100-sxm4",
            "time_model": "roofline",
            "measure": {"name": "onnxruntime", "options": {"device": "cpu"}},
            "budgets": {"train_time_s": 60.0},
        }
    )
    with pytest.raises(ConfigError, match=r"device 'a100'.s measure 'onnxruntime' cannot estimate a training step"):
        build_components(load_config({**doc, "output": str(tmp_path)}), TK)


def test_an_evaluator_without_a_plan_is_a_config_error_naming_the_device(tmp_path):
    tk = load_toolkit(entry_points=False, extra_plugins=(search_parts_plugin,))
    doc = {**DOC, "evaluator": "test-hash", "output": str(tmp_path)}
    doc.pop("dataset")
    with pytest.raises(ConfigError, match=r"evaluator 'test-hash' does not say how it trains.*train_time_s@a100"):
        build_components(load_config(doc), tk)


@pytest.mark.slow  # a fresh interpreter imports the toolkit
def test_the_cli_prints_the_config_error_as_one_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        'seed_network = "simple-cnn"\nevaluations = 2\n[devices.edge]\ndevice = "cpu"\ntime_model = "onnxruntime"\n'
        "[devices.edge.budgets]\ntrain_time_s = { limit = 3600 }\n"
    )
    p = subprocess.run(
        [sys.executable, "-m", "na_toolkit.cli.main", "search", str(config), "--output", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr and "device 'edge'" in lines[-1] and "train_time_s" in lines[-1]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())  # no run folder


def test_a_search_records_each_candidates_estimated_training_time(tmp_path):
    result = run_search({**DOC, "output": str(tmp_path)}, toolkit=TK, progress=False, outputs=False)
    roofline = get_time_model("roofline", TK, device="a100-sxm4")
    plan = make_evaluator("torch", {"epochs": 1, "dataset": "digits"}, TK).training_plan()
    assert len(result.evaluated) == 2
    for e in result.evaluated:
        estimate = roofline.train_time(e.candidate.arch, plan).train_time_s
        assert e.score.metrics["train_time_s@a100"] == pytest.approx(estimate)
        assert e.score.metrics["train_time_s"] > 0  # the evaluator's measured time, beside the estimate
    assert np.isfinite([e.score.reward for e in result.evaluated]).all()
    # the Pareto table and the outcome lines show it, beside the latency
    summary = result.summary()
    header = pareto_table(summary).splitlines()[0]
    assert "latency a100 (ms, estimated)" in header and "train a100 (s, estimated)" in header
    best = summary["best"]["a100"]
    assert best is not None
    train = best["metrics"]["train_time_s@a100"]
    assert f"training {train:.4g} s (estimated)" in outcome_lines(summary)[0]


@pytest.mark.slow  # measures a torch training step of each evaluated candidate
def test_a_measuring_model_measures_the_step_at_the_evaluators_batch(tmp_path):
    doc = doc_with(
        cpu={
            "device": "cpu",
            "batch_size": 1,
            "time_model": "roofline",
            "measure": {"name": "torch", "options": {"settings": QUICK}},
            "budgets": {"train_time_s": {"limit": 3600}},
        }
    )
    result = run_search({**doc, "evaluations": 1, "output": str(tmp_path)}, toolkit=TK, progress=False, outputs=False)
    (seed,) = result.evaluated
    assert seed.error is None and 0 < seed.score.metrics["train_time_s@cpu"] < 3600
    # the latency at the device's batch 1, the training step at the evaluator's batch 32: two measurements
    assert result.counters.measurements == 2

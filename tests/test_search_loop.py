"""Real searches: the NAS-Bench-201 table (cheap ground truth) and digits with the torch evaluator."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import config_doc, default_toolkit, layer_types
from na_toolkit.datasets import get_dataset
from na_toolkit.ir.architecture import Architecture
from na_toolkit.search import compute_reward, run_search
from na_toolkit.search.executor_local import LocalExecutor
from na_toolkit.search.executors import Task
from na_toolkit.search.pareto import Objective, ParetoArchive, dominates, pareto_front, search_objectives
from na_toolkit.store import SQLiteRunStore

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
from na_toolkit_nb201 import space as nb201_space
from na_toolkit_nb201 import table_models as nb201_tables

NB201 = {
    "name": "nb",
    "seed_network": "nb201",
    "dataset": "c10",
    "evaluations": 20,
    "random_seed": 0,
    "search": {"per_round": 4, "moves": ["set_edge_op"]},
    "strategy": {"name": "evolution", "options": {"population": 6, "sample": 2}},
    "evaluator": "nb201-table",
    "predictors": {"accuracy": {"name": "ensemble", "options": {"n_estimators": 20}}},
    "budgets": {"model_size_bytes": 16_000_000},
    "devices": {"pixel3": {"device": "lat_pixel3", "time_model": "nb201-table", "budgets": {"latency_ms": 10.0}}},
}


def nb201(tmp_path, **changes):
    return config_doc(NB201, tmp_path, **changes)


def test_nb201_search_counts_pareto_and_best(tmp_path):
    res = run_search(nb201(tmp_path), progress=False, outputs=False)
    c = res.counters
    assert c.evaluations == 20 == len(res.evaluated) and c.failed_evaluations == 0
    hashes = [e.hash for e in res.evaluated]
    assert len(set(hashes)) == 20 and hashes[0] == res.seed_hash
    assert res.stop_reason.startswith("the evaluation budget (20) is spent")
    assert c.predictor_fits >= 4 and c.time_model_calls >= 20 and c.strategy_asks == c.rounds
    # the store holds each evaluation once, in the run's order, with the predictor training rows
    with SQLiteRunStore.open(res.run_dir) as store:
        assert [r.arch_hash for r in store.evaluations()] == hashes
        assert set(store.predictor_data("accuracy")) == set(hashes)
        assert set(store.checkpoint_kinds()) >= {"strategy", "rng", "predictor:accuracy"}
    table = nb201_tables.load_table()
    latency = nb201_tables.NB201TableTimeModel(device="lat_pixel3")
    for e in res.evaluated:
        m = e.score.metrics
        # ground truth is the table's row; latency is the device's time model; size the IR's fp32 weights
        cell = nb201_space.nb201_cell_of(e.candidate.arch)
        assert m["accuracy"] == pytest.approx(table.value(cell, "c10_valid_acc_200ep") / 100)
        assert m["latency_ms@pixel3"] == latency.estimate(e.candidate.arch).latency_ms
        assert m["model_size_bytes"] == e.candidate.arch.cost.model_size_bytes
        assert e.score.real and e.feasible_for["pixel3"] == (m["latency_ms@pixel3"] <= 10.0)
    # Pareto set = the non-dominated evaluated candidates (brute force)
    objs = search_objectives(["pixel3"])
    pts = [e.score.metrics for e in res.evaluated]
    assert set(res.pareto) == {hashes[i] for i in pareto_front(pts, objs)}
    # best feasible per device: highest accuracy among those within the latency budget
    feasible = [e for e in res.evaluated if e.feasible_for["pixel3"]]
    assert feasible and res.best["pixel3"] == max(feasible, key=lambda e: e.score.metrics["accuracy"]).hash
    assert res.infeasible == {}


def test_reward_of_every_candidate_is_the_reward_function(tmp_path):
    from na_toolkit.search.config import load_config

    doc = nb201(tmp_path, evaluations=8)
    cfg = load_config(doc)
    res = run_search(cfg, progress=False, outputs=False)
    assert len(res.evaluated) == 8
    for e in res.evaluated:
        r = compute_reward(e.score.metrics, cfg.budgets, cfg.objectives)
        assert e.score.reward == r.reward and e.score.feasible == r.feasible and e.score.violations == r.violations


def test_same_seed_same_search_other_seed_other_search(tmp_path):
    a = run_search(nb201(tmp_path / "a", evaluations=7), progress=False, outputs=False)
    b = run_search(nb201(tmp_path / "b", evaluations=7), progress=False, outputs=False)
    c = run_search(nb201(tmp_path / "c", evaluations=7, random_seed=1), progress=False, outputs=False)
    assert [e.hash for e in a.evaluated] == [e.hash for e in b.evaluated]
    assert [e.score.reward for e in a.evaluated] == [e.score.reward for e in b.evaluated]
    assert [e.hash for e in a.evaluated] != [e.hash for e in c.evaluated]


def test_impossible_budget_is_reported_and_the_search_ends(tmp_path):
    # the table time model knows every latency before an evaluation: after the seed, every proposal is
    # screened out and the search stops, saying why, without spending the rest of the budget
    doc = nb201(tmp_path, evaluations=8)
    doc["devices"]["pixel3"]["budgets"] = {"latency_ms": {"limit": 1e-6, "hard": True}}
    res = run_search(doc, progress=False, outputs=False)
    assert res.counters.evaluations == 1 and res.counters.screened > 0
    assert res.best == {"pixel3": None} and res.best_overall is None
    msg = res.infeasible["pixel3"]
    assert "no candidate of 1 evaluated meets the budgets of device pixel3" in msg
    assert "latency_ms@pixel3" in msg and "> budget 1e-06" in msg
    assert "proposed no new candidate" in res.stop_reason
    assert "broke a hard budget (latency_ms@pixel3 <= 1e-06)" in res.stop_reason
    # exporting the device's best says why there is none and how to export an evaluated network anyway
    from na_toolkit.errors import ConfigError
    from na_toolkit.search.export import export_best

    with SQLiteRunStore.open(res.run_dir) as store, pytest.raises(ConfigError) as info:
        export_best(store, res.summary(), "pixel3", "onnx", tmp_path / "m.onnx", layer_types=layer_types())
    assert msg in str(info.value) and str(info.value).endswith(
        "; to export an evaluated network anyway, give its hash (--arch HASH; evaluations.csv lists them)"
    )
    assert not (tmp_path / "m.onnx").exists()


def test_the_stop_reason_names_the_hard_budget_that_bound_not_every_hard_one(tmp_path):
    # two hard budgets, one that every NB201 cell meets (model size) and one that none does (latency): the
    # reason names the one the dropped proposals broke; with both broken, each with its count
    doc = nb201(tmp_path / "one", evaluations=8)
    doc["budgets"] = {"model_size_bytes": {"limit": 1e12, "hard": True}}
    doc["devices"]["pixel3"]["budgets"] = {"latency_ms": {"limit": 1e-6, "hard": True}}
    res = run_search(doc, progress=False, outputs=False)
    assert "broke a hard budget (latency_ms@pixel3 <= 1e-06) and were dropped" in res.stop_reason
    assert "model_size_bytes" not in res.stop_reason
    both = nb201(tmp_path / "both", evaluations=8)
    both["budgets"] = {"model_size_bytes": {"limit": 1.0, "hard": True}}
    both["devices"]["pixel3"]["budgets"] = {"latency_ms": {"limit": 1e-6, "hard": True}}
    res = run_search(both, progress=False, outputs=False)
    n = res.counters.screened
    assert f"{n} proposals broke a hard budget (" in res.stop_reason
    assert f"model_size_bytes <= 1: {n}" in res.stop_reason and f"latency_ms@pixel3 <= 1e-06: {n}" in res.stop_reason


def test_the_async_schedule_names_the_hard_budget_that_stopped_it_too(tmp_path):
    # the asynchronous schedule stops on a stall as the rounds one does: its reason names the screen's drops
    doc = nb201(tmp_path, evaluations=8)
    doc["search"] = {**doc["search"], "schedule": "async"}
    doc["devices"]["pixel3"]["budgets"] = {"latency_ms": {"limit": 1e-6, "hard": True}}
    res = run_search(doc, progress=False, outputs=False)
    assert res.counters.evaluations < 8 and res.counters.screened > 0
    assert "broke a hard budget (latency_ms@pixel3 <= 1e-06) and were dropped" in res.stop_reason


def test_impossible_budget_without_the_screen_spends_the_budget_and_says_why(tmp_path):
    doc = nb201(tmp_path, evaluations=8)
    doc["devices"]["pixel3"]["budgets"] = {"latency_ms": {"limit": 1e-6, "hard": True}}
    doc.setdefault("search", {})["screen_hard_budgets"] = False
    res = run_search(doc, progress=False, outputs=False)
    assert res.counters.evaluations == 8 and res.counters.screened == 0
    assert res.best == {"pixel3": None} and res.best_overall is None
    assert "no candidate of 8 evaluated meets the budgets of device pixel3" in res.infeasible["pixel3"]
    assert all(not e.score.feasible and e.score.reward < -1.0 for e in res.evaluated)
    assert any("the seed exceeds budget latency_ms@pixel3" in w for w in res.warnings)


def test_screen_drops_only_what_breaks_a_hard_budget_and_refills_the_round(tmp_path):
    # a budget between the table's latencies: random search still gets n new candidates per round, all of
    # them feasible; the screen never touches a soft budget
    from na_toolkit_nb201.table import load_table

    budget = float(np.quantile(load_table(None).column("lat_pixel3"), 0.25))
    doc = nb201(tmp_path / "hard", evaluations=9)
    doc["strategy"] = {"name": "random", "options": {"max_moves": 6}}
    doc["search"] = {**doc.get("search", {}), "evaluate_seed": False, "per_round": 3}
    doc["devices"]["pixel3"]["budgets"] = {"latency_ms": {"limit": budget, "hard": True}}
    res = run_search(doc, progress=False, outputs=False)
    assert res.counters.evaluations == 9 and res.counters.screened > 0
    assert all(e.score.feasible for e in res.evaluated)
    soft = nb201(tmp_path / "soft", evaluations=9)
    soft["strategy"] = doc["strategy"]
    soft["search"] = doc["search"]
    soft["devices"]["pixel3"]["budgets"] = {"latency_ms": {"limit": budget, "hard": False}}
    res = run_search(soft, progress=False, outputs=False)
    assert res.counters.evaluations == 9 and res.counters.screened == 0


def test_oversampling_lets_the_predictors_choose(tmp_path):
    doc = nb201(tmp_path, evaluations=12)
    doc["strategy"] = {"name": "random", "options": {"oversample": 5}}
    res = run_search(doc, progress=False, outputs=False)
    c = res.counters
    assert c.evaluations == 12 and c.proposed >= 5 * (12 - 1) - 5
    # surplus proposals were scored (predictions counted separately from evaluations)
    assert c.candidates_scored >= c.proposed - 5 and c.predictor_calls > 0 and c.score_calls >= 1


def test_strategy_without_new_candidates_stops(tmp_path):
    # no move applies to simple-cnn when only the NB201 move is allowed: the strategy can propose nothing
    # (only the seed is ever evaluated: one epoch on digits)
    doc = nb201(tmp_path, evaluations=50)
    doc.update(seed_network="simple-cnn", dataset="digits", devices={}, strategy="random")
    doc["evaluator"] = {"name": "torch", "options": {"epochs": 1, "threads": 1}}
    doc["predictors"] = {"accuracy": {"name": "bayesian-ridge"}}
    doc["search"]["max_stalled_rounds"] = 2
    res = run_search(doc, progress=False, outputs=False)
    assert res.counters.evaluations == 1 and res.evaluated[0].hash == res.seed_hash  # the seed only
    assert res.counters.strategy_asks == 2 and res.counters.proposed == 0
    assert "proposed no new candidate in 2 rounds in a row (1 of 50 evaluations used)" in res.stop_reason


def test_failed_evaluations_are_stored_counted_and_never_repeated(tmp_path, capsys):
    # the table evaluator cannot evaluate networks outside its space, and scaling an NB201 cell's channels
    # leaves it (the seed itself is not evaluated): every evaluation fails
    doc = nb201(tmp_path, evaluations=4)
    doc.update(devices={}, strategy="random")
    doc["search"]["moves"] = ["scale"]
    doc["search"]["evaluate_seed"] = False
    res = run_search(doc, progress=False, outputs=False)
    assert res.counters.evaluations == 4 == res.counters.failed_evaluations
    assert all(e.error and not e.score.feasible for e in res.evaluated)
    assert res.best_overall is None and "no candidate was evaluated successfully" in res.infeasible["all"]
    # the reason says what the evaluations failed with: the user's first thing to fix
    assert "; 4 of 4 failed with: ArchitectureError: architecture 'nb201:|" in res.infeasible["all"]
    assert res.infeasible["all"].endswith(
        "' is not an NB201 network"
        " (build it with nb201_architecture(arch_str); NB201 networks edited by other moves leave the space)"
    )
    # a failed network can still be exported by hash, as built, and the export says its evaluation failed
    from na_toolkit.cli.main import main

    first = res.evaluated[0]
    assert main(["export", str(res.run_dir), "--arch", first.hash, "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert f"(onnx, initial weights: its evaluation failed ({first.error}))" in out
    # no dataset is known for a network whose evaluation failed: none is named
    assert "its input 'input': float32 NCHW Nx3x32x32\n" in out and "dataset None" not in out
    with SQLiteRunStore.open(res.run_dir) as store:
        assert len({r.arch_hash for r in store.evaluations()}) == 4
        assert all(r.error for r in store.evaluations())


def test_digits_search_with_measured_cpu_latency_and_outputs(tmp_path):
    doc = {
        "name": "digits",
        "seed_network": "simple-cnn",
        "dataset": "digits",
        "evaluations": 3,
        "output": str(tmp_path),
        "search": {"per_round": 2, "moves": ["scale", "remove", "insert_conv"]},
        "strategy": {"name": "random", "options": {"oversample": 2}},
        "evaluator": {"name": "torch", "options": {"epochs": 1, "threads": 1}},
        "predictors": {"accuracy": {"name": "bayesian-ridge"}},
        "budgets": {"model_size_bytes": 16_000_000},
        "devices": {
            "cpu": {
                "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
                "measure": {
                    "name": "onnxruntime",
                    "options": {
                        "settings": {
                            "warmup_runs": 3,
                            "warmup_s": 0.01,
                            "min_runs": 5,
                            "max_runs": 10,
                            "max_time_s": 0.5,
                        }
                    },
                },
                "budgets": {"latency_ms": 5.0},
            }
        },
    }
    res = run_search(doc, progress=False)
    assert res.counters.evaluations == 3 and res.counters.measurements == 3
    with SQLiteRunStore.open(res.run_dir) as store:
        for e in res.evaluated:
            stored = store.measurement(e.hash, "cpu", "onnxruntime", "measure:batch=1")
            assert stored is not None and e.score.metrics["latency_ms@cpu"] == stored["latency_ms"]
            assert 0.0 < e.score.metrics["accuracy"] <= 1.0
    # outputs: summary, pareto, plot, report, best candidate as ONNX (checked) and state dict + IR
    d = res.run_dir
    summary = json.loads((d / "summary.json").read_text())
    assert summary["best"]["cpu"]["arch_hash"] == res.best["cpu"]
    assert len(json.loads((d / "pareto.json").read_text())["members"]) == len(res.pareto)
    assert (d / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Best feasible candidate per device" in (d / "report.md").read_text()
    best = d / "best" / "cpu"
    proto = onnx.load(str(best / "model.onnx"))
    onnx.checker.check_model(proto)
    arch = Architecture.load(best / "arch.json", layer_types())
    assert arch.hash == res.best["cpu"]
    model = arch.to_torch()
    model.load_state_dict(torch.load(best / "model.pt", weights_only=True))
    # the exported weights are the trained ones: they reproduce the evaluator's test accuracy (the torch
    # evaluator standardises inputs with the training split's per-channel mean and std)
    ds = get_dataset("digits", default_toolkit().datasets)
    mean = ds.x_train.mean(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)[None, :, None, None]
    std = ds.x_train.std(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)[None, :, None, None]
    x = ((ds.x_test - mean) / std).astype(np.float32)
    got = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() < 1e-4
    assert float((got.argmax(1) == ds.y_test).mean()) == res.get(res.best["cpu"]).score.metrics["test_accuracy"]
    assert summary["outputs"]["best.cpu.trained_weights"] == "true"


def test_local_process_pool_keeps_task_order(tmp_path):
    cells = [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    ]
    archs = [nb201_space.nb201_architecture(c) for c in cells]
    tasks = [Task("evaluate", a.to_json(), "nb201-table", {"dataset": "c10"}) for a in archs]
    tasks.insert(1, Task("evaluate", {"broken": True}, "nb201-table", {}))
    seen = []
    with LocalExecutor(workers=2, threads_per_worker=1) as ex:
        results = ex.run(tasks, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1, 2, 3]
    assert [r.value["arch_hash"] for r in results if r.ok] == [a.hash for a in archs]
    assert not results[1].ok and "ArchitectureError" in results[1].error


def test_pareto_archive_matches_brute_force():
    rng = np.random.default_rng(0)
    objs = [Objective("accuracy", "max"), Objective("model_size_bytes", "min"), Objective("latency_ms@a", "min")]
    pts = [
        {"accuracy": float(a), "model_size_bytes": float(s), "latency_ms@a": float(t)}
        for a, s, t in rng.integers(0, 6, size=(60, 3))
    ]
    archive = ParetoArchive(objs)
    for i, p in enumerate(pts):
        archive.add(str(i), p)
    front = pareto_front(pts, objs)
    assert set(archive.keys) == {str(i) for i in front}
    for i in front:
        assert not any(dominates(q, pts[i], objs) for q in pts)
    assert not archive.add("x", {"accuracy": 1.0})  # missing metrics never enter


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    from na_toolkit.search.run_folder import new_run_dir

    ids = [new_run_dir(tmp_path, "same")[0] for _ in range(3)]
    assert len(set(ids)) == 3 and all((tmp_path / i).is_dir() for i in ids)


def test_a_run_that_fails_to_build_leaves_no_folder(tmp_path):
    from na_toolkit.errors import ConfigError

    doc = nb201(tmp_path, evaluations=4)
    doc["predictors"] = {"accuracy": {"name": "gp", "options": {"no_such_option": 1}}}
    with pytest.raises(ConfigError, match="predictors.accuracy.options.no_such_option: unknown key"):
        run_search(doc, progress=False, outputs=False)
    assert list(tmp_path.iterdir()) == []


def test_a_budget_decision_within_the_measurement_noise_is_a_warning(tmp_path):
    from na_toolkit.search.components import build_components
    from na_toolkit.search.config import load_config
    from na_toolkit.search.scorer import Scorer
    from na_toolkit.search.summary import Counters

    settings = {"warmup_runs": 3, "warmup_s": 0.01, "min_runs": 8, "max_runs": 12, "max_time_s": 0.5}
    doc = {
        "name": "noise",
        "seed_network": "simple-cnn",
        "dataset": "digits",
        "evaluations": 1,
        "output": str(tmp_path),
        "evaluator": {"name": "torch", "options": {"epochs": 1, "threads": 1}},
        "predictors": {"accuracy": {"name": "bayesian-ridge"}},
        "devices": {
            "cpu": {
                "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}},
                "measure": {"name": "onnxruntime", "options": {"settings": settings}},
                "budgets": {"latency_ms": 1000.0},
            }
        },
    }
    res = run_search(doc, progress=False, outputs=False)
    (seed,) = res.evaluated
    assert not any("noise" in w for w in res.warnings)  # 1 s is far outside the spread
    with SQLiteRunStore.open(res.run_dir) as store:
        measured = store.measurement(seed.hash, "cpu", "onnxruntime", "measure:batch=1")
    p10, p90 = measured["latency_p10_ms"], measured["latency_p90_ms"]
    # the same measurement against a budget at its median: the decision depends on the run
    doc["devices"]["cpu"]["budgets"] = {"latency_ms": measured["latency_ms"]}
    components = build_components(load_config(doc), default_toolkit())
    try:
        scorer = Scorer(components, Counters())
        scorer._beside[("cpu", seed.hash)] = {"latency_p10_ms": p10, "latency_p90_ms": p90}
        scorer._check_noise(seed.candidate.arch, dict(seed.score.metrics))
    finally:
        components.close()
    (warning,) = scorer.noise_warnings
    assert "within the measurement's noise" in warning and f"p10 {p10:.4g}" in warning


def test_the_driver_runs_its_blas_on_the_threads_the_config_gives(tmp_path):
    import gc

    from threadpoolctl import threadpool_info

    from na_toolkit.machine import SEARCH_GC_THRESHOLD
    from na_toolkit.search.progress import SearchCallback

    def blas_threads_now() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    class Seen(SearchCallback):
        def __init__(self):
            self.rounds: list[set[int]] = []
            self.gc_thresholds: list[int] = []

        def on_round_end(self, round: int) -> None:
            self.rounds.append(blas_threads_now())
            self.gc_thresholds.append(gc.get_threshold()[0])

    before, gc_before = blas_threads_now(), gc.get_threshold()
    seen = Seen()
    run_search(nb201(tmp_path / "a", evaluations=6), progress=False, outputs=False, callbacks=[seen])
    assert seen.rounds and all(r == {1} for r in seen.rounds)  # the default: one BLAS thread
    assert blas_threads_now() == before  # restored when the run ends
    # the garbage collector runs less often during the search (machine.fewer_collections), as before after it
    assert all(t >= max(gc_before[0], SEARCH_GC_THRESHOLD) for t in seen.gc_thresholds)
    assert gc.get_threshold() == gc_before
    left = Seen()
    # null: the libraries' own setting, untouched
    doc = nb201(tmp_path / "b", evaluations=6, search__driver_blas_threads=None)
    run_search(doc, progress=False, outputs=False, callbacks=[left])
    assert left.rounds and all(r == before for r in left.rounds)


def test_failures_that_differ_only_in_a_name_or_number_are_counted_as_one():
    # a partial table fails every cell with its own cell name: that is one failure to fix, not twenty
    from types import SimpleNamespace

    from na_toolkit.search.summary import _commonest_error

    cells = [f"|nor_conv_3x3~0|+|skip_connect~{i}|" for i in range(3)]
    evaluated = [
        SimpleNamespace(error=f"TimeModelError: cell '{c}' is not in the table (it holds 30 cells)") for c in cells
    ]
    evaluated.append(SimpleNamespace(error="EvaluationError: out of memory"))
    evaluated.append(SimpleNamespace(error=None))
    assert _commonest_error(evaluated) == (
        f"3 of 5 failed with: TimeModelError: cell '{cells[0]}' is not in the table (it holds 30 cells)"
        " (or the same with other names or numbers)"
    )
    # one error repeated word for word is quoted as it is
    same = [SimpleNamespace(error="EvaluationError: out of memory")] * 2 + [SimpleNamespace(error="other")]
    assert _commonest_error(same) == "2 of 3 failed with: EvaluationError: out of memory"

"""The search loop in parts: components built in one place, the run store protocol (SQLite and in memory
give the same run), the toolkit a task is run with (the search's own in-process, rebuilt from the plugin
selection in a worker), progress callbacks, and the pure `summarize`.

The ground truth is `search_parts_plugin.HashEvaluator`, registered only by that test plugin: a search or
worker that evaluated with any other toolkit would fail every evaluation."""

from __future__ import annotations

import copy
import os
from dataclasses import asdict

import numpy as np
import pytest

import na_toolkit
import search_parts_plugin
from na_toolkit.errors import ConfigError, PluginError
from na_toolkit.plugins import load_toolkit
from na_toolkit.search import (
    Counters,
    Scorer,
    SearchCallback,
    SearchLoop,
    build_components,
    load_config,
    run_search,
    summarize,
)
from na_toolkit.search.executor_local import LocalExecutor
from na_toolkit.search.executors import Task, make_executor, run_task
from na_toolkit.store import MemoryRunStore, SQLiteRunStore

DOC = {
    "name": "parts",
    "seed_network": "simple-cnn",
    "evaluations": 8,
    "random_seed": 2,
    "search": {"per_round": 3, "moves": ["scale", "remove"]},
    "strategy": {"name": "evolution", "options": {"population": 4, "sample": 2, "oversample": 2}},
    "evaluator": "test-hash",
    "predictors": {"accuracy": {"name": "bayesian-ridge"}},
    "budgets": {"model_size_bytes": 16_000_000},
    "devices": {
        "cpu": {"time_model": {"name": "roofline", "options": {"device": "x86-cpu"}}, "budgets": {"latency_ms": 0.05}}
    },
}


@pytest.fixture(scope="module")
def tk():
    """Built-ins plus the test plugin (an importable module: a worker can rebuild this toolkit)."""
    return load_toolkit(entry_points=False, extra_plugins=(search_parts_plugin,))


def doc(tmp_path, **changes):
    d = copy.deepcopy(DOC)
    d["output"] = str(tmp_path)
    d.update(changes)
    return d


def trace(result):
    return [(e.hash, e.score.reward, e.score.metrics, e.error, e.feasible_for) for e in result.evaluated]


def test_memory_store_gives_the_same_run_as_the_sqlite_store(tk, tmp_path):
    on_disk = run_search(doc(tmp_path / "disk"), toolkit=tk, progress=False, outputs=False)
    memory = MemoryRunStore("mem", {})
    in_memory = run_search(doc(tmp_path / "mem"), toolkit=tk, progress=False, outputs=False, store=memory)
    assert on_disk.counters.failed_evaluations == 0 and on_disk.counters.evaluations == 8
    assert trace(in_memory) == trace(on_disk)
    assert asdict(in_memory.counters) == asdict(on_disk.counters)
    assert in_memory.pareto == on_disk.pareto
    assert (in_memory.best, in_memory.best_overall) == (on_disk.best, on_disk.best_overall)
    # the stores hold the same records; the memory store is the caller's (still open) and made no folder
    with SQLiteRunStore.open(on_disk.run_dir) as disk:

        def rows(store):
            return [(r.seq, r.round, r.arch_hash, r.metrics, r.error) for r in store.evaluations()]

        assert rows(memory) == rows(disk)
        assert memory.predictor_data("accuracy") == disk.predictor_data("accuracy")
        assert memory.checkpoint_kinds() == disk.checkpoint_kinds()
    assert memory.run().status == "finished" and memory.run().result["run_id"] == "mem"
    assert not (tmp_path / "mem").exists()
    # a run replayed from the memory store pays for nothing and ends where it ended
    again = run_search(doc(tmp_path / "mem"), toolkit=tk, progress=False, outputs=False, store=memory)
    assert again.counters.evaluations_replayed == 8 and trace(again) == trace(on_disk)


def test_in_process_tasks_use_the_search_toolkit(tk, tmp_path):
    # `test-hash` exists only in `tk`: an executor that used any other toolkit would fail every evaluation
    res = run_search(doc(tmp_path), toolkit=tk, progress=False, outputs=False)
    assert res.counters.failed_evaluations == 0
    assert all(e.result["evaluator"] == "test-hash" for e in res.evaluated)


def test_a_worker_rebuilds_the_toolkit_of_the_task_selection(tk):
    arch = tk.seed("simple-cnn")
    selection = tk.selection.to_json()
    assert selection["extra_modules"] == ["search_parts_plugin"] and selection["portable"]
    tasks = [
        Task("evaluate", arch.to_json(), "test-hash", selection=selection),
        Task("evaluate", {"broken": True}, "test-hash", selection=selection),
        Task("evaluate", arch.to_json(), "test-hash", selection={**selection, "extra_modules": []}),
    ]
    with make_executor("local", {"workers": 2, "threads_per_worker": 1}, tk) as ex:
        assert isinstance(ex, LocalExecutor) and ex.toolkit is tk
        results = ex.run(tasks)
    assert results[0].ok and results[0].value["arch_hash"] == arch.hash
    assert not results[1].ok and "ArchitectureError" in results[1].error
    # the same selection without the test plugin: its worker's toolkit has no such evaluator
    assert not results[2].ok and "test-hash" in results[2].error


def test_a_toolkit_of_unimportable_plugins_cannot_travel(tk):
    class NotAModule:
        __name__ = "bench-only"

        @staticmethod
        @na_toolkit.hookimpl
        def na_register_strategies(registry):
            pass

    local = load_toolkit(entry_points=False, extra_plugins=(NotAModule(),))
    assert not local.selection.portable
    task = Task("evaluate", tk.seed("simple-cnn").to_json(), "test-hash", selection=local.selection.to_json())
    with pytest.raises(PluginError, match="cannot rebuild it"):
        run_task(task)  # no toolkit given: a worker's view
    assert run_task(task, tk).ok  # in the search's own process the search's toolkit is used


def test_components_are_built_before_any_store_and_name_the_bad_key(tk, tmp_path):
    bad = doc(tmp_path, predictors={"accuracy": {"name": "bayesian-ridge", "options": {"no_such_option": 1}}})
    with pytest.raises(ConfigError, match="predictors.accuracy"):
        build_components(load_config(bad), tk)
    components = build_components(load_config(doc(tmp_path)), tk)
    assert components.seed_arch.hash == tk.seed("simple-cnn").hash
    assert [op.name for op in components.move_types] == ["scale", "remove"]
    assert set(components.time_models) == {"cpu"} and components.measures == {}
    assert components.predictor_targets == ["accuracy"] and components.executor.toolkit is tk
    assert components.selection == tk.selection.to_json()
    components.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "strategy", [{"name": "evolution", "options": {"population": 4, "sample": 9}}, {"name": "test-refuses"}]
)
def test_a_strategy_that_refuses_its_options_leaves_no_run(tk, tmp_path, strategy):
    # the strategy is built on the loop's context, after the components: a refusal still leaves nothing
    with pytest.raises(ConfigError, match="sample|test-refuses never runs"):
        run_search(doc(tmp_path, strategy=strategy), toolkit=tk, progress=False, outputs=False)
    assert list(tmp_path.iterdir()) == []
    run_dir = tmp_path / "given"
    run_dir.mkdir()
    with pytest.raises(ConfigError, match="strategy.options: test-refuses never runs"):
        run_search(
            doc(tmp_path, strategy={"name": "test-refuses"}), toolkit=tk, progress=False, outputs=False, run_dir=run_dir
        )
    assert list(run_dir.iterdir()) == []  # a folder the caller gave is kept, without a store
    # a run_dir that is a file is named as such, and left as it was
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"run_dir: '.*notes.txt' is a file; give the folder for the run"):
        run_search(doc(tmp_path), toolkit=tk, progress=False, outputs=False, run_dir=tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine"


class Recorder(SearchCallback):
    def __init__(self):
        self.events: list[tuple] = []

    def on_start(self, evaluation_budget):
        self.events.append(("start", evaluation_budget))

    def on_evaluation(self):
        self.events.append(("evaluation",))

    def on_evaluated(self, evaluated):
        self.events.append(("evaluated", len(evaluated)))

    def on_round_end(self, round):
        self.events.append(("round", round))

    def on_end(self):
        self.events.append(("end",))


def test_callbacks_see_every_evaluation_in_order(tk, tmp_path):
    rec = Recorder()
    res = run_search(doc(tmp_path), toolkit=tk, progress=False, outputs=False, callbacks=[rec])
    kinds = [e[0] for e in rec.events]
    assert rec.events[0] == ("start", 8) and rec.events[-1] == ("end",) and kinds.count("end") == 1
    assert kinds.count("evaluation") == res.counters.evaluations == 8
    batches = [e[1] for e in rec.events if e[0] == "evaluated"]
    assert batches == sorted(batches) and batches[-1] == 8
    assert [e[1] for e in rec.events if e[0] == "round"] == list(range(res.counters.rounds + 1))


def test_summarize_is_a_pure_function_of_the_evaluations(tk, tmp_path):
    from na_toolkit.search.components import build_components

    res = run_search(doc(tmp_path), toolkit=tk, progress=False, outputs=False)
    # the config the run searched under: the stored one with what building it adds (a roofline device's
    # memory capacity as a hard budget on its peak memory)
    components = build_components(load_config(res.config), tk)
    components.close()
    cfg = components.config
    again = summarize(
        cfg,
        res.evaluated,
        run_id=res.run_id,
        run_dir=res.run_dir,
        stop_reason=res.stop_reason,
        seed_hash=res.seed_hash,
        counters=res.counters,
        elapsed_s=res.elapsed_s,
        warnings=res.warnings,
        provenance=res.provenance,
    )
    assert again.summary() == res.summary()
    assert again.counters is not res.counters  # a copy: the result does not change with the counters
    # fewer evaluations: the same function gives that subset's Pareto set and best candidates
    part = summarize(
        cfg,
        res.evaluated[:3],
        run_id="x",
        run_dir=res.run_dir,
        stop_reason="",
        seed_hash="",
        counters=Counters(),
        elapsed_s=0.0,
    )
    assert set(part.pareto) <= {e.hash for e in res.evaluated[:3]}


def test_a_scorer_alone_scores_as_the_loop_does(tk, tmp_path):
    # what a benchmark does to time scoring: components, a scorer, a predictor fitted by hand
    res = run_search(doc(tmp_path), toolkit=tk, progress=False, outputs=False)
    archs = [e.candidate.arch for e in res.evaluated]
    y = np.array([e.score.metrics["accuracy"] for e in res.evaluated])
    cfg = load_config(res.config)
    scores = []
    for make in ("scorer", "loop"):
        components = build_components(cfg, tk)
        pred = components.new_predictor("accuracy")
        pred.fit(archs[:5], y[:5])
        if make == "scorer":
            scorer = Scorer(components, Counters())
        else:
            scorer = SearchLoop(components, MemoryRunStore("loop", cfg.to_json())).scorer
        scorer.predictors["accuracy"] = pred
        scores.append(scorer.score(archs[5:]))
        components.close()
    assert scores[0] == scores[1] and all(not s.real for s in scores[0])


DRIVER = """
import multiprocessing, os, sys, time
from na_toolkit.search.executor_local import LocalExecutor

if __name__ == "__main__":
    pool = LocalExecutor(workers=2, threads_per_worker=1)._get_pool()
    for f in [pool.submit(time.sleep, 0.2) for _ in range(4)]:
        f.result()
    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
    time.sleep(600)
"""


def test_pool_workers_end_when_their_driver_is_killed(tmp_path):
    """kill -9 of a search with workers = 2 must not leave its pool workers running (each holds a copy of
    torch and the dataset): they watch their driver and exit within seconds of it."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        workers = [int(p) for p in line.split()]
        assert len(workers) == 2, line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        alive = workers
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [p for p in workers if _alive(p)]
        assert not alive, f"workers {alive} outlived their driver by 10 s"
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has ended; only its exit status is left
    except FileNotFoundError:
        return False


def test_a_profile_of_another_device_is_in_the_runs_warnings(tk, tmp_path):
    """The learned time model's profile measured on another device: the warning reaches the run's summary
    and report (it was only printed once, on stderr, when the model was built), with what it means here."""
    import json
    import warnings

    from conftest import REPO_ROOT
    from na_toolkit.timemodels.profile import ProfileDeviceWarning

    profile = json.loads((REPO_ROOT / "profiles" / "example-cpu.json").read_text())
    profile["device"]["name"] = profile["device"]["cpu_model"] = "Imaginary CPU 9000"
    (tmp_path / "other.json").write_text(json.dumps(profile))
    config = {
        "seed_network": "simple-cnn",
        "evaluations": 1,
        "evaluator": "synthetic",
        "devices": {"cpu": {"time_model": {"name": "learned", "options": {"device": str(tmp_path / "other.json")}}}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileDeviceWarning)
        res = run_search(config, toolkit=tk, store=MemoryRunStore("p", config), progress=False, outputs=False)
    [message] = [w for w in res.warnings if "Imaginary CPU 9000" in w]
    assert message.startswith("devices.cpu.time_model: profile ")
    assert message.endswith(
        "the search judges the budgets of device 'cpu' by that device's latencies, not this machine's"
    )


def test_the_report_shows_every_budgeted_figure_and_which_budget_bound(tk, tmp_path):
    """Budgets on peak memory and energy: the table and the best line show those figures (they showed
    latency and training time only), and the budgets table says how many evaluated networks met each, so
    a budget nothing meets, or everything does, is plain to see."""
    from na_toolkit.search.outputs import outcome_lines, pareto_table, report_markdown

    d = doc(tmp_path, evaluations=4)
    d["devices"]["cpu"]["budgets"] = {"latency_ms": 1e-9, "peak_memory_bytes": 1e9, "energy_mj": 1e6}
    summary = run_search(d, toolkit=tk, progress=False, outputs=False).summary()
    report = report_markdown(summary)
    assert "| metric | limit | weight | hard | met by (evaluated) |" in report
    # each limit with its metric's unit (a memory budget read "2.14748e+09")
    assert "| latency_ms@cpu | 1e-09 ms | 1 | no | 0 of 4 |" in report
    assert "| peak_memory_bytes@cpu | 1 GB (1,000,000,000 B) | 1 | no | 4 of 4 |" in report
    assert "| energy_mj@cpu | 1e+06 mJ | 1 | no | 4 of 4 |" in report
    header = pareto_table(summary).splitlines()[0]
    assert "peak memory cpu (estimated)" in header and "energy cpu (mJ, estimated)" in header
    front = summary["pareto"][0]["metrics"]
    assert f"  {front['peak_memory_bytes@cpu'] / 1e3:.3g} kB  " in pareto_table(summary)
    [line] = outcome_lines(summary)  # "all": no candidate meets the latency budget
    assert line.startswith("cpu: NO FEASIBLE CANDIDATE")
    d["devices"]["cpu"]["budgets"]["latency_ms"] = 1e3
    summary = run_search(d, toolkit=tk, progress=False, outputs=False).summary()
    best = summary["best"]["cpu"]["metrics"]
    [line] = outcome_lines(summary)
    peak, energy = best["peak_memory_bytes@cpu"] / 1e3, best["energy_mj@cpu"]
    assert f", peak memory {peak:.3g} kB (estimated), energy {energy:.4g} mJ (estimated)" in line

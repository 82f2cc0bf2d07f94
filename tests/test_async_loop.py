"""The asynchronous schedule, the executor's submit/wait protocol, the simulated fleet and the synthetic
evaluator (issue: scale-out). Ray itself is tested in test_ray_executor.py."""

import os
import signal

import pytest

from conftest import config_doc
from na_toolkit.errors import ConfigError
from na_toolkit.search import run_search
from na_toolkit.search.async_loop import APPLY_LOG
from na_toolkit.search.executor_local import LocalExecutor
from na_toolkit.search.executor_sim import SimulatedExecutor
from na_toolkit.search.executors import Task
from na_toolkit.search.progress import SearchCallback
from na_toolkit.store import SQLiteRunStore

SYNTH = {
    "name": "sim",
    "seed_network": "simple-cnn",
    "evaluations": 24,
    "random_seed": 0,
    "search": {"per_round": 4, "schedule": "async", "moves": ["insert_conv", "scale", "remove", "insert_add"]},
    "strategy": {"name": "evolution", "options": {"population": 6, "sample": 2}},
    "evaluator": {"name": "synthetic", "options": {"seconds": 0.0}},
    "predictors": {"accuracy": {"name": "ensemble", "options": {"n_estimators": 10}}},
}


def synth(tmp_path, **changes):
    return config_doc(SYNTH, tmp_path, **changes)


def test_async_search_spends_the_budget_once_each_and_stores_in_finish_order(tmp_path):
    res = run_search(synth(tmp_path, search__max_in_flight=3), progress=False)
    hashes = [e.hash for e in res.evaluated]
    assert len(hashes) == 24 == len(set(hashes)) and hashes[0] == res.seed_hash
    assert res.stop_reason == "the evaluation budget (24) is spent"
    with SQLiteRunStore.open(res.run_dir) as store:
        records = store.evaluations()
        assert [r.arch_hash for r in records] == hashes  # told in the order they were stored
        # the i-th proposal after the seed belongs to round 1 + i // per_round
        assert [r.round for r in records] == [0] + [1 + i // 4 for i in range(23)]
        assert "predictor:accuracy" in store.checkpoint_kinds()
    assert res.counters.predictor_fits >= 1


def test_the_rounds_schedule_is_the_default_and_unchanged(tmp_path):
    rounds = run_search(synth(tmp_path / "a", search__schedule="rounds"), progress=False, outputs=False)
    again = run_search(synth(tmp_path / "b", search__schedule="rounds"), progress=False, outputs=False)
    default = synth(tmp_path / "c")
    del default["search"]["schedule"]
    plain = run_search(default, progress=False, outputs=False)
    assert [e.hash for e in rounds.evaluated] == [e.hash for e in again.evaluated] == [e.hash for e in plain.evaluated]


class _StopAfter(SearchCallback):
    def __init__(self, n):
        self.n, self.seen = n, 0

    def on_evaluation(self):
        self.seen += 1
        if self.seen == self.n:
            raise KeyboardInterrupt


def test_an_interrupted_async_run_resumes_replaying_every_stored_evaluation(tmp_path):
    """Stopped mid-run, then resumed: every stored evaluation is served from the store, in the order it
    finished, and the background refits are handed over where the log says: nothing lost or paid twice."""
    doc = synth(
        tmp_path,
        evaluations=30,
        search__max_in_flight=4,
        search__refit_every=3,
        evaluator={"name": "synthetic", "options": {"seconds": 0.15}},  # time for background fits to land
    )
    with pytest.raises(KeyboardInterrupt):
        run_search(doc, progress=False, outputs=False, callbacks=[_StopAfter(17)])
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    with SQLiteRunStore.open(folder) as store:
        before = [r.arch_hash for r in store.evaluations()]
        applied = (store.artifact(APPLY_LOG) or {}).get("applied_at", [])
    assert len(before) >= 16 and applied  # some ran ahead of the one told when it stopped
    res = run_search(resume=folder, progress=False, outputs=False)
    hashes = [e.hash for e in res.evaluated]
    assert len(hashes) == 30 == len(set(hashes))
    assert hashes[: len(before)] == before  # retraced exactly
    assert res.counters.evaluations_replayed == len(before)
    with SQLiteRunStore.open(folder) as store:
        assert [r.arch_hash for r in store.evaluations()] == hashes
        assert store.artifact(APPLY_LOG)["applied_at"][: len(applied)] == applied


class _PeakLocal(LocalExecutor):
    """The real local pool, noting the most tasks it held at once (kept in the run's `executor` artifact)."""

    name = "local-peak"
    description = "test: the local pool, counting the tasks in flight"
    peak = 0

    def _start(self, ticket, task, attempts=0):
        super()._start(ticket, task, attempts)
        self.peak = max(self.peak, self._running())

    def stats(self):
        return {**super().stats(), "peak_in_flight": self.peak}


def test_async_on_a_process_pool_keeps_max_in_flight_busy(tmp_path, toolkit):
    toolkit.executors.add(_PeakLocal)
    doc = synth(
        tmp_path,
        evaluations=10,
        search__max_in_flight=2,
        evaluator={"name": "synthetic", "options": {"seconds": 0.2}},
        executor={"name": "local-peak", "options": {"workers": 2, "threads_per_worker": 1}},
    )
    res = run_search(doc, progress=False, outputs=False, toolkit=toolkit)
    assert len({e.hash for e in res.evaluated}) == 10
    with SQLiteRunStore.open(res.run_dir) as store:
        stats = store.artifact("executor")
    # two evaluations on the two workers at once, never more than max_in_flight
    assert stats["executor"] == "local-peak" and stats["peak_in_flight"] == 2, stats


def _tiny_task(toolkit, seconds=0.0):
    arch = toolkit.seed("simple-cnn")
    return Task("evaluate", arch.to_json(), "synthetic", {"seconds": seconds}, selection=toolkit.selection.to_json())


def test_submit_and_wait_return_each_result_once(toolkit):
    with LocalExecutor(workers=2, threads_per_worker=1) as ex:
        ex.toolkit = toolkit
        tickets = [ex.submit(_tiny_task(toolkit, 0.1)) for _ in range(4)]
        got = {}
        while len(got) < 4:
            for t, r in ex.wait([t for t in tickets if t not in got]):
                assert t not in got and r.ok
                got[t] = r
        with pytest.raises(ValueError, match="never submitted or already taken"):
            ex.wait([tickets[0]])


def test_a_pool_worker_killed_mid_task_is_retried_and_answers_once(toolkit, tmp_path, monkeypatch):
    """A worker SIGKILLed in the middle of a task (the `task` kill point, once across processes): the task
    runs again on a fresh pool and its result comes back once."""
    monkeypatch.setenv("NA_TOOLKIT_KILL_AT", "task:1:0.3")
    monkeypatch.setenv("NA_TOOLKIT_KILL_ONCE", str(tmp_path / "killed"))
    with LocalExecutor(workers=2, threads_per_worker=1, max_retries=2) as ex:
        ex.toolkit = toolkit
        results = ex.run([_tiny_task(toolkit, 1.0) for _ in range(3)])
    assert (tmp_path / "killed").exists() and all(r.ok for r in results) and len(results) == 3


def test_the_simulated_fleet_keeps_busier_without_the_round_barrier(tmp_path):
    """16 virtual workers, 1-5 s tasks: the busy seconds are the tasks' drawn times, and the asynchronous
    schedule keeps the fleet busier than rounds that wait for their slowest task (the figures land in the
    run store's `executor` artifact)."""
    stats = {}
    for schedule in ("rounds", "async"):
        doc = synth(
            tmp_path / schedule,
            evaluations=96,
            search__schedule=schedule,
            search__per_round=16,
            search__evaluate_seed=False,
            strategy={"name": "random"},
            evaluator={"name": "synthetic", "options": {"seconds": 1.0, "seconds_max": 5.0}},
            executor={"name": "simulated", "options": {"workers": 16}},
        )
        res = run_search(doc, progress=False, outputs=False)
        times = [e.result["train_time_s"] for e in res.evaluated]
        assert len(times) == 96 and all(1.0 <= t <= 5.0 for t in times)
        with SQLiteRunStore.open(res.run_dir) as store:
            stats[schedule] = store.artifact("executor")
        assert stats[schedule]["tasks"] == 96 and stats[schedule]["busy_s"] == pytest.approx(sum(times))
        assert 0 < stats[schedule]["busy_share"] <= 1
    assert stats["async"]["busy_share"] > stats["rounds"]["busy_share"] + 0.1


def test_simulated_executor_stats():
    ex = SimulatedExecutor(workers=2)
    from na_toolkit.plugins import get_toolkit

    tk = get_toolkit()
    ex.toolkit = tk
    arch = tk.seed("simple-cnn")
    task = Task("evaluate", arch.to_json(), "synthetic", {"seconds": 2.0}, selection=tk.selection.to_json())
    results = ex.run([task] * 4)
    s = ex.simulation()
    assert all(r.ok and r.elapsed_s == 2.0 for r in results)
    assert s.busy_s == 8.0 and s.tasks == 4 and 4.0 <= s.clock_s < 5.0 and 0.8 < s.busy_share <= 1.0


def test_bad_schedule_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="schedule"):
        run_search(synth(tmp_path, search__schedule="sometimes"), progress=False, outputs=False)
    with pytest.raises(ConfigError, match="max_in_flight"):
        run_search(synth(tmp_path, search__max_in_flight=0), progress=False, outputs=False)
    with pytest.raises(ConfigError, match="seconds_max"):
        run_search(
            synth(tmp_path, evaluator={"name": "synthetic", "options": {"seconds": 2.0, "seconds_max": 1.0}}),
            progress=False,
            outputs=False,
        )


@pytest.mark.parametrize("schedule", ["rounds", "async"])
def test_a_search_killed_mid_round_keeps_every_evaluation_that_finished(tmp_path, schedule):
    """The default executor (local, one worker: the tasks run in the search's process) hands each result over
    as it finishes, so it is stored before the next task starts. Before, the base executor ran a whole
    round's tasks when they were submitted and stored them after the last: a kill while the round's fourth
    network trained lost the three trained before it (paid for again on --resume)."""
    import json
    import subprocess
    import sys

    doc = synth(tmp_path, search__schedule=schedule, search__evaluate_seed=False, executor={"name": "local"})
    config = tmp_path / "config.json"
    config.write_text(json.dumps(doc))
    code = (
        "import json, sys; from na_toolkit.search import run_search; "
        "run_search(json.load(open(sys.argv[1])), progress=False)"
    )
    env = {**os.environ, "NA_TOOLKIT_KILL_AT": "task:4"}  # the 4th task of round 1 (of 4) kills the process
    proc = subprocess.run([sys.executable, "-c", code, str(config)], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    with SQLiteRunStore.open(run) as store:
        assert len(store.evaluations()) == 3  # the three finished before it, each stored as it finished


def test_kill_once_kills_one_process_only(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "NA_TOOLKIT_KILL_AT": "task:1", "NA_TOOLKIT_KILL_ONCE": str(tmp_path / "k")}
    code = "from na_toolkit.store.faultpoint import kill_point; kill_point('task'); print('alive')"
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert first.returncode == -signal.SIGKILL and second.returncode == 0 and second.stdout.strip() == "alive"


def test_bench_executor_parts_on_a_small_simulated_fleet(toolkit, tmp_path):
    """The benchmark's simulated fleet and store figures (`bench executor`; its Ray parts are the tests of
    test_ray_executor.py at small sizes)."""
    from na_toolkit.bench.executor import simulated_fleet, store_writes_per_s
    from na_toolkit.plugins import get_toolkit

    sim = simulated_fleet(get_toolkit(), tmp_path, workers=4, per_worker=3)
    for schedule in ("async", "rounds"):
        assert sim[schedule]["evaluations"] == 12 and 0 < sim[schedule]["busy_share"] <= 1
        assert sim[schedule]["driver_s_per_evaluation"] > 0
    assert store_writes_per_s(tmp_path, n=50) > 0


def test_bench_executor_scale_only_gives_the_drivers_costs_as_medians_without_ray(tmp_path):
    """`bench executor --scale-only` (docs/scale.md's driver figures, benchmarks/executor-driver.json): the
    simulated fleets, store writes and refits, each the median of --repeats, with the load average it ran
    under, and no Ray figures (before, every figure came from one run, and only the whole benchmark ran)."""
    import argparse

    from na_toolkit.bench import executor
    from na_toolkit.plugins import get_toolkit

    parser = argparse.ArgumentParser()
    executor.configure(parser)
    argv = "--scale-only --repeats 2 --fleet-workers 2 --per-worker 2 --scale-workers 0 --refit-sizes 5 10"
    figures = executor.run(parser.parse_args(argv.split()), get_toolkit())
    assert not any(k.startswith(("ray_", "efficiency", "fleet_real")) for k in figures)
    for schedule in ("async", "rounds"):
        fleet = figures["fleet_simulated"][schedule]
        assert fleet["repeats"] == 2 and fleet["evaluations"] == 4
        assert fleet["driver_s_per_evaluation"] > 0 and 0 < fleet["busy_share"] <= 1
    assert set(figures["scale"]["refit_s_by_evaluations"]) == {"5", "10"}
    assert figures["scale"]["store_writes_per_s"] > 0
    assert figures["load_average_1min"]["cores"] == os.cpu_count() and figures["load_average_1min"]["start"] >= 0


@pytest.mark.parametrize("schedule", ["rounds", "async"])
def test_each_evaluation_records_the_accuracy_predicted_before_the_predictors_learned_it(tmp_path, caplog, schedule):
    import logging

    caplog.set_level(logging.INFO, logger="na_toolkit.search")
    res = run_search(synth(tmp_path, search__schedule=schedule, evaluations=16), progress=False, outputs=False)
    predicted = [e.predicted_accuracy for e in res.evaluated]
    assert predicted[0] is None  # the seed: no predictor was fitted yet
    later = [p for p in predicted[8:] if p is not None]
    assert len(later) == 8 and all(0.0 <= p <= 1.5 for p in later)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("round ")]
    assert any("predicted vs measured accuracy: " in line and "points off over" in line for line in lines)
    assert all("predicted vs measured accuracy:" in line for line in lines)
    assert res.evaluated[-1].to_json()["predicted_accuracy"] == predicted[-1]


def test_neural_architect_learns_from_every_result_of_its_policy_on_the_async_schedule(tmp_path):
    """Under a scoring budget the policy learns from the real result of each network its episodes proposed
    (learn_from_evaluations): on the async schedule the loop asks again while results are in flight, and
    every one of them is still learned from when it comes (before the fix: 2 of 21 here)."""
    from na_toolkit.search.outputs import strategy_report

    options = {"scoring_budget": 5, "episodes": 6, "episode_length": 2, "updates": 2}
    doc = synth(tmp_path, search__max_in_flight=3, strategy={"name": "neural-architect", "options": options})
    res = run_search(doc, progress=False)
    with SQLiteRunStore.open(res.run_dir) as store:
        series = strategy_report(store)["series"]
    learned = sum(e["evaluated"] for e in series if "real_rank_mean" in e)
    by_policy = sum(e.candidate.origin == "neural-architect" and e.score.real for e in res.evaluated)
    assert by_policy >= 10 and learned == by_policy

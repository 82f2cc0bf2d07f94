"""`na-toolkit bench executor`: what scale-out costs and gives (docs/scale.md).

- per-task overhead of `ray` and `local` (a 2-worker process pool; and in-process) over short tasks: one
  task at a time, its round trip minus the time it ran, median ms;
- 16 one-second evaluations on 2 workers (Ray, 2 CPUs, warm workers, the asynchronous loop): wall time of
  the search against the ideal 8 s;
- a fleet of 64 workers, tasks of 1-5 s: share of worker time busy, asynchronous loop vs rounds, on a local
  Ray cluster that declares 64 CPUs with tasks that really sleep (about 200 MB per worker process: 13 GB),
  and simulated (the `simulated` executor: the real driver, store and predictors on a virtual clock), which
  the real one checks;
- faults: a Ray worker SIGKILLed mid-evaluation, and the driver SIGKILLed and resumed on Ray, as real
  subprocess searches: evaluations lost and paid twice;
- scale figures: store writes per second, driver seconds per evaluation at 64 and 1,000 simulated
  workers, refit time of the default predictor as evaluations grow (medians over `--repeats`;
  `--scale-only` measures just these and the simulated fleet, without Ray).
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Benchmark, at_least

if TYPE_CHECKING:
    from ..toolkit import Toolkit

#: the search the fleet figures run: cheap proposals, the real loop, store and predictors
FLEET = {
    "name": "fleet",
    "seed_network": "simple-cnn",
    "random_seed": 0,
    "search": {"evaluate_seed": False, "moves": ["insert_conv", "scale", "remove", "insert_add"]},
    "strategy": {"name": "evolution", "options": {"population": 16, "sample": 4}},
    "predictors": {"accuracy": {"name": "ensemble", "options": {"n_estimators": 50}}},
}


def _doc(out: Path, evaluations: int, executor: dict[str, Any], evaluator: dict[str, Any], **search: Any) -> dict:
    doc = copy.deepcopy(FLEET)
    doc.update(output=str(out), evaluations=evaluations, executor=executor, evaluator=evaluator)
    doc["search"].update(search)
    return doc


def _search(doc: dict[str, Any], toolkit: Toolkit) -> tuple[Any, dict[str, Any], float]:
    """Run `doc`; returns the result, the executor's stored figures and the loop's wall seconds."""
    from ..search import run_search
    from ..search.progress import SearchCallback
    from ..store import SQLiteRunStore

    span: dict[str, float] = {}

    class Clock(SearchCallback):
        def on_start(self, evaluation_budget: int) -> None:
            span["start"] = time.perf_counter()

        def on_end(self) -> None:
            span["end"] = time.perf_counter()

    res = run_search(doc, toolkit=toolkit, progress=False, outputs=False, callbacks=[Clock()])
    with SQLiteRunStore.open(res.run_dir) as store:
        stats = store.artifact("executor") or {}
    return res, stats, span["end"] - span["start"]


# ---- overhead per task ---------------------------------------------------------------------------------
def _overheads_ms(executor: Any, toolkit: Toolkit, n: int) -> list[float]:
    task = _tiny_task(toolkit)
    executor.run([task] * 4)  # warm: workers started, toolkit built
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        (result,) = executor.run([task])
        out.append((time.perf_counter() - t0 - result.elapsed_s) * 1000)
    return out


def task_overheads(toolkit: Toolkit, n: int) -> dict[str, Any]:
    import ray

    from ..search.executors import make_executor

    figures: dict[str, Any] = {}
    for name, options in (("local", {"workers": 2, "threads_per_worker": 1}), ("inprocess", {"workers": 1})):
        with make_executor("local", options, toolkit) as ex:
            figures[f"{name}_task_overhead_ms_median"] = statistics.median(_overheads_ms(ex, toolkit, n))
    t0 = time.perf_counter()
    ex = make_executor("ray", {"num_cpus": 2}, toolkit)
    figures["ray_start_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ex.run([_tiny_task(toolkit)] * 2)
    figures["ray_first_tasks_s"] = time.perf_counter() - t0  # workers start and build the toolkit
    figures["ray_task_overhead_ms_median"] = statistics.median(_overheads_ms(ex, toolkit, n))
    assert ray.is_initialized()
    ex._owns_ray = False  # keep this Ray for the efficiency figure: its workers are warm
    ex.close()
    return figures


def _tiny_task(toolkit: Toolkit, seconds: float = 0.0) -> Any:
    from ..search.executors import Task

    arch = toolkit.seed("simple-cnn")
    return Task("evaluate", arch.to_json(), "synthetic", {"seconds": seconds}, selection=toolkit.selection.to_json())


# ---- 16 one-second evaluations on 2 workers ------------------------------------------------------------
def efficiency(toolkit: Toolkit, work: Path, repeats: int) -> dict[str, Any]:
    """On the warm Ray of `task_overheads` (2 CPUs): the wall time of 16 one-second evaluations."""
    out: dict[str, Any] = {}
    for label, search in (
        ("async_in_flight_2", {"schedule": "async", "max_in_flight": 2, "per_round": 2}),
        ("async_in_flight_4", {"schedule": "async", "max_in_flight": 4, "per_round": 2}),
        ("rounds_2", {"schedule": "rounds", "per_round": 2}),
    ):
        walls = []
        for i in range(repeats):
            doc = _doc(
                work / f"eff-{label}-{i}",
                16,
                {"name": "ray"},
                {"name": "synthetic", "options": {"seconds": 1.0}},
                **search,
            )
            doc["random_seed"] = i
            _, _, wall = _search(doc, toolkit)
            walls.append(wall)
        out[label] = {"wall_s_median": statistics.median(walls), "efficiency": 8.0 / statistics.median(walls)}
    return out


# ---- fleets ----------------------------------------------------------------------------------------------
def simulated_fleet(
    toolkit: Toolkit,
    work: Path,
    workers: int,
    per_worker: int,
    seconds: tuple[float, float] = (1.0, 5.0),
    repeats: int = 1,
) -> dict[str, Any]:
    """The same search `repeats` times per schedule on `workers` simulated workers: the median of each
    figure (the driver's CPU, and so the virtual clock, varies with what else the machine runs)."""
    evaluator = {"name": "synthetic", "options": {"seconds": seconds[0], "seconds_max": seconds[1]}}
    out: dict[str, Any] = {}
    for schedule in ("async", "rounds"):
        search = {"schedule": schedule, "per_round": workers, "max_in_flight": workers}
        runs: list[dict[str, float]] = []
        for i in range(repeats):
            doc = _doc(
                work / f"sim-{workers}-{seconds[1]}-{schedule}-{i}",
                workers * per_worker,
                {"name": "simulated", "options": {"workers": workers}},
                evaluator,
                **search,
            )
            res, stats, wall = _search(doc, toolkit)
            n = len(res.evaluated)
            runs.append(
                {
                    "busy_share": stats["busy_share"],
                    "clock_s": stats["clock_s"],
                    "driver_s_per_evaluation": stats["driver_s"] / n,
                    "evaluations": n,
                    "real_wall_s": wall,
                }
            )
        out[schedule] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        out[schedule]["repeats"] = repeats
    return out


#: the fleets' task times, seconds (drawn per network from this range)
FLEET_SECONDS = (1.0, 5.0)


def real_fleet(
    toolkit: Toolkit, work: Path, cpus: int, per_worker: int, seconds: tuple[float, float] = FLEET_SECONDS
) -> dict[str, Any]:
    """A local Ray cluster declaring `cpus` CPUs, tasks that sleep `seconds`: busy share from the tasks' own
    times over the loop's wall time."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=cpus, log_to_driver=False, configure_logging=False, include_dashboard=False)
    try:
        ray.get([ray.remote(_sleep).remote(0.0) for _ in range(cpus)])
        evaluator = {"name": "synthetic", "options": {"seconds": seconds[0], "seconds_max": seconds[1]}}
        # warm every worker (each builds the toolkit once) before timing
        _search(
            _doc(
                work / "real-warm",
                cpus * 2,
                {"name": "ray"},
                {"name": "synthetic", "options": {"seconds": 0.5}},
                schedule="async",
                max_in_flight=cpus,
                per_round=cpus,
            ),
            toolkit,
        )
        out: dict[str, Any] = {"workers": cpus, "seconds": list(seconds)}
        for schedule in ("async", "rounds"):
            search = {"schedule": schedule, "per_round": cpus, "max_in_flight": cpus}
            doc = _doc(work / f"real-{cpus}-{schedule}", cpus * per_worker, {"name": "ray"}, evaluator, **search)
            res, _, wall = _search(doc, toolkit)
            busy = sum(float(e.result["train_time_s"]) for e in res.evaluated)
            out[schedule] = {"busy_share": busy / (cpus * wall), "wall_s": wall, "evaluations": len(res.evaluated)}
        return out
    finally:
        ray.shutdown()


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


# ---- faults ----------------------------------------------------------------------------------------------
FAULT_TOML = """name = "faults"
seed_network = "simple-cnn"
evaluations = {evaluations}
random_seed = 0
output = "{output}"
[search]
per_round = 2
schedule = "async"
moves = ["insert_conv", "scale", "remove"]
[strategy]
name = "random"
[evaluator]
name = "synthetic"
options = {{ seconds = 0.5 }}
[predictors.accuracy]
name = "ensemble"
options = {{ n_estimators = 10 }}
[executor]
name = "ray"
options = {{ num_cpus = 2 }}
"""


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    full.update(env)
    cmd = [sys.executable, "-m", "na_toolkit.cli.main", "search", *args]
    return subprocess.Popen(cmd, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stored(folder: Path) -> list[str]:
    from ..store import SQLiteRunStore

    with SQLiteRunStore.open(folder) as store:
        return [r.arch_hash for r in store.evaluations()]


def _count(hashes: list[str], evaluations: int) -> tuple[int, int]:
    """(lost, paid twice) of a finished run's stored evaluations."""
    return max(0, evaluations - len(set(hashes))), len(hashes) - len(set(hashes))


def faults(work: Path, evaluations: int = 8) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    # a Ray worker SIGKILLed half a second into its second task (once across processes)
    base = work / "kill-worker"
    base.mkdir(parents=True)
    (base / "c.toml").write_text(FAULT_TOML.format(evaluations=evaluations, output=base / "runs"))
    proc = _cli([str(base / "c.toml")], {"NA_TOOLKIT_KILL_AT": "task:2:0.2", "NA_TOOLKIT_KILL_ONCE": str(base / "k")})
    _, err = proc.communicate(timeout=600)
    (run,) = list((base / "runs").iterdir())
    lost, twice = _count(_stored(run), evaluations)
    scenarios["worker_killed"] = {
        "rc": proc.returncode,
        "killed": (base / "k").exists(),
        "lost": lost,
        "paid_twice": twice,
    }
    # the driver SIGKILLed after its fourth wait for evaluations, then resumed on Ray
    base = work / "kill-driver"
    base.mkdir(parents=True)
    (base / "c.toml").write_text(FAULT_TOML.format(evaluations=evaluations, output=base / "runs"))
    proc = _cli([str(base / "c.toml")], {"NA_TOOLKIT_KILL_AT": "evaluate:4"})
    proc.communicate(timeout=600)
    (run,) = list((base / "runs").iterdir())
    before = _stored(run)
    resumed = _cli(["--resume", str(run)], {})
    _, err = resumed.communicate(timeout=600)
    after = _stored(run)
    lost, twice = _count(after, evaluations)
    lost += sum(h not in after for h in before)
    twice += sum(after.count(h) > 1 for h in before)
    scenarios["driver_killed"] = {
        "rc": proc.returncode,
        "killed": proc.returncode == -signal.SIGKILL,
        "stored_at_kill": len(before),
        "resume_rc": resumed.returncode,
        "lost": lost,
        "paid_twice": twice,
    }
    return scenarios


# ---- scale ----------------------------------------------------------------------------------------------
def store_writes_per_s(work: Path, n: int = 500) -> float:
    from ..store import SQLiteRunStore

    work.mkdir(parents=True, exist_ok=True)
    store = SQLiteRunStore.create(work / "writes.sqlite", "writes", {"name": "writes"})
    arch_json = {"nodes": [{"op": "conv", "attrs": {"out_channels": 16}}] * 20}
    try:
        t0 = time.perf_counter()
        for i in range(n):
            h = f"{i:016x}"
            store.add_evaluation(
                h, arch_json, {"accuracy": 0.9}, {"valid_accuracy": 0.9}, 1, 1.0, targets={"accuracy": 0.9}
            )
        return n / (time.perf_counter() - t0)
    finally:
        store.close()


def refit_seconds(toolkit: Toolkit, sizes: tuple[int, ...], repeats: int = 1) -> dict[str, float]:
    """Fit time of the default predictor (the search's default, `ensemble`) on n random networks: the
    median of `repeats` fits."""
    import numpy as np

    from ..predictors import make_predictor
    from ..search.strategy import random_move

    rng = np.random.default_rng(0)
    seed = toolkit.seed("simple-cnn")
    moves = [toolkit.moves.get(m) for m in ("insert_conv", "scale", "remove", "insert_add")]
    archs = [seed]
    while len(archs) < max(sizes):
        got = random_move(archs[int(rng.integers(len(archs)))], moves, rng)
        if got is not None:
            archs.append(got[1])
    y = rng.uniform(0.5, 1.0, len(archs))
    out = {}
    for n in sizes:
        times = []
        for _ in range(repeats):
            pred = make_predictor("ensemble", None, toolkit)
            t0 = time.perf_counter()
            pred.fit(archs[:n], y[:n])
            times.append(time.perf_counter() - t0)
        out[str(n)] = statistics.median(times)
    return out


# ---- the benchmark --------------------------------------------------------------------------------------
def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", type=at_least(1), default=200, help="short tasks for the overhead figures (default 200)")
    p.add_argument(
        "--repeats",
        type=at_least(1),
        default=3,
        help="repeats of the 16 x 1 s search, the simulated fleets and the refits (median; default 3)",
    )
    p.add_argument("--fleet-workers", type=at_least(1), default=64, help="simulated workers (default 64)")
    p.add_argument(
        "--per-worker", type=at_least(1), default=20, help="evaluations per worker in the fleets (default 20)"
    )
    p.add_argument(
        "--real-cpus", type=int, default=64, help="CPUs a real local Ray fleet declares (default 64; 0: skip it)"
    )
    p.add_argument("--scale-workers", type=int, default=1000, help="simulated workers for docs/scale.md (0: skip)")
    p.add_argument("--skip-faults", action="store_true", help="leave out the fault scenarios")
    p.add_argument(
        "--refit-sizes",
        type=at_least(3),
        nargs="+",
        default=[100, 1000, 3000],
        help="evaluations the default predictor is fitted on for the refit figures (default 100 1000 3000)",
    )
    p.add_argument(
        "--scale-only",
        action="store_true",
        help="only the driver's costs: the simulated fleets, store writes and refits (no Ray)",
    )


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    if not args.scale_only:
        try:
            import ray  # noqa: F401
        except ImportError:
            from ..errors import ConfigError
            from ..search.executor_ray import RAY_MISSING

            raise ConfigError(RAY_MISSING) from None
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="na-bench-executor-") as tmp:
        figures = _scale_only(args, toolkit, Path(tmp)) if args.scale_only else _all(args, toolkit, Path(tmp))
    figures["load_average_1min"] = {"start": load_start, "end": os.getloadavg()[0], "cores": os.cpu_count()}
    return figures


def _scale_only(args: argparse.Namespace, toolkit: Toolkit, work: Path) -> dict[str, Any]:
    print("bench executor: simulated fleet", file=sys.stderr)
    sim = simulated_fleet(toolkit, work, args.fleet_workers, args.per_worker, FLEET_SECONDS, args.repeats)
    return {"fleet_simulated": {"workers": args.fleet_workers, **sim}, "scale": _scale(args, toolkit, work)}


def _scale(args: argparse.Namespace, toolkit: Toolkit, work: Path) -> dict[str, Any]:
    print("bench executor: scale", file=sys.stderr)
    writes = [store_writes_per_s(work / f"writes-{i}") for i in range(args.repeats)]
    scale: dict[str, Any] = {"store_writes_per_s": statistics.median(writes)}
    scale["refit_s_by_evaluations"] = refit_seconds(toolkit, tuple(args.refit_sizes), args.repeats)
    if args.scale_workers:
        big = simulated_fleet(toolkit, work, args.scale_workers, 3, repeats=args.repeats)
        scale[f"simulated_{args.scale_workers}_workers"] = big
    return scale


def _all(args: argparse.Namespace, toolkit: Toolkit, work: Path) -> dict[str, Any]:
    print("bench executor: task overheads", file=sys.stderr)
    figures = task_overheads(toolkit, args.tasks)
    print("bench executor: 16 x 1 s on 2 workers", file=sys.stderr)
    eff = efficiency(toolkit, work, args.repeats)
    import ray as ray_

    ray_.shutdown()
    figures["efficiency_16x1s_2workers"] = eff["async_in_flight_2"]["efficiency"]
    figures["efficiency"] = eff
    print("bench executor: fleets", file=sys.stderr)
    # the same fleet twice: simulated (the driver's real cost on a virtual clock), and, unless
    # --real-cpus 0, a local Ray cluster that declares that many CPUs with tasks that really sleep
    sim = simulated_fleet(toolkit, work, args.fleet_workers, args.per_worker, FLEET_SECONDS, args.repeats)
    figures["fleet_simulated"] = {"workers": args.fleet_workers, **sim}
    headline = sim
    if args.real_cpus:
        real = real_fleet(toolkit, work, args.real_cpus, args.per_worker, FLEET_SECONDS)
        figures["fleet_real_ray"] = real
        if args.real_cpus == args.fleet_workers:
            headline = real
    figures["fleet_busy_share_async"] = headline["async"]["busy_share"]
    figures["fleet_busy_share_rounds"] = headline["rounds"]["busy_share"]
    figures["fleet_figures_from"] = "real Ray" if headline is not sim else "simulated"
    if not args.skip_faults:
        print("bench executor: faults", file=sys.stderr)
        sc = faults(work)
        figures["lost"] = sum(s["lost"] for s in sc.values())
        figures["paid_twice"] = sum(s["paid_twice"] for s in sc.values())
        figures["faults"] = sc
    figures["scale"] = _scale(args, toolkit, work)
    return figures


BENCHMARK = Benchmark(
    "executor", "scale-out: task overheads, async loop efficiency, fleet busy share, faults", configure, run
)

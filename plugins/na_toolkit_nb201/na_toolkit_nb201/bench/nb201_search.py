"""Search on NAS-Bench-201: every registered strategy and Optuna's TPE, same loop, same budget.

Each (strategy, seed) is one `run_search` on the `nb201` seed network with the `set_edge_op` move, the
table evaluator on `--dataset` (default c10: `c10_valid_acc_200ep` is what the search sees; `c10_test_acc_200ep`
of the best feasible candidate by valid accuracy is reported; c100 and in16 select on their `valtest` column,
`table_models.ACCURACY_COLUMNS`) and, with `--device`, the table time model of that
device under a hard latency budget at `--budget-quantile` of the device's column over the whole table.
The latency of a candidate is known without an evaluation, so for every strategy alike a proposal that
breaks the budget is dropped before it is paid for (the loop's hard-budget screen,
`search.screen_hard_budgets`); predictors train only on evaluated rows.
TPE (Optuna's `TPESampler`, Bergstra et al. 2011) drives the same loop through an ask/tell adaptor over the
6 edge operations; an infeasible or already evaluated cell is told to it at no cost.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from na_toolkit.bench.base import Benchmark
from na_toolkit.errors import ConfigError, DataError

from ..space import DATASETS, OPS, cell_string, nb201_architecture, nb201_cell_of
from ..table import latency_column, load_table, require_whole_space
from ..table_models import ACCURACY_COLUMNS

if TYPE_CHECKING:
    from na_toolkit.ir.architecture import Architecture
    from na_toolkit.toolkit import Toolkit

#: strategy options the benchmark uses (anything not named keeps its defaults)
STRATEGY_OPTIONS: dict[str, dict[str, Any]] = {
    # episodes of 6 moves: one per edge of the cell, so an episode can reach any cell from its start
    "neural-architect": {"episode_length": 6},
    # random walks of up to 12 moves from the seed: close to uniform over the 5^6 cells (each move
    # redraws one of 6 edges), which is what "random search" means on this benchmark
    "random": {"max_moves": 12},
    # regularized evolution (Real et al. 2019), initial population drawn the same way
    "evolution": {"max_moves": 12},
}
#: the predictor of the loop (accuracy); strategies that return exactly n candidates never use it, so they
#: get a cheap one (its refits would not change a single decision) -- see `_predictor_for`
PREDICTOR = {"name": "gp", "options": {}}
CHEAP_PREDICTOR = {"name": "bayesian-ridge", "options": {}}
TPE = "tpe"
#: the issue's targets (CIFAR-10, the shipped table), reported beside the figures
TARGETS = {None: 94.20, "lat_pixel3": 91.70, "lat_titan_rtx_1": 93.00}
MIN_CANDIDATES_PER_S = 200.0
DEFAULT_DATASET = "c10"


def add_dataset_option(parser: argparse.ArgumentParser) -> None:
    """`--dataset`: whose accuracy columns of the table the searches see and report (the benches that search)."""
    parser.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        choices=tuple(DATASETS),
        help="accuracy columns the search sees and reports: c10, c100 or in16 (default c10); "
        "the searched networks and latencies stay the table's CIFAR-10 ones",
    )


def accuracy_columns(args: argparse.Namespace, table: Any = None) -> tuple[str, str]:
    """(the column the search sees, the column reported) of `args.dataset` (200 epochs). With `table`, a
    ConfigError when it lacks them, naming the datasets whose columns it has (`--dataset` picks one)."""
    dataset = getattr(args, "dataset", DEFAULT_DATASET)
    columns = ACCURACY_COLUMNS[(dataset, 200)]
    if table is not None and not all(table.has(c) for c in columns):
        has = [d for d in DATASETS if all(table.has(c) for c in ACCURACY_COLUMNS[(d, 200)])]
        missing = " or ".join(c for c in columns if not table.has(c))
        raise ConfigError(
            f"--dataset {dataset}: table {table.path} has no column {missing}; "
            f"the datasets whose columns it has: {', '.join(has) or 'none'} (--dataset picks one)"
        )
    return columns


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None, help="latency column of the table (e.g. lat_pixel3); default: no budget"
    )
    parser.add_argument(
        "--budget-quantile",
        type=float,
        default=0.25,
        help="latency budget = this quantile of the device's column over the whole table (default 0.25)",
    )
    parser.add_argument("--seeds", type=int, default=20, help="search seeds per strategy (default 20)")
    parser.add_argument(
        "--evaluations", type=int, default=100, help="ground-truth evaluations per search (default 100)"
    )
    parser.add_argument("--per-round", type=int, default=10, help="evaluations per round of the loop (default 10)")
    parser.add_argument(
        "--strategies", default=None, help="comma-separated strategies to run (default: every registered one, plus tpe)"
    )
    parser.add_argument("--table", default=None, help="NB201 CSV (default: the plugin's shipped table)")
    add_dataset_option(parser)
    parser.add_argument(
        "--rate-batch", type=int, default=300, help="cells per repeat when measuring candidates_per_s (default 300)"
    )


# ---- the strategy the benchmark adds to the registered ones ---------------------------------------------
def _make_tpe(feasible: Callable[[Architecture], bool]) -> type:
    """Optuna's TPE over the six edge operations, as an ask/tell strategy of the same loop."""
    from na_toolkit.search.strategy import Candidate, Strategy

    class _TPE(Strategy):
        name: ClassVar[str] = f"bench:{TPE}"
        description: ClassVar[str] = "Optuna TPE over the NB201 cell (benchmark baseline)"
        max_draws: ClassVar[int] = 2000

        def __init__(self, context, **options):
            import optuna

            super().__init__(context, **options)
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            sampler = optuna.samplers.TPESampler(seed=int(context.rng.integers(2**31 - 1)))
            self.study = optuna.create_study(direction="maximize", sampler=sampler)
            self.distributions = {f"edge{e}": optuna.distributions.CategoricalDistribution(OPS) for e in range(6)}
            self.pending: dict[str, list[Any]] = {}  # hash -> trials waiting for that cell's ground truth

        def ask(self, n):
            evaluated = self.context.evaluated
            layer_types = self.context.seed_arch.layer_types
            out: list[Candidate] = []
            for _ in range(self.max_draws):
                if len(out) >= n:
                    break
                trial = self.study.ask(self.distributions)
                cell = cell_string([trial.params[f"edge{e}"] for e in range(6)])
                arch = nb201_architecture(cell, layer_types=layer_types)
                if not feasible(arch):
                    self.study.tell(trial, 0.0)  # known for free: the worst accuracy, never evaluated
                elif arch.hash in evaluated:
                    self.study.tell(trial, evaluated[arch.hash][1].metrics["accuracy"])
                elif arch.hash in self.pending:
                    self.pending[arch.hash].append(trial)
                else:
                    self.pending[arch.hash] = [trial]
                    out.append(Candidate(arch, (), None, TPE))
            return out

        def tell(self, results):
            for cand, score in results:
                for trial in self.pending.pop(cand.hash, []):
                    self.study.tell(trial, float(score.metrics.get("accuracy", 0.0)))

    return _TPE


def _bench_toolkit(toolkit: Toolkit, strategy_names: list[str], feasible: Callable[[Architecture], bool]) -> Toolkit:
    """`toolkit` itself, or, when TPE is asked for, a toolkit of the same plugins plus TPE."""
    import na_toolkit
    from na_toolkit.plugins import extend_toolkit

    if TPE not in strategy_names:
        return toolkit
    tpe = _make_tpe(feasible)

    class BenchPlugin:
        __name__ = "na_toolkit_nb201.bench.nb201_search"

        @staticmethod
        @na_toolkit.hookimpl
        def na_register_strategies(registry):
            registry.add(tpe)

    return extend_toolkit(toolkit, BenchPlugin())


def _predictor_for(strategy: str) -> dict[str, Any]:
    # TPE, random and evolution return exactly n candidates: the loop evaluates them all and never ranks
    # them, so the predictor it refits each round cannot change their search.
    return PREDICTOR if strategy not in ("random", "evolution", TPE) else CHEAP_PREDICTOR


def _config(
    args, strategy: str, seed: int, out_dir: Path, device: str | None, budget_ms: float | None
) -> dict[str, Any]:
    evaluator_options = {"dataset": getattr(args, "dataset", DEFAULT_DATASET), "epochs": 200}
    tm: dict[str, Any] = {"name": "nb201-table", "options": {}}
    if args.table:
        evaluator_options["table"] = args.table
        tm["options"]["table"] = args.table
    doc: dict[str, Any] = {
        "name": f"{strategy}-{seed}",
        "seed_network": "nb201",
        "evaluations": args.evaluations,
        "random_seed": seed,
        "output": str(out_dir),
        "search": {
            "per_round": args.per_round,
            "moves": ["set_edge_op"],
            "evaluate_seed": False,
            "max_stalled_rounds": 5,
        },
        "strategy": {
            "name": f"bench:{TPE}" if strategy == TPE else strategy,
            "options": dict(STRATEGY_OPTIONS.get(strategy, {})),
        },
        "evaluator": {"name": "nb201-table", "options": evaluator_options},
        "predictors": {"accuracy": _predictor_for(strategy)},
        "executor": {"name": "local", "options": {"workers": 1}},
    }
    if device is not None:
        doc["devices"] = {
            device: {"device": device, "time_model": tm, "budgets": {"latency_ms": {"limit": budget_ms, "hard": True}}}
        }
    return doc


def _best_feasible(result, device: str | None):
    h = result.best.get(device) if device is not None else result.best_overall
    return None if h is None else result.get(h)


def _summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {
        "mean": round(float(a.mean()), 4),
        "std": round(float(a.std()), 4),
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
        "n": int(a.size),
    }


#: cells the predictor of `_candidates_per_s` is fitted on, and its repeats of new cells (`--rate-batch` each)
RATE_FIT_CELLS, RATE_REPEATS = 100, 3


def _candidates_per_s(
    toolkit: Toolkit,
    doc: dict[str, Any],
    table: Any,
    rng: np.random.Generator,
    n: int = 300,
    repeats: int = RATE_REPEATS,
    valid_column: str = "c10_valid_acc_200ep",
) -> dict[str, Any]:
    """Proposals scored per second by the loop's `score` (the predictor + the device's time model), the
    predictor fitted on 100 evaluated cells. `cold`: each repeat scores `n` cells never seen before (their
    IR features and cell lookup computed from scratch: the rate for a new proposal; the feature caches are
    emptied first, so cells an earlier search of the process scored count as new too); `warm`: the same
    cells again (what re-scoring a proposal costs). Wall-clock and process-CPU rates (the machine is
    shared). The cells are built before the clock starts, as the move builds a proposal before the loop
    scores it."""
    from na_toolkit.predictors.features import clear_feature_caches
    from na_toolkit.search.components import build_components
    from na_toolkit.search.config import load_config
    from na_toolkit.search.scorer import Scorer
    from na_toolkit.search.summary import Counters

    components = build_components(load_config(doc, toolkit=toolkit), toolkit)
    # the loop's scorer, without a run (the table time model measures nothing)
    scorer = Scorer(components, Counters())
    layer_types = toolkit.layer_types
    rows = rng.permutation(len(table))
    train = [nb201_architecture(table.arch_strs[i], layer_types=layer_types) for i in rows[:RATE_FIT_CELLS]]
    valid = table.column(valid_column)
    pred = components.new_predictor("accuracy")
    pred.fit(train, valid[rows[:RATE_FIT_CELLS]] / 100.0)
    scorer.predictors["accuracy"] = pred
    out: dict[str, list[float]] = {"cold_wall": [], "cold_cpu": [], "warm_wall": [], "warm_cpu": []}
    try:
        for r in range(repeats):
            cells = [table.arch_strs[i] for i in rows[RATE_FIT_CELLS + r * n : RATE_FIT_CELLS + (r + 1) * n]]
            archs = [nb201_architecture(c, layer_types=layer_types) for c in cells]
            clear_feature_caches()
            for kind in ("cold", "warm"):
                t0, c0 = time.perf_counter(), time.process_time()
                scorer.score(archs)
                out[f"{kind}_wall"].append(len(archs) / (time.perf_counter() - t0))
                out[f"{kind}_cpu"].append(len(archs) / max(time.process_time() - c0, 1e-9))
    finally:
        components.close()
    return {**{k: round(float(np.median(v)), 1) for k, v in out.items()}, "batch": n, "repeats": repeats}


def _optuna_version() -> str | None:
    try:
        import optuna
    except ModuleNotFoundError:
        return None
    return optuna.__version__


def latency_budget(table: Any, device: str | None, quantile: float) -> tuple[float | None, np.ndarray]:
    """The hard latency budget of `device`'s column (its `quantile` over the whole table; None without a
    device) and which rows of the table meet it. DataError naming the columns for an unknown device."""
    if device is None:
        return None, np.ones(len(table), dtype=bool)
    if not table.has(device):
        raise DataError(f"no latency column {device!r} in the NB201 table; devices: {', '.join(table.devices)}")
    latency = table.column(device)
    if not np.isfinite(latency).any():
        raise DataError(f"latency column {device!r} of the NB201 table holds no value (every field is blank)")
    budget_ms = float(np.nanquantile(latency, quantile))  # over the cells with a latency (blank: unknown)
    with np.errstate(invalid="ignore"):
        return budget_ms, latency <= budget_ms  # an unknown latency is not feasible


def table_reference(
    table: Any, feasible_rows: np.ndarray, budget_ms: float | None, dataset: str = DEFAULT_DATASET
) -> dict[str, Any]:
    """What a search could reach at best: the best test accuracy of the whole table and of its feasible
    cells, and the test accuracy of the feasible cell with the best valid accuracy (what a search that
    found the best cell by the accuracy it sees would report), in percent, on `dataset`'s columns."""
    valid_column, test_column = ACCURACY_COLUMNS[(dataset, 200)]
    valid, test = table.column(valid_column), table.column(test_column)
    known = np.isfinite(valid) & np.isfinite(test)  # cells a search can evaluate (blank: a failed evaluation)
    feasible_rows = feasible_rows & known
    if not feasible_rows.any():
        raise DataError(f"no cell of the NB201 table meets the budget with {valid_column} and {test_column} values")
    best_valid_row = int(np.argmax(np.where(feasible_rows, valid, -np.inf)))
    return {
        "optimum_test": round(float(test[known].max()), 4),
        "feasible_optimum_test": round(float(test[feasible_rows].max()), 4),
        "feasible_best_valid_test": round(float(test[best_valid_row]), 4),
        "feasible_cells": int(feasible_rows.sum()),
        "budget_ms": None if budget_ms is None else round(budget_ms, 6),
    }


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    from na_toolkit.search.loop import run_search

    if args.seeds < 1 or args.evaluations < 1 or args.per_round < 1:
        raise ConfigError("--seeds, --evaluations and --per-round must be >= 1")
    if not 0 < args.budget_quantile <= 1:
        raise ConfigError(f"--budget-quantile must be in (0, 1], got {args.budget_quantile}")
    table = load_table(args.table)
    require_whole_space(table, "bench nb201-search")
    most = (len(table.arch_strs) - RATE_FIT_CELLS) // RATE_REPEATS  # each repeat scores cells never seen before
    if not 1 <= args.rate_batch <= most:
        raise ConfigError(f"--rate-batch must be in [1, {most}] (3 repeats of new cells), got {args.rate_batch}")
    valid_column, test_column = accuracy_columns(args, table)
    device = None if args.device is None else latency_column(args.device)
    budget_ms, feasible_rows = latency_budget(table, device, args.budget_quantile)
    if device is not None:

        def feasible(arch, _rows=feasible_rows, _table=table) -> bool:
            return bool(_rows[_table.row_of(nb201_cell_of(arch))])
    else:

        def feasible(arch) -> bool:
            return True

    registered = toolkit.strategies.names()
    names = (
        registered + [TPE] if args.strategies is None else [s.strip() for s in args.strategies.split(",") if s.strip()]
    )
    for s in names:
        if s != TPE and s not in registered:
            raise ConfigError(f"unknown strategy {s!r}; registered: {', '.join(registered)} (and {TPE})")
    toolkit = _bench_toolkit(toolkit, names, feasible)

    reference = table_reference(table, feasible_rows, budget_ms, args.dataset)
    per_strategy: dict[str, Any] = {}
    load_start, cpu_start, wall_start = os.getloadavg()[0], time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nb201-search-") as tmp:
        # first, while the process has scored nothing yet
        rate_doc = _config(
            args,
            "neural-architect" if "neural-architect" in names else names[0],
            0,
            Path(tmp) / "rate",
            device,
            budget_ms,
        )
        rate_doc["predictors"] = {"accuracy": PREDICTOR}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rate = _candidates_per_s(
                toolkit, rate_doc, table, np.random.default_rng(0), n=args.rate_batch, valid_column=valid_column
            )
        for strategy in names:
            tests, valids, elapsed, cpu, counters = [], [], [], [], []
            for seed in range(args.seeds):
                doc = _config(args, strategy, seed, Path(tmp) / strategy, device, budget_ms)
                t0, c0 = time.perf_counter(), time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # e.g. scikit-learn's GP convergence notes, once per refit
                    result = run_search(doc, toolkit=toolkit, progress=False, outputs=False)
                elapsed.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                best = _best_feasible(result, device)
                if best is None:
                    tests.append(float("nan"))
                    valids.append(float("nan"))
                else:
                    tests.append(100.0 * best.score.metrics["test_accuracy"])
                    valids.append(100.0 * best.score.metrics["accuracy"])
                c = result.counters
                counters.append((c.evaluations, c.candidates_scored, c.predictor_fits))
                print(
                    f"[nb201-search] {strategy} seed {seed}: test {tests[-1]:.2f} valid {valids[-1]:.2f} "
                    f"({c.evaluations} evaluations, {c.candidates_scored} scored, {elapsed[-1]:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )
            ok = [t for t in tests if not math.isnan(t)]
            per_strategy[strategy] = {
                "test_accuracy": _summary(ok) if ok else None,
                "valid_accuracy": _summary([v for v in valids if not math.isnan(v)]) if ok else None,
                "runs_without_feasible": len(tests) - len(ok),
                "test_accuracy_per_seed": [round(t, 4) for t in tests],
                "evaluations_mean": float(np.mean([c[0] for c in counters])),
                "candidates_scored_mean": float(np.mean([c[1] for c in counters])),
                "predictor_fits_mean": float(np.mean([c[2] for c in counters])),
                "seconds_per_search_median": round(float(np.median(elapsed)), 2),
                "cpu_seconds_per_search_median": round(float(np.median(cpu)), 2),
            }
    on_target = args.dataset == DEFAULT_DATASET and (args.budget_quantile == 0.25 or device is None)
    target = TARGETS.get(device) if on_target else None
    na = per_strategy.get("neural-architect", {}).get("test_accuracy")
    return {
        "test_accuracy": {s: v["test_accuracy"] for s, v in per_strategy.items()},
        "candidates_per_s": rate["cold_wall"],
        "target": {
            "neural-architect_test_accuracy": target,
            "met": None if (target is None or na is None) else bool(na["mean"] >= target),
            "candidates_per_s": MIN_CANDIDATES_PER_S,
            "candidates_per_s_met": bool(rate["cold_wall"] >= MIN_CANDIDATES_PER_S),
        },
        "reference": reference,
        "strategies": per_strategy,
        "candidates_per_s_detail": rate,
        "run": {
            "wall_s": round(time.perf_counter() - wall_start, 1),
            "cpu_s": round(time.process_time() - cpu_start, 1),
            "load_average_1m": {
                "start": round(load_start, 2),
                "end": round(os.getloadavg()[0], 2),
                "cores": os.cpu_count(),
            },
            "optuna": _optuna_version(),
        },
        "protocol": {
            "space": "NAS-Bench-201 cells (5^6), CIFAR-10 network, move set_edge_op from the nb201 seed",
            "sees": f"{valid_column} of evaluated cells only",
            "reports": f"{test_column} of the best feasible evaluated cell by valid accuracy (percent)",
            "latency": "hard budget; a proposal's latency comes from the table time model for free, and every "
            "strategy's infeasible proposals are dropped before evaluation (the loop's screen)",
            "predictor": PREDICTOR,
            "predictor_of_exact_n_strategies": CHEAP_PREDICTOR,
            "strategy_options": STRATEGY_OPTIONS,
        },
    }


BENCHMARK = Benchmark("nb201-search", (__doc__ or "").strip().splitlines()[0], configure, run)

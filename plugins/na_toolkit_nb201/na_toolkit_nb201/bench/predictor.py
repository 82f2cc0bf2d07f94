"""Predictor quality on NAS-Bench-201: rank correlation / error of every registered predictor vs baselines.

Per seed, `--train` cells are drawn at random from the NB201 table and `--test` other cells; each predictor
is fit on the training cells' `--train-target` column (by default the validation accuracy when the target is a
test accuracy: a search never sees test accuracy) and scored on the test cells' `--target` column: Kendall τ,
Spearman ρ and MAPE, mean over seeds. Two baselines run in the same process on the same splits: a random
forest on the path encoding of the cell (White et al., BANANAS, AAAI 2021) and a ridge on one-hot edge
operations. Throughput: predictions per second on 1,000 architectures, from the IR (features / tokens
computed, "cold") and with them cached ("warm"), medians of repeats.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from na_toolkit.bench.base import Benchmark
from na_toolkit.errors import ConfigError

from ..space import EDGES, OPS, nb201_architecture, parse_cell
from ..table import finite_rows, load_table
from ..table_models import ACCURACY_COLUMNS

if TYPE_CHECKING:
    from na_toolkit.toolkit import Toolkit

BASELINE_PATH_RF = "baseline_path_rf"
BASELINE_ONEHOT_RIDGE = "baseline_onehot_ridge"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="c10_test_acc_200ep", help="column scored on the test cells")
    parser.add_argument(
        "--train-target",
        default=None,
        help="column the predictors are fit on (default: the validation accuracy for a test-accuracy "
        "target, else the target itself)",
    )
    parser.add_argument("--train", type=int, default=100, help="training cells per seed")
    parser.add_argument("--test", type=int, default=1000, help="test cells per seed")
    parser.add_argument("--seeds", type=int, default=5, help="random train/test draws, seeds 0..N-1 (default 5)")
    parser.add_argument("--table", default=None, help="an NB201 table CSV (default: the plugin's)")
    parser.add_argument("--predictors", default=None, help="comma-separated predictor names (default: all registered)")
    parser.add_argument(
        "--neural-seeds",
        type=int,
        default=None,
        help="run the neural predictor on the first N seeds only (it trains an LSTM; default: all)",
    )
    parser.add_argument("--neural-epochs", type=int, default=None, help="override the neural predictor's epochs")
    parser.add_argument(
        "--throughput-archs",
        type=int,
        default=1000,
        help="architectures predicted to time predictions per second (default 1000)",
    )


def default_train_target(target: str) -> str:
    """Selection happens on validation data: map a test-accuracy column to its validation column."""
    for valid, test in ACCURACY_COLUMNS.values():
        if target == test:
            return valid
    return target


# ---- baselines (on the cell, measured side by side) ----------------------------------------------------------
def path_encoding(cells: list[str]) -> np.ndarray:
    """BANANAS path encoding: one bit per input->output path of the cell labelled by its operations
    (paths through `none` do not exist). Paths 0->3, 0->1->3, 0->2->3, 0->1->2->3 over the 4 other ops."""
    ops = [o for o in OPS if o != "none"]
    edge = {(s, d): e for e, (s, d) in enumerate(EDGES)}
    routes = [(0, 3), (0, 1, 3), (0, 2, 3), (0, 1, 2, 3)]
    columns = [(r, seq) for r in routes for seq in itertools.product(ops, repeat=len(r) - 1)]
    index = {c: i for i, c in enumerate(columns)}
    X = np.zeros((len(cells), len(columns)))
    for row, cell in enumerate(cells):
        cell_ops = parse_cell(cell)
        for r in routes:
            seq = tuple(cell_ops[edge[(a, b)]] for a, b in zip(r, r[1:]))
            if "none" not in seq:
                X[row, index[(r, seq)]] = 1.0
    return X


def onehot_ops(cells: list[str]) -> np.ndarray:
    X = np.zeros((len(cells), len(EDGES) * len(OPS)))
    for row, cell in enumerate(cells):
        for e, op in enumerate(parse_cell(cell)):
            X[row, e * len(OPS) + OPS.index(op)] = 1.0
    return X


def _baselines(seed: int):
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import Ridge

    return {
        BASELINE_PATH_RF: (path_encoding, RandomForestRegressor(n_estimators=100, random_state=seed)),
        BASELINE_ONEHOT_RIDGE: (onehot_ops, Ridge(alpha=1.0)),
    }


# ---- metrics ----------------------------------------------------------------------------------------------------
def scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    return {
        "kendall_tau": float(kendalltau(pred, truth)[0]),
        "spearman": float(spearmanr(pred, truth)[0]),
        "mape_pct": float(np.mean(np.abs(pred - truth) / np.abs(truth)) * 100),
    }


def _median_rate(fn, n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / float(np.median(times))


def _clear_caches(model: Any) -> None:
    from na_toolkit.predictors.features import clear_feature_caches

    clear_feature_caches()
    tok = getattr(model, "tokenizer_", None)
    if tok is not None:
        tok.clear_cache()


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    table = load_table(args.table)
    target = args.target
    train_target = args.train_target or default_train_target(target)
    for option, column in (("--target", target), ("--train-target", train_target)):
        if not table.has(column):  # e.g. the default CIFAR-10 column on a table of other datasets
            raise ConfigError(
                f"{option}: table {table.path} has no column {column!r}; give one of its columns: "
                f"{', '.join(table.columns)}"
            )
    if args.train < 3 or args.test < 2 or args.seeds < 1:
        raise ConfigError("need --train >= 3, --test >= 2 and --seeds >= 1")
    known = finite_rows(table, target, train_target)  # the cells with both values (a blank field: unknown)
    if args.train + args.test > len(known):
        raise ConfigError(
            f"--train + --test = {args.train + args.test} exceeds the table's {len(known)} cells with "
            f"{target} and {train_target} values"
        )
    registry = toolkit.predictors
    names = registry.names() if not args.predictors else [n.strip() for n in args.predictors.split(",") if n.strip()]
    for n in names:
        registry.get(n)  # unknown names fail now, with the close matches
    neural_seeds = args.seeds if args.neural_seeds is None else args.neural_seeds
    y_train_all = table.column(train_target)
    y_test_all = table.column(target)

    per_seed: dict[str, list[dict[str, float]]] = {}
    fit_s: dict[str, list[float]] = {}
    fitted_seed0: dict[str, Any] = {}
    test_archs_seed0: list = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        rows = known[rng.permutation(len(known))[: args.train + args.test]]
        tr, te = rows[: args.train], rows[args.train :]
        cells_tr = [table.arch_strs[i] for i in tr]
        cells_te = [table.arch_strs[i] for i in te]
        archs_tr = [nb201_architecture(c, layer_types=toolkit.layer_types) for c in cells_tr]
        archs_te = [nb201_architecture(c, layer_types=toolkit.layer_types) for c in cells_te]
        y_tr, y_te = y_train_all[tr], y_test_all[te]
        for name, (encode, model) in _baselines(seed).items():
            t = time.perf_counter()
            model.fit(encode(cells_tr), y_tr)
            pred = model.predict(encode(cells_te))
            fit_s.setdefault(name, []).append(time.perf_counter() - t)
            per_seed.setdefault(name, []).append(scores(pred, y_te))
        for name in names:
            cls = registry.get(name)
            params: dict[str, Any] = {}
            if "random_state" in cls._get_param_names():
                params["random_state"] = seed
            if name == "neural":
                if seed >= neural_seeds:
                    continue
                if args.neural_epochs is not None:
                    params["epochs"] = args.neural_epochs
                # the predictor as a joint search runs it: its embedding is the controller's module
                # (`share_embedding`), fresh per seed here since no controller trains it
                params["share_embedding"] = True
            model = cls(**params)
            t = time.perf_counter()
            model.fit(archs_tr, y_tr)
            fit_s.setdefault(name, []).append(time.perf_counter() - t)
            pred = model.predict(archs_te)
            per_seed.setdefault(name, []).append(scores(pred, y_te))
            print(
                f"seed {seed} {name}: tau {per_seed[name][-1]['kendall_tau']:.3f} "
                f"mape {per_seed[name][-1]['mape_pct']:.2f}% fit {fit_s[name][-1]:.1f}s",
                file=sys.stderr,
            )
            if seed == 0:
                fitted_seed0[name] = model
        if seed == 0:
            test_archs_seed0 = archs_te

    result: dict[str, Any] = {"target": target, "train_target": train_target}
    for metric in ("kendall_tau", "spearman", "mape_pct"):
        result[metric] = {n: float(np.mean([s[metric] for s in v])) for n, v in per_seed.items()}
        result[f"{metric}_std"] = {n: float(np.std([s[metric] for s in v])) for n, v in per_seed.items()}
    ours = [n for n in per_seed if not n.startswith("baseline_")]
    if not ours:
        raise ConfigError(
            f"no predictor was scored: --predictors {args.predictors or 'all'} with --neural-seeds {neural_seeds} "
            "leaves only the baselines; give a predictor that runs on these seeds (or --neural-seeds >= 1)"
        )
    best_tau = max(ours, key=lambda n: result["kendall_tau"][n])
    best_mape = min(ours, key=lambda n: result["mape_pct"][n])
    result["best_predictor"] = {"by_kendall_tau": best_tau, "by_mape": best_mape}
    result["best_kendall_tau"] = result["kendall_tau"][best_tau]
    result["best_mape_pct"] = result["mape_pct"][best_mape]
    result["seeds_run"] = {n: len(v) for n, v in per_seed.items()}
    result["fit_s"] = {n: float(np.median(v)) for n, v in fit_s.items()}
    result["per_seed"] = {n: [s["kendall_tau"] for s in v] for n, v in per_seed.items()}
    result["per_seed_mape_pct"] = {n: [s["mape_pct"] for s in v] for n, v in per_seed.items()}
    if "neural" in fitted_seed0:  # what the neural figures were measured with (its options change with versions)
        result["neural_params"] = fitted_seed0["neural"].get_params()

    # throughput on `throughput_archs` architectures of seed 0's test set (repeated if the test set is smaller)
    n_tp = args.throughput_archs
    tp_archs = (test_archs_seed0 * (n_tp // max(len(test_archs_seed0), 1) + 1))[:n_tp]
    cold, warm = {}, {}
    for name, model in fitted_seed0.items():

        def from_scratch(m: Any = model) -> None:  # every repeat computes the features again
            _clear_caches(m)
            m.predict(tp_archs)

        cold[name] = _median_rate(from_scratch, n_tp, 3)  # clearing caches costs ~nothing beside the features
        warm[name] = _median_rate(lambda m=model: m.predict(tp_archs), n_tp, 3)
    result["throughput_per_s"] = {"cold": cold, "warm": warm, "architectures": n_tp}
    return result


BENCHMARK = Benchmark("predictor", (__doc__ or "").strip().splitlines()[0], configure, run)

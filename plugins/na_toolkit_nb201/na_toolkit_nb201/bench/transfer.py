"""Transfer across datasets through dataset descriptors: ImageNet16-120 ranked from a few of its cells.

The ranking comes from a few of the target's cells plus other datasets' columns.

Per seed, `--target-cells` cells are drawn at random with their ImageNet16-120 validation accuracy (what a
search on that dataset would have evaluated); the rest of the table (or `--test` of it) is the test set,
scored on ImageNet16-120 test accuracy by Kendall τ (`--target-dataset c10|c100`: another dataset is the
target; the sources are the other datasets whose columns the table has). Three fits of the same predictor, side by side:
- `alone`: the target cells only (the predictor conditioned on ImageNet16-120, as a search conditions it);
- `transfer`: the target cells plus `--source-cells` random cells of each source column (CIFAR-10 and
  CIFAR-100 validation accuracy), every row with its dataset's descriptor (`descriptors.py`, written from the
  datasets' published statistics), predicting with the ImageNet16-120 descriptor;
- `pooled`: the same rows without descriptors, targets as they are;
- `pooled_standardised`: the same rows without descriptor features, each dataset's targets standardised on
  their own (what `transfer` does to them, `Predictor.fit`): what the descriptor features add beyond that.
`tau_gain` = τ(transfer) − τ(alone), mean over seeds (± std).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from na_toolkit.bench.base import Benchmark
from na_toolkit.errors import ConfigError
from na_toolkit.predictors import DEFAULT_PREDICTOR, make_predictor

from ..descriptors import DESCRIPTORS
from ..space import DATASETS, nb201_architecture
from ..table import finite_rows, load_table
from ..table_models import ACCURACY_COLUMNS
from .predictor import scores

if TYPE_CHECKING:
    from na_toolkit.ir.architecture import Architecture
    from na_toolkit.toolkit import Toolkit

TARGET_DATASET = "in16"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target-dataset",
        default=TARGET_DATASET,
        choices=tuple(DATASETS),
        help="the dataset ranked from a few of its cells; the table's other datasets are the sources (default in16)",
    )
    parser.add_argument("--target-cells", type=int, default=20, help="cells of the target dataset the predictor sees")
    parser.add_argument(
        "--source-cells", type=int, default=1000, help="random cells of each source dataset's validation column"
    )
    parser.add_argument("--test", type=int, default=0, help="test cells (0: every cell not drawn as a target cell)")
    parser.add_argument(
        "--seeds", type=int, default=5, help="random draws of the target cells, seeds 0..N-1 (default 5)"
    )
    parser.add_argument("--epochs", type=int, default=200, choices=(200, 12), help="which NB201 columns")
    parser.add_argument("--predictor", default=DEFAULT_PREDICTOR, help="registered predictor name")
    parser.add_argument("--n-estimators", type=int, default=None, help="trees of the predictor (default: its own)")
    parser.add_argument("--table", default=None, help="an NB201 table CSV (default: the plugin's)")


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    table = load_table(args.table)
    target_dataset = getattr(args, "target_dataset", TARGET_DATASET)
    valid_col, test_col = ACCURACY_COLUMNS[(target_dataset, args.epochs)]
    table.require(valid_col, test_col)
    # the sources: every other dataset whose validation column the table has
    others = {d: ACCURACY_COLUMNS[(d, args.epochs)][0] for d in DATASETS if d != target_dataset}
    sources = {d: col for d, col in others.items() if table.has(col)}
    if not sources:
        raise ConfigError(
            f"--target-dataset {target_dataset}: table {table.path} has no other dataset's validation column "
            f"({', '.join(others.values())}) to transfer from"
        )
    # the cells with values (a blank field: unknown, never drawn): the target's and each source's own
    known = finite_rows(table, valid_col, test_col)
    known_src = {d: finite_rows(table, col) for d, col in sources.items()}
    n = len(known)
    if args.target_cells < 3 or args.source_cells < 1 or args.seeds < 1 or args.test < 0:
        raise ConfigError("need --target-cells >= 3, --source-cells >= 1, --seeds >= 1 and --test >= 0")
    if args.target_cells + max(args.test, 2) > n or any(args.source_cells > len(k) for k in known_src.values()):
        raise ConfigError(f"--target-cells + --test and --source-cells must fit in the table's {n} cells")
    params: dict[str, Any] = {}
    if args.n_estimators is not None:
        params["n_estimators"] = args.n_estimators
    make_predictor(args.predictor, params, toolkit)  # an unknown name or bad option fails before any work

    built: dict[int, Architecture] = {}

    def archs(rows: np.ndarray) -> list[Architecture]:
        for i in rows:
            if int(i) not in built:
                built[int(i)] = nb201_architecture(table.arch_strs[int(i)], layer_types=toolkit.layer_types)
        return [built[int(i)] for i in rows]

    def fresh(seed: int):
        extra = (
            {"random_state": seed}
            if "random_state" in toolkit.predictors.get(args.predictor)._get_param_names()
            else {}
        )
        return make_predictor(args.predictor, {**params, **extra}, toolkit)

    target = DESCRIPTORS[target_dataset]
    y_valid, y_test = table.column(valid_col), table.column(test_col)
    taus: dict[str, list[float]] = {"alone": [], "transfer": [], "pooled": [], "pooled_standardised": []}
    fit_s: dict[str, list[float]] = {k: [] for k in taus}
    descriptor_features: list[str] = []
    warnings_unseen: list[str] = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        order = known[rng.permutation(n)]
        tr, rest = order[: args.target_cells], order[args.target_cells :]
        te = rest if args.test == 0 else rest[: args.test]
        src = {d: known_src[d][rng.choice(len(known_src[d]), args.source_cells, replace=False)] for d in sources}
        test_archs, truth = archs(te), y_test[te]
        rows = [tr, *src.values()]
        all_archs = [a for r in rows for a in archs(r)]
        parts = [y_valid[tr], *(table.column(sources[d])[src[d]] for d in sources)]
        all_y = np.concatenate(parts)
        standardised_y = np.concatenate([(p - p.mean()) / (p.std() or 1.0) for p in parts])
        per_row = [target] * len(tr) + [DESCRIPTORS[d] for d in sources for _ in src[d]]
        fits = {
            "alone": (archs(tr), y_valid[tr], None),
            "transfer": (all_archs, all_y, per_row),
            "pooled": (all_archs, all_y, None),
            "pooled_standardised": (all_archs, standardised_y, None),
        }
        for name, (fit_archs, fit_y, fit_datasets) in fits.items():
            model = fresh(seed).condition_on(target if name == "alone" else None)
            t = time.perf_counter()
            model.fit(fit_archs, fit_y, datasets=fit_datasets)
            fit_s[name].append(time.perf_counter() - t)
            pred = model.predict(test_archs, datasets=target if name == "transfer" else None)
            taus[name].append(scores(pred, truth)["kendall_tau"])
            if name == "transfer" and seed == 0:
                vector_names = target.vector_names()
                descriptor_features = [vector_names[c] for c in model.features_.used_dataset_columns]
        print(f"seed {seed}: tau " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in taus.items()), file=sys.stderr)
        if seed == 0:
            # a predictor that never saw the target dataset says so when asked about it
            sources_only = fresh(seed).fit(all_archs[len(tr) :], all_y[len(tr) :], datasets=per_row[len(tr) :])
            warnings_unseen = sources_only.domain_warnings(test_archs[:1], datasets=target)[0]

    gains = np.asarray(taus["transfer"]) - np.asarray(taus["alone"])
    return {
        "tau_gain": float(gains.mean()),
        "tau_gain_std": float(gains.std()),
        "tau_gain_per_seed": [float(g) for g in gains],
        "target_tau_gain": 0.10,
        "kendall_tau": {k: float(np.mean(v)) for k, v in taus.items()},
        "kendall_tau_std": {k: float(np.std(v)) for k, v in taus.items()},
        "kendall_tau_per_seed": {k: [float(x) for x in v] for k, v in taus.items()},
        "fit_s": {k: float(np.median(v)) for k, v in fit_s.items()},
        "predictor": args.predictor,
        "target": {"dataset": target.name, "train_column": valid_col, "test_column": test_col},
        "sources": {DESCRIPTORS[d].name: col for d, col in sources.items()},
        "test_cells": int(len(te)),
        "descriptor_features": descriptor_features,
        "unseen_dataset_warning": warnings_unseen,
        # unknown statistics (NaN) as null: the output is strict JSON
        "descriptors": {d.name: _strict(d.to_json()) for d in DESCRIPTORS.values()},
    }


def _strict(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return None if isinstance(value, float) and value != value else value


BENCHMARK = Benchmark("transfer", (__doc__ or "").strip().splitlines()[0], configure, run)

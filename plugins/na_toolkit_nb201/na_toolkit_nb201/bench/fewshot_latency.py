"""Few-shot latency on NAS-Bench-201 devices: Spearman ρ and share within ±10% on the rest of the table.

For each target device (`--device lat_<name>`, a comma-separated list, or `all` = HELP's six test devices),
the prior is built from every *other* latency column of the table (plus any `--exclude` devices removed),
then for each seed `--samples` cells are drawn, their target latency given to the few-shot predictor, and it
is scored on every other cell of the table. A ridge on one-hot cell operations, fit on the same samples, is
the baseline measured side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from na_toolkit.bench.base import Benchmark
from na_toolkit.errors import ConfigError

from ..space import nb201_architecture
from ..table import finite_rows, latency_column, load_table
from .predictor import onehot_ops

if TYPE_CHECKING:
    from na_toolkit.toolkit import Toolkit

#: the test devices of HELP's NAS-Bench-201 experiments (Lee et al., NeurIPS 2021, Table 2)
HELP_DEVICES = ("lat_titan_rtx_256", "lat_gold_6226", "lat_pixel2", "lat_raspi4", "lat_eyeriss", "lat_fpga")
BASELINE = "baseline_onehot_ridge"
NO_PRIOR = "no_prior"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="all", help="lat_<name>, a comma-separated list, or 'all' (HELP's six)")
    parser.add_argument("--samples", type=int, default=20, help="measurements on the target device")
    parser.add_argument(
        "--seeds", type=int, default=10, help="random draws of the N measured cells, seeds 0..N-1 (default 10)"
    )
    parser.add_argument("--table", default=None, help="an NB201 table CSV (default: the plugin's)")
    parser.add_argument("--exclude", default="", help="devices also held out of the prior (comma-separated)")
    parser.add_argument(
        "--cells", type=int, default=None, help="use a random subset of this many cells (default: the whole table)"
    )


def _devices(arg: str, table, option: str = "--device") -> list[str]:
    """The latency columns `arg` names (`all`: HELP's six test devices). ConfigError naming the table's
    devices for one it lacks (a held-out table names its own: give them)."""
    names = list(HELP_DEVICES) if arg == "all" and option == "--device" else [d.strip() for d in arg.split(",")]
    columns = [latency_column(d) for d in names if d]
    missing = [c for c in columns if not table.has(c)]
    if missing:
        what = f"{option} all means HELP's six test devices, and " if arg == "all" and option == "--device" else ""
        raise ConfigError(
            f"{option}: {what}table {table.path} has no latency column {', '.join(missing)}; "
            f"name devices it has: {', '.join(table.devices) or '(none)'}"
        )
    return columns


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge

    from na_toolkit.predictors.features import kernel_features
    from na_toolkit.predictors.fewshot import FewShotLatencyPredictor, LatencyPrior

    table = load_table(args.table)
    targets = _devices(args.device, table)
    exclude = set(_devices(args.exclude, table, "--exclude")) if args.exclude.strip() else set()
    if args.samples < 3 or args.seeds < 1:
        raise ConfigError("need --samples >= 3 and --seeds >= 1")
    for target in targets:
        if not [d for d in table.devices if d != target and d not in exclude]:
            raise ConfigError(
                f"--device {target}: table {table.path} has no other latency column to build the prior from "
                f"(devices: {', '.join(table.devices)}; --exclude: {', '.join(sorted(exclude)) or 'none'})"
            )
    rows = np.arange(len(table))
    if args.cells is not None:
        rows = np.sort(np.random.default_rng(12345).permutation(len(table))[: args.cells])
    if args.samples >= len(rows) - 1:
        raise ConfigError(f"--samples {args.samples} leaves nothing to score among {len(rows)} cells")

    t0 = time.perf_counter()
    cells = [table.arch_strs[i] for i in rows]
    archs = [nb201_architecture(c, layer_types=toolkit.layer_types) for c in cells]
    for a in archs:
        kernel_features(a)
    onehot = onehot_ops(cells)
    print(f"built {len(archs)} networks and their kernels in {time.perf_counter() - t0:.0f}s", file=sys.stderr)

    spearman: dict[str, float] = {}
    within: dict[str, float] = {}
    mape: dict[str, float] = {}
    base_spearman: dict[str, float] = {}
    base_within: dict[str, float] = {}
    alone_spearman: dict[str, float] = {}
    alone_within: dict[str, float] = {}
    chosen: dict[str, Any] = {}
    per_seed: dict[str, list[float]] = {}
    scored: list[int] = []
    for target in targets:
        # cells without a target latency (blank fields) are neither drawn nor scored; a prior device with a
        # blank among the rest stays out of the prior
        have = np.isin(rows, finite_rows(table, target))
        archs_t = [a for a, ok in zip(archs, have) if ok]
        rows_t = rows[have]
        if args.samples >= len(rows_t) - 1:
            raise ConfigError(f"--samples {args.samples} leaves nothing to score among {len(rows_t)} cells of {target}")
        prior_devices = [
            d for d in table.devices if d != target and d not in exclude and np.isfinite(table.column(d)[rows_t]).all()
        ]
        if not prior_devices:
            raise ConfigError(f"--device {target}: no other latency column has a value for every cell it has")
        scored.append(int(len(rows_t) - args.samples))
        t = time.perf_counter()
        prior = LatencyPrior.fit(archs_t, {d: table.column(d)[rows_t] for d in prior_devices}, shots=args.samples)
        y = table.column(target)[rows_t]
        rho, w10, err, b_rho, b_w10, a_rho, a_w10 = [], [], [], [], [], [], []
        for seed in range(args.seeds):
            perm = np.random.default_rng(seed).permutation(len(rows_t))
            tr, te = perm[: args.samples], perm[args.samples :]
            model = FewShotLatencyPredictor(prior).fit([archs_t[i] for i in tr], y[tr])
            pred = model.predict([archs_t[i] for i in te])
            rho.append(float(spearmanr(pred, y[te])[0]))
            w10.append(float(np.mean(np.abs(pred / y[te] - 1) <= 0.10)))
            err.append(float(np.mean(np.abs(pred / y[te] - 1)) * 100))
            alone = FewShotLatencyPredictor().fit([archs_t[i] for i in tr], y[tr]).predict([archs_t[i] for i in te])
            a_rho.append(float(spearmanr(alone, y[te])[0]))
            a_w10.append(float(np.mean(np.abs(alone / y[te] - 1) <= 0.10)))
            base = Ridge(alpha=1.0).fit(onehot[have][tr], y[tr]).predict(onehot[have][te])
            b_rho.append(float(spearmanr(base, y[te])[0]))
            b_w10.append(float(np.mean(np.abs(base / y[te] - 1) <= 0.10)))
        spearman[target], within[target], mape[target] = float(np.mean(rho)), float(np.mean(w10)), float(np.mean(err))
        base_spearman[target], base_within[target] = float(np.mean(b_rho)), float(np.mean(b_w10))
        alone_spearman[target], alone_within[target] = float(np.mean(a_rho)), float(np.mean(a_w10))
        per_seed[target] = rho
        chosen[target] = {"prior_devices": prior_devices, "meta_alpha": prior.alpha, "meta_weight": prior.weight}
        print(
            f"{target}: spearman {spearman[target]:.3f} within10 {within[target]:.3f} "
            f"(no prior {alone_spearman[target]:.3f}, baseline {base_spearman[target]:.3f}) "
            f"{time.perf_counter() - t:.0f}s",
            file=sys.stderr,
        )
    return {
        "mean_spearman": float(np.mean(list(spearman.values()))),
        "mean_within_10pct": float(np.mean(list(within.values()))),
        "spearman": spearman,
        "within_10pct": within,
        "mape_pct": mape,
        BASELINE: {
            "mean_spearman": float(np.mean(list(base_spearman.values()))),
            "mean_within_10pct": float(np.mean(list(base_within.values()))),
            "spearman": base_spearman,
            "within_10pct": base_within,
        },
        NO_PRIOR: {
            "mean_spearman": float(np.mean(list(alone_spearman.values()))),
            "mean_within_10pct": float(np.mean(list(alone_within.values()))),
            "spearman": alone_spearman,
            "within_10pct": alone_within,
        },
        "per_seed_spearman": per_seed,
        "prior": chosen,
        # the fewest of any target (a target with blank fields scores fewer; the same for a complete table)
        "cells_scored": min(scored),
    }


BENCHMARK = Benchmark("fewshot-latency", (__doc__ or "").strip().splitlines()[0], configure, run)

"""What-if hardware on NAS-Bench-201: how the best feasible network changes across a hardware sweep.

The search of `bench nb201-search` (the `nb201` seed, the `set_edge_op` move, the table's accuracies of
`--dataset`, default c10: `c10_valid_acc_200ep` is what the search sees, `c10_test_acc_200ep` is reported) runs with one
device scored by the roofline on `--device` (a hardware model, default `jetson-orin-nano`) under a hard
latency budget, once per hardware variant of `--vary` (default `memory_bandwidth=0.5x,1x,2x`, a 4x sweep)
through `na_toolkit.search.whatif.run_whatif`: per seed, every variant runs the same seed and budgets.

The budget is `--budget-quantile` of the 1x roofline latency over the table's cells, the same number of
milliseconds for every variant. Beside the searches, the table itself answers the question exactly: per
variant, the best feasible cell by valid accuracy over every cell (`table_optimum`), its latency and what
bounds it, and how many cells the budget admits.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from na_toolkit.bench.base import Benchmark, at_least
from na_toolkit.errors import ConfigError

from ..space import nb201_architecture
from ..table import load_table, require_whole_space
from .nb201_search import _config, accuracy_columns, add_dataset_option

if TYPE_CHECKING:
    from na_toolkit.search.whatif import WhatIfResult
    from na_toolkit.toolkit import Toolkit


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="jetson-orin-nano", help="hardware model (default jetson-orin-nano)")
    parser.add_argument(
        "--vary",
        action="append",
        default=None,
        metavar="FIELD=V1,V2,...",
        help="as `na-toolkit whatif --vary` (default: memory_bandwidth=0.5x,1x,2x)",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="inference batch size (default 1)")
    parser.add_argument("--dtype", default="fp32", help="compute dtype of the roofline (default fp32)")
    parser.add_argument(
        "--budget-quantile",
        type=float,
        default=0.25,
        help="latency budget = this quantile of the 1x roofline latency over the table's cells (default 0.25)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="search seeds; each runs every variant (default 3)")
    parser.add_argument("--evaluations", type=int, default=100, help="evaluations per search (default 100)")
    parser.add_argument("--per-round", type=int, default=10, help="evaluations per round (default 10)")
    parser.add_argument("--strategy", default="evolution", help="search strategy (default evolution)")
    parser.add_argument("--cells", type=at_least(0), default=0, help="table cells for the budget and optimum (0: all)")
    parser.add_argument("--table", default=None, help="NB201 CSV (default: the plugin's shipped table)")
    add_dataset_option(parser)
    parser.add_argument("--plot", default=None, help="also write the first seed's what-if plot (PNG) here")


def _roofline_latencies(
    archs: list[Any], models: list[Any], batch_size: int, dtype: str
) -> tuple[np.ndarray, list[list[dict[str, Any]]], list[int]]:
    """Latency (ms) of every cell on every variant's hardware model, where its time goes, and how many
    kernels each cell launches (the same on every variant)."""
    from na_toolkit.timemodels.roofline import RooflineTimeModel, latency_by_bound

    rooflines = [RooflineTimeModel(m, dtype=dtype) for m in models]
    latency = np.zeros((len(archs), len(models)))
    bounds: list[list[dict[str, Any]]] = [[] for _ in models]
    counts: list[int] = []
    for i, arch in enumerate(archs):
        for j, tm in enumerate(rooflines):
            kernels = tm.forward_kernels(arch, batch_size)
            split = latency_by_bound(kernels)
            latency[i, j] = 1000.0 * sum(k.time_s for k in kernels)
            bounds[j].append(split)
        counts.append(len(kernels))
    return latency, bounds, counts


def _shares(split: dict[str, Any]) -> dict[str, Any]:
    total = sum(split[f"{b}_bound_s"] for b in ("compute", "memory", "launch")) or 1.0
    return {
        **{f"{b}_share": round(split[f"{b}_bound_s"] / total, 4) for b in ("compute", "memory", "launch")},
        "bound": split["bound"],
    }


def _median(values: list[float]) -> float | None:
    return round(float(np.median(values)), 4) if values else None


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    from na_toolkit.search.whatif import run_whatif
    from na_toolkit.search.whatif_report import plot_whatif
    from na_toolkit.timemodels.hwmodel import load_hardware_model

    if args.seeds < 1 or args.evaluations < 1 or args.per_round < 1 or args.batch_size < 1:
        raise ConfigError("--seeds, --evaluations, --per-round and --batch-size must be >= 1")
    if not 0 < args.budget_quantile <= 1:
        raise ConfigError(f"--budget-quantile must be in (0, 1], got {args.budget_quantile}")
    varies = args.vary or ["memory_bandwidth=0.5x,1x,2x"]
    wall_start, load_start = time.perf_counter(), os.getloadavg()[0]
    table = load_table(args.table)
    require_whole_space(table, "bench whatif")
    valid_column, test_column = accuracy_columns(args, table)
    valid, test = table.column(valid_column), table.column(test_column)
    rows = np.arange(len(table))
    if args.cells:
        rows = np.sort(np.random.default_rng(0).choice(len(table), min(args.cells, len(table)), replace=False))

    # the variants, as the what-if makes them (a dry parse: the models, no search)
    from na_toolkit.search.whatif_vary import parse_varies, variants

    base = load_hardware_model(args.device, toolkit.hardware)
    points = variants(base, parse_varies(varies, base))
    baseline = next((i for i, p in enumerate(points) if p.is_baseline), None)
    if baseline is None:
        raise ConfigError("--vary: the sweep needs the 1x point (every field at 1x) to set the budget from")
    print(f"[whatif] roofline of {len(rows)} cells on {len(points)} variants", file=sys.stderr, flush=True)
    archs = [nb201_architecture(table.arch_strs[r], layer_types=toolkit.layer_types) for r in rows]
    latency, bounds, kernel_counts = _roofline_latencies(archs, [p.model for p in points], args.batch_size, args.dtype)
    budget_ms = float(np.quantile(latency[:, baseline], args.budget_quantile))

    variants_out: list[dict[str, Any]] = []
    for j, p in enumerate(points):
        feasible = latency[:, j] <= budget_ms
        feasible &= np.isfinite(valid[rows]) & np.isfinite(test[rows])  # a blank accuracy: not a candidate
        k = int(np.argmax(np.where(feasible, valid[rows], -np.inf)))
        variants_out.append(
            {
                "variant": p.label,
                "settings": {s: v.text for s, v in p.settings},
                "bytes_per_s": p.model.bandwidth_bytes_per_s(),
                "feasible_cells": int(feasible.sum()),
                "table_optimum": {
                    "cell": table.arch_strs[rows[k]],
                    "valid_accuracy": round(float(valid[rows[k]]), 4),
                    "test_accuracy": round(float(test[rows[k]]), 4),
                    "latency_ms": round(float(latency[k, j]), 6),
                    **_shares(bounds[j][k]),
                }
                if feasible.any()
                else None,
                "search": [],
            }
        )

    results: list[WhatIfResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-whatif-") as tmp:
        for seed in range(args.seeds):
            doc = _config(args, args.strategy, seed, Path(tmp), None, None)
            doc["name"] = f"whatif-{base.name}"
            tm_options = {"device": args.device, "dtype": args.dtype}
            doc["devices"] = {
                base.name: {
                    "time_model": {"name": "roofline", "options": tm_options},
                    "batch_size": args.batch_size,
                    "budgets": {"latency_ms": {"limit": budget_ms, "hard": True}},
                }
            }
            result = run_whatif(
                doc, base.name, varies, toolkit=toolkit, log=lambda line: print(line, file=sys.stderr, flush=True)
            )
            results.append(result)
            for out, o in zip(variants_out, result.outcomes):
                out["search"].append(
                    {
                        "seed": seed,
                        "cell": o.best_name.partition(":")[2] if o.best_name else None,
                        "valid_accuracy": None if o.accuracy is None else round(100 * o.accuracy, 4),
                        "test_accuracy": None if o.test_accuracy is None else round(100 * o.test_accuracy, 4),
                        "latency_ms": None if o.latency_ms is None else round(o.latency_ms, 6),
                        "bounds": None if o.bounds is None else asdict(o.bounds),
                        "evaluations": o.evaluations,
                        "feasible_evaluations": o.feasible_evaluations,
                        # why a search that used fewer than --evaluations stopped short
                        "stop_reason": o.stop_reason,
                    }
                )
    if args.plot:
        plot_whatif(results[0].to_json(), Path(args.plot))
    optima = [v["table_optimum"]["cell"] if v["table_optimum"] else None for v in variants_out]
    per_seed_cells = [[v["search"][s]["cell"] for v in variants_out] for s in range(args.seeds)]
    return {
        "best_feasible": {
            v["variant"]: {
                "table_optimum_test_accuracy": v["table_optimum"]["test_accuracy"] if v["table_optimum"] else None,
                "search_test_accuracy_median": _median(
                    [s["test_accuracy"] for s in v["search"] if s["test_accuracy"] is not None]
                ),
                "table_optimum_bound": v["table_optimum"]["bound"] if v["table_optimum"] else None,
            }
            for v in variants_out
        },
        "distinct_best_networks": {
            "table_optimum": len({c for c in optima if c is not None}),
            "search_per_seed": [len({c for c in cells if c is not None}) for cells in per_seed_cells],
        },
        "budget_ms": round(budget_ms, 6),
        "variants": variants_out,
        # the first seed's what-if as `na-toolkit whatif --json` gives it (what --plot draws)
        "first_seed": results[0].to_json(),
        "setting": {
            "hardware_model": args.device,
            "dtype": args.dtype,
            "batch_size": args.batch_size,
            "cells": len(rows),
            # what a launch-bound cell pays: kernels per cell (over the table's cells) times the launch cost
            "kernels_per_cell": {
                "min": min(kernel_counts),
                "median": _median(kernel_counts),
                "max": max(kernel_counts),
            },
            "launch_overhead_s": base.launch_overhead_s,
            "search": "na_toolkit.search.whatif.run_whatif per seed; each variant the same seed and budget",
            "reports": f"{test_column} (percent) of the best feasible cell by {valid_column}",
        },
        "run": {
            "wall_s": round(time.perf_counter() - wall_start, 1),
            "load_average_1m": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
            "cores": os.cpu_count(),
        },
    }


BENCHMARK = Benchmark("whatif", (__doc__ or "").strip().splitlines()[0], configure, run)

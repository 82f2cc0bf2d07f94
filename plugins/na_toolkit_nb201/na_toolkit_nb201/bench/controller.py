"""Does the controller's learning matter? neural-architect's ablations side by side on NAS-Bench-201.

Every (setting, scoring budget, variant, seed) is one `run_search` built as `bench nb201-search` builds
neural-architect's (same seed network, move, table evaluator, GP predictor, hard latency budget at the
0.25 quantile of the device's column), with the strategy options of the variant:

    trained      the policy as shipped (learning)
    frozen       the same policy, never updated (`policy = "frozen"`)
    walks-only   no policy proposals: the uniformly random walks alone (`policy = "none"`)
    policy-only  the policy without the walks (`explore_episodes = 0`)
    random       uniformly random moves in the policy's place, through the same ranking (`policy = "random"`)
    mean-seeking the earlier default, on request only: no risk-seeking, no real-results update

and `scoring_budget` (networks the strategy may score per evaluation; "none": unlimited). Seeds are the
same for every variant, so each variant is compared with the trained policy pair by pair (Wilcoxon
signed-rank test on the per-seed test accuracies). What each variant did (controller updates, networks
scored per evaluation, policy and walk proposals) comes from the strategy's report in its checkpoint.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from na_toolkit.bench.base import Benchmark
from na_toolkit.errors import ConfigError

from ..table import latency_column, load_table, require_whole_space
from . import nb201_search

if TYPE_CHECKING:
    from na_toolkit.toolkit import Toolkit

#: variant -> strategy options on top of nb201-search's neural-architect options
VARIANTS: dict[str, dict[str, Any]] = {
    "trained": {},
    "frozen": {"policy": "frozen"},
    "walks-only": {"policy": "none"},
    "policy-only": {"explore_episodes": 0},
    "random": {"policy": "random"},
    # not in the default list: the default before stop 23 (mean-seeking actor-critic, predicted rewards only)
    "mean-seeking": {"risk_seeking": 0, "learn_from_evaluations": False},
}
#: the variants run when --variants is not given (the issue's five)
DEFAULT_VARIANTS = ("trained", "frozen", "walks-only", "policy-only", "random")
#: the default settings (`--settings` takes any latency column of the table too, e.g. lat_raspi4 or raspi4)
SETTINGS = {"unconstrained": None, "lat_pixel3": "lat_pixel3", "lat_titan_rtx_1": "lat_titan_rtx_1"}
#: a win: trained beats the variant's mean test accuracy by at least this many points, with p below P_WIN
MIN_GAIN_POINTS = 0.2
P_WIN = 0.05
#: the variants a win at budget 10 must beat
BEATEN = ("frozen", "walks-only")
UPDATE_NODES = 500

# the toolkit the worker processes use (inherited through fork: a toolkit does not pickle)
_TOOLKIT: Toolkit | None = None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=20, help="search seeds per variant (default 20)")
    parser.add_argument("--evaluations", type=int, default=100, help="evaluations per search (default 100)")
    parser.add_argument("--per-round", type=int, default=10, help="evaluations per round (default 10)")
    parser.add_argument(
        "--budgets",
        default="10,50,none",
        help="scoring budgets per evaluation, comma-separated ('none': unlimited; default 10,50,none)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated of {', '.join(VARIANTS)} (default {','.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument(
        "--settings",
        default=",".join(SETTINGS),
        help="comma-separated of 'unconstrained' and latency columns of the table "
        f"(lat_<device> or <device>; default {','.join(SETTINGS)})",
    )
    parser.add_argument("--budget-quantile", type=float, default=0.25, help="latency budget quantile (default 0.25)")
    parser.add_argument("--jobs", type=int, default=1, help="searches run at once in worker processes (default 1)")
    parser.add_argument("--table", default=None, help="NB201 CSV (default: the plugin's shipped table)")
    nb201_search.add_dataset_option(parser)
    parser.add_argument(
        "--update-repeats", type=int, default=3, help="repeats of the controller-update timing (0: skip it)"
    )


def _list(text: str, allowed: dict[str, Any] | None, what: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise ConfigError(f"--{what} is empty; give a comma-separated list")
    if allowed is not None:
        bad = [s for s in items if s not in allowed]
        if bad:
            raise ConfigError(f"unknown {what} {', '.join(bad)}; choose from {', '.join(allowed)}")
    return items


def _settings(names: list[str], table: Any) -> dict[str, str | None]:
    """Setting name -> the table's latency column (None: unconstrained). A device may be named with or
    without its `lat_` prefix; ConfigError naming the table's columns for one it does not have."""
    out: dict[str, str | None] = {}
    for name in names:
        if name == "unconstrained":
            out[name] = None
            continue
        column = latency_column(name)
        if not table.has(column):
            raise ConfigError(
                f"--settings: the table has no latency column {column!r}; "
                f"choose 'unconstrained' or one of {', '.join(table.devices)}"
            )
        out[column] = column
    return out


def _budget(text: str) -> int | None:
    if text.lower() in ("none", "null", "unlimited"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--budgets: {text!r} is not a positive integer or 'none'") from None
    if value < 1:
        raise ConfigError(f"--budgets: {value} must be >= 1 (or 'none')")
    return value


def _key(budget: int | None) -> str:
    return "none" if budget is None else str(budget)


def _one(job: tuple[Any, ...]) -> dict[str, Any]:
    """One search: (args, setting, device, budget_ms, scoring budget, variant, seed) -> its figures."""
    from na_toolkit.search.loop import run_search
    from na_toolkit.store.memory import MemoryRunStore

    args, setting, device, budget_ms, scoring, variant, seed = job
    assert _TOOLKIT is not None
    doc = nb201_search._config(args, "neural-architect", seed, Path("controller-bench"), device, budget_ms)
    doc["strategy"]["options"].update(VARIANTS[variant], scoring_budget=scoring)
    store = MemoryRunStore(f"{variant}-{seed}", doc)
    c0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's GP convergence notes, once per refit
        result = run_search(doc, toolkit=_TOOLKIT, progress=False, outputs=False, store=store)
    cpu_s = time.process_time() - c0
    best = nb201_search._best_feasible(result, device)
    checkpoint = store.load_checkpoint("strategy")
    report = (checkpoint[1] if checkpoint else {}).get("report", {})
    totals = report.get("totals", {})
    out = {
        "setting": setting,
        "budget": _key(scoring),
        "variant": variant,
        "seed": seed,
        "test": float("nan") if best is None else 100.0 * best.score.metrics["test_accuracy"],
        "valid": float("nan") if best is None else 100.0 * best.score.metrics["accuracy"],
        "cpu_s": cpu_s,
        "updates": int(report.get("updates", 0)),
        "scored": int(totals.get("scored", 0)),
        "max_scored_per_n": float(totals.get("max_scored_per_n", 0.0)),
        "policy_proposals": int(totals.get("policy_proposals", 0)),
        "walk_proposals": int(totals.get("walk_proposals", 0)),
        "fill_proposals": int(totals.get("fill_proposals", 0)),
        "evaluations": result.counters.evaluations,
    }
    print(
        f"[controller] {setting} budget {out['budget']} {variant} seed {seed}: test {out['test']:.2f} "
        f"({out['updates']} updates, {out['scored']} scored, {cpu_s:.1f} CPU-s)",
        file=sys.stderr,
        flush=True,
    )
    return out


def _wilcoxon(a: list[float], b: list[float]) -> float | None:
    """Two-sided paired Wilcoxon signed-rank p-value; 1.0 when every pair is equal, None below 2 pairs."""
    from scipy.stats import wilcoxon

    pairs = [(x, y) for x, y in zip(a, b) if not (math.isnan(x) or math.isnan(y))]
    if len(pairs) < 2:
        return None
    d = np.array([x - y for x, y in pairs])
    if not np.any(np.abs(d) > 1e-9):
        return 1.0
    return float(wilcoxon([x for x, _ in pairs], [y for _, y in pairs], zero_method="wilcox").pvalue)


def _stats(values: list[float]) -> dict[str, Any]:
    a = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if a.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": round(float(a.mean()), 4), "std": round(float(a.std()), 4), "n": int(a.size)}


def _variant_figures(rows: list[dict[str, Any]], trained: list[dict[str, Any]] | None) -> dict[str, Any]:
    rows = sorted(rows, key=lambda r: r["seed"])
    tests = [r["test"] for r in rows]
    out: dict[str, Any] = {
        "test_accuracy": _stats(tests),
        "valid_accuracy": _stats([r["valid"] for r in rows]),
        "cpu_s_per_search": {
            **_stats([r["cpu_s"] for r in rows]),
            "median": round(float(np.median([r["cpu_s"] for r in rows])), 2),
        },
        "test_accuracy_per_seed": [None if math.isnan(t) else round(t, 4) for t in tests],
        "runs_without_feasible": sum(math.isnan(t) for t in tests),
        "controller_updates_mean": float(np.mean([r["updates"] for r in rows])),
        "scored_per_search_mean": float(np.mean([r["scored"] for r in rows])),
        "max_scored_per_evaluation": max(r["max_scored_per_n"] for r in rows),
        "policy_proposals_mean": float(np.mean([r["policy_proposals"] for r in rows])),
        "walk_proposals_mean": float(np.mean([r["walk_proposals"] for r in rows])),
        # random walks that filled an ask up to n: not the variant's own proposals (policy-only is not pure
        # policy where this is above 0)
        "fill_proposals_mean": float(np.mean([r["fill_proposals"] for r in rows])),
    }
    out["valid_accuracy_per_seed"] = [None if math.isnan(r["valid"]) else round(r["valid"], 4) for r in rows]
    if trained is not None:
        out.update(_paired(rows, trained, "test"))
        # what the search itself maximises (the evaluator's validation accuracy), beside the test figure
        out["by_valid_accuracy"] = _paired(rows, trained, "valid")
    return out


def _paired(rows: list[dict[str, Any]], trained: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The trained policy minus this variant on `key` ("test" or "valid"), paired by seed, and the p-value."""
    by_seed = {r["seed"]: r[key] for r in trained}
    paired = [(by_seed[r["seed"]], r[key]) for r in rows if r["seed"] in by_seed]
    t_mean, v_mean = _stats([p[0] for p in paired])["mean"], _stats([p[1] for p in paired])["mean"]
    return {
        "trained_minus_variant": None if None in (t_mean, v_mean) else round(t_mean - v_mean, 4),
        "wilcoxon_p_vs_trained": _wilcoxon([p[0] for p in paired], [p[1] for p in paired]),
    }


def pooled(figures: dict[str, Any], per_seed: str = "test_accuracy_per_seed") -> dict[str, Any]:
    """Per scoring budget and variant: the trained policy against it over every (setting, seed) pair of the
    run at once (mean difference in points, paired Wilcoxon p, pairs won and lost). A per-setting test of
    20 seeds misses an effect of 0.2 points that the pooled pairs show (and the reverse: a single setting's
    win is no general claim). Reads only the per-seed accuracies `per_seed` of `figures` (`variants` of the
    JSON; "valid_accuracy_per_seed": the same on what the search maximises)."""
    out: dict[str, Any] = {}
    budgets = sorted({b for per_setting in figures.values() for b in per_setting})
    for budget in budgets:
        rows = [per_setting[budget] for per_setting in figures.values() if budget in per_setting]
        names = [v for v in (rows[0] if rows else {}) if v != "trained"]
        out[budget] = {}
        for name in names:
            pairs = [
                (t, o)
                for per in rows
                if "trained" in per and name in per and per_seed in per[name] and per_seed in per["trained"]
                for t, o in zip(per["trained"][per_seed], per[name][per_seed])
                if t is not None and o is not None
            ]
            diffs = [t - o for t, o in pairs]
            out[budget][name] = {
                "pairs": len(pairs),
                "trained_minus_variant": None if not diffs else round(float(np.mean(diffs)), 4),
                "wilcoxon_p_vs_trained": _wilcoxon([t for t, _ in pairs], [o for _, o in pairs]),
                "pairs_won": sum(d > 1e-9 for d in diffs),
                "pairs_lost": sum(d < -1e-9 for d in diffs),
            }
    return out


def _verdict(figures: dict[str, Any]) -> str | None:
    """ "won" (beats each of BEATEN by >= MIN_GAIN_POINTS with p < P_WIN), "lost" (a lower mean than one of
    them, with p < P_WIN), "neither"; None when a variant needed is missing."""
    if "trained" not in figures or any(v not in figures for v in BEATEN):
        return None
    gains = [(figures[v].get("trained_minus_variant"), figures[v].get("wilcoxon_p_vs_trained")) for v in BEATEN]
    if any(g is None or p is None for g, p in gains):
        return None
    if all(g >= MIN_GAIN_POINTS and p < P_WIN for g, p in gains):
        return "won"
    if any(g < 0 and p < P_WIN for g, p in gains):
        return "lost"
    return "neither"


def _table(variants: dict[str, Any]) -> str:
    lines = [
        f"{'setting':<16} {'budget':>6} {'variant':<12} {'test acc':>16} {'Δ trained':>9} {'p':>7} {'Δ valid':>8} "
        f"{'CPU-s':>7} {'updates':>7} {'scored/search':>13}"
    ]
    for setting, budgets in variants.items():
        for budget, per in budgets.items():
            for name, f in per.items():
                t = f["test_accuracy"]
                acc = "-" if t["mean"] is None else f"{t['mean']:.2f} ± {t['std']:.2f}"
                delta = f.get("trained_minus_variant")
                p = f.get("wilcoxon_p_vs_trained")
                dv = f.get("by_valid_accuracy", {}).get("trained_minus_variant")
                lines.append(
                    f"{setting:<16} {budget:>6} {name:<12} {acc:>16} "
                    f"{'' if delta is None else f'{delta:+.2f}':>9} {'' if p is None else f'{p:.3f}':>7} "
                    f"{'' if dv is None else f'{dv:+.2f}':>8} "
                    f"{f['cpu_s_per_search']['median']:>7.1f} {f['controller_updates_mean']:>7.0f} "
                    f"{f['scored_per_search_mean']:>13.0f}"
                )
    return "\n".join(lines)


def _ceiling(references: dict[str, dict[str, Any]], figures: dict[str, Any]) -> dict[str, Any]:
    """Per setting, what the table allows (`nb201_search.table_reference`) and how far each variant's mean
    lies below the feasible optimum (`room_below_optimum`, points): a win by MIN_GAIN_POINTS over a baseline
    needs at least that much room above it. `win_reachable` says, per scoring budget, whether every
    baseline of BEATEN leaves it; `perfect_search_test` is what a search that found the feasible cell of
    the best valid accuracy would report."""
    out: dict[str, Any] = {}
    for setting, ref in references.items():
        top = ref["feasible_optimum_test"]
        room: dict[str, dict[str, float | None]] = {}
        reachable: dict[str, bool | None] = {}
        for budget, per in figures.get(setting, {}).items():
            means = {v: f["test_accuracy"]["mean"] for v, f in per.items()}
            room[budget] = {v: None if m is None else round(top - m, 4) for v, m in means.items()}
            gaps = [g for g in (room[budget].get(v) for v in BEATEN) if g is not None]
            reachable[budget] = all(g >= MIN_GAIN_POINTS for g in gaps) if len(gaps) == len(BEATEN) else None
        out[setting] = {
            **ref,
            "perfect_search_test": ref["feasible_best_valid_test"],
            "room_below_optimum": room,
            "win_reachable": reachable,
        }
    return out


def _update_seconds(repeats: int) -> float | None:
    if repeats < 1:
        return None
    from na_toolkit.controller.timing import update_seconds

    return round(float(update_seconds(UPDATE_NODES, repeats)), 4)


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    global _TOOLKIT

    if args.seeds < 1 or args.evaluations < 1 or args.per_round < 1 or args.jobs < 1:
        raise ConfigError("--seeds, --evaluations, --per-round and --jobs must be >= 1")
    if not 0 < args.budget_quantile <= 1:
        raise ConfigError(f"--budget-quantile must be in (0, 1], got {args.budget_quantile}")
    variants = _list(args.variants, VARIANTS, "variants")
    budgets = [_budget(b) for b in _list(args.budgets, None, "budgets")]
    table = load_table(args.table)
    require_whole_space(table, "bench controller")
    _, test_column = nb201_search.accuracy_columns(args, table)
    devices = _settings(_list(args.settings, None, "settings"), table)
    settings = list(devices)
    # what a search's config needs of the arguments (the namespace itself holds the toolkit: no pickling)
    plain = argparse.Namespace(
        table=args.table, evaluations=args.evaluations, per_round=args.per_round, dataset=args.dataset
    )
    jobs: list[tuple[Any, ...]] = []
    references: dict[str, dict[str, Any]] = {}
    for setting, device in devices.items():
        budget_ms, feasible = nb201_search.latency_budget(table, device, args.budget_quantile)
        references[setting] = nb201_search.table_reference(table, feasible, budget_ms, args.dataset)
        for scoring in budgets:
            for variant in variants:
                jobs += [(plain, setting, device, budget_ms, scoring, variant, seed) for seed in range(args.seeds)]
    wall0, cpu0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    _TOOLKIT = toolkit
    if args.jobs == 1:
        rows = [_one(j) for j in jobs]
    else:
        # fork: the workers inherit the toolkit (plugins loaded once); each search is single-threaded
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            rows = list(pool.map(_one, jobs, chunksize=1))
    figures: dict[str, Any] = {}
    for setting in settings:
        figures[setting] = {}
        for scoring in budgets:
            key = _key(scoring)
            mine = [r for r in rows if r["setting"] == setting and r["budget"] == key]
            trained = [r for r in mine if r["variant"] == "trained"] or None
            figures[setting][key] = {
                v: _variant_figures([r for r in mine if r["variant"] == v], None if v == "trained" else trained)
                for v in variants
            }
    verdicts = {s: _verdict(figures[s]["10"]) for s in settings if "10" in figures[s]}
    default = figures.get("unconstrained", {}).get("none", {}).get("trained")
    print(_table(figures), file=sys.stderr, flush=True)
    return {
        "settings_won_at_budget_10": sum(v == "won" for v in verdicts.values()),
        "settings_lost_at_budget_10": sum(v == "lost" for v in verdicts.values()),
        "verdict_at_budget_10": verdicts,
        "neural_architect_cpu_s_per_search": None if default is None else default["cpu_s_per_search"]["median"],
        "update_s_at_500_nodes": _update_seconds(args.update_repeats),
        "variants": figures,
        "ceiling": _ceiling(references, figures),
        "pooled_over_settings": pooled(figures),
        # the same on the validation accuracy the search maximises (the verdicts stay on test accuracy)
        "pooled_over_settings_by_valid_accuracy": pooled(figures, "valid_accuracy_per_seed"),
        "criteria": {
            "won": f"trained mean test accuracy >= {MIN_GAIN_POINTS} points above each of {list(BEATEN)}, "
            f"paired Wilcoxon p < {P_WIN}",
            "lost": f"trained mean below one of {list(BEATEN)} with p < {P_WIN}",
            "neural_architect_cpu_s_per_search": "trained, unlimited scoring, unconstrained: median CPU-s",
        },
        "run": {
            "wall_s": round(time.perf_counter() - wall0, 1),
            "cpu_s_main_process": round(time.process_time() - cpu0, 1),
            "load_average_1m": {"start": round(load0, 2), "end": round(os.getloadavg()[0], 2)},
        },
        "protocol": {
            "search": "as bench nb201-search's neural-architect (seed nb201, set_edge_op, table evaluator, GP)",
            "strategy_options": nb201_search.STRATEGY_OPTIONS["neural-architect"],
            "variants": VARIANTS,
            "reports": f"{test_column} of the best feasible evaluated cell by valid accuracy (percent)",
        },
    }


BENCHMARK = Benchmark("controller", (__doc__ or "").strip().splitlines()[0], configure, run)

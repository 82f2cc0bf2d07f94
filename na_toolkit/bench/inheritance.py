"""`na-toolkit bench inheritance`: searches with weight inheritance against searches from scratch.

Each seed runs the same search twice (the example config `examples/digits-cpu.toml`: the digits dataset, the
simple-cnn seed, evolution, the torch evaluator), once training every candidate from scratch and once with
`search.inherit_weights` (a child starts from its nearest evaluated ancestor's weights wherever the moves
preserve the function, and is fine-tuned for the evaluator's `inherit_epochs`; an approximate start far
below its parent is recovered for `inherit_recovery_epochs` at the full rate), at the same number of
evaluations. The devices' measuring time models are left out (the roofline scores latency): a measurement
changes nothing this benchmark compares and costs a second per candidate.

Figures (top level; medians over the seeds):
- `accuracy_gap_points`: best validation accuracy from scratch minus with inheritance, in points (positive:
  inheritance found worse; the issue's target: within 0.5);
- `training_cost_ratio`: training epochs spent with inheritance / from scratch (target <= 1/3);
  `cpu_time_ratio` the same in CPU seconds of the training steps;
- per seed under `seeds`: both searches' best accuracy, epochs, CPU seconds and how many candidates
  inherited (exactly / approximately, fine-tuned), were recovered from a damaged approximate start
  (`recovered`, with the epochs they took: `recovery_epochs`) or trained from scratch;
- `recovered_record_gap_points`: each recovered child of the searches with inheritance is also trained from
  scratch (its evaluation's options and seed): the median over them of that accuracy minus the child's record,
  in points (positive: the record is below what its architecture reaches; `..._max` the worst child, per child
  under each seed's `inherit.recovered_vs_scratch`). Off with `--no-recovered-vs-scratch`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Benchmark, at_least

if TYPE_CHECKING:
    from ..search.summary import SearchResult
    from ..toolkit import Toolkit

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "digits-cpu.toml"


def config_path(args: argparse.Namespace) -> Path:
    """The search config `--config` names, else the repository's example."""
    return Path(args.config) if args.config else DEFAULT_CONFIG


MODES = ("scratch", "inherit")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="search config (default: the repository's examples/digits-cpu.toml, recorded as null: a result's "
        "params name no checkout's path)",
    )
    parser.add_argument("--seeds", type=at_least(1), default=5, help="search seeds 0..N-1 (default 5)")
    parser.add_argument("--evaluations", type=int, default=None, help="evaluations per search (default: the config's)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs from scratch (default: the config's)")
    parser.add_argument(
        "--inherit-epochs", type=int, default=None, help="fine-tuning epochs (default: the evaluator's inherit_epochs)"
    )
    parser.add_argument(
        "--inherit-max-drop",
        type=float,
        default=None,
        help="accuracy drop (fraction) past which an approximate start is damaged (default: the evaluator's)",
    )
    parser.add_argument(
        "--inherit-damaged",
        choices=("recover", "scratch"),
        default=None,
        help="what a damaged approximate start does (default: the evaluator's inherit_damaged)",
    )
    parser.add_argument(
        "--inherit-recovery-epochs",
        type=int,
        default=None,
        help="epochs recovering a damaged start (default: the evaluator's inherit_recovery_epochs)",
    )
    parser.add_argument(
        "--recovered-vs-scratch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train each recovered child from scratch, to compare its record (default: on)",
    )


def _log(msg: str) -> None:
    print(f"[inheritance] {msg}", file=sys.stderr, flush=True)


def _doc(args: argparse.Namespace, seed: int, mode: str) -> dict[str, Any]:
    from ..errors import ConfigError
    from ..files import read_toml

    doc = read_toml(config_path(args), "config file", ConfigError)
    doc["random_seed"] = seed
    if args.evaluations is not None:
        doc["evaluations"] = args.evaluations
    doc.setdefault("search", {})["inherit_weights"] = mode == "inherit"
    options = doc.setdefault("evaluator", {}).setdefault("options", {})
    if args.epochs is not None:
        options["epochs"] = args.epochs
    if args.inherit_epochs is not None:
        options["inherit_epochs"] = args.inherit_epochs
    if args.inherit_max_drop is not None:
        options["inherit_max_drop"] = args.inherit_max_drop
    if args.inherit_damaged is not None:
        options["inherit_damaged"] = args.inherit_damaged
    if args.inherit_recovery_epochs is not None:
        options["inherit_recovery_epochs"] = args.inherit_recovery_epochs
    for device in doc.get("devices", {}).values():
        device.pop("measure", None)
    doc.pop("output", None)  # nothing is written: the search runs in a memory store
    return doc


def wasted(extra: dict[str, Any]) -> dict[str, Any]:
    """The cost of a start that diverged and was trained again from scratch (empty when none)."""
    fallback = extra.get("inherit_fallback") or {}
    return fallback if fallback.get("diverged") else {}


def summarise(result: SearchResult) -> dict[str, Any]:
    """One search's figures: best validation accuracy (points), training epochs and CPU seconds spent, and
    how its candidates started."""
    ok = [e for e in result.evaluated if e.error is None]
    extras = [e.result.get("extra", {}) for e in ok]
    recovered = [(e, x) for e, x in zip(ok, extras) if x.get("inherited") and x.get("recovery")]
    return {
        "best_valid_accuracy": 100.0 * max(float(e.result["valid_accuracy"]) for e in ok),
        # a start whose training diverged was trained again from scratch: both runs are paid for
        "epochs": sum(int(e.result.get("epochs") or 0) + int(wasted(x).get("epochs", 0)) for e, x in zip(ok, extras)),
        "train_cpu_s": sum(
            float(x.get("train_cpu_time_s", 0.0)) + float(wasted(x).get("train_cpu_time_s", 0.0)) for x in extras
        ),
        "diverged_then_scratch": sum(1 for x in extras if wasted(x)),
        "evaluations": len(result.evaluated),
        "failed": len(result.evaluated) - len(ok),
        "inherited_exact": sum(1 for x in extras if x.get("inherited") and x.get("function_preserving") == "exact"),
        "inherited_approximate": sum(
            1
            for x in extras
            if x.get("inherited") and x.get("function_preserving") == "approximate" and not x.get("recovery")
        ),
        "recovered": len(recovered),
        "recovery_epochs": sum(int(e.result.get("epochs") or 0) for e, _ in recovered),
        "from_scratch": sum(1 for x in extras if not x.get("inherited")),
    }


def recovered_vs_scratch(result: SearchResult, evaluator: str, toolkit: Toolkit) -> list[dict[str, Any]]:
    """Each recovered child's record next to its architecture trained from scratch with the same options and
    seed (validation accuracy, points)."""
    from ..evaluation import make_evaluator

    rows = []
    for e in result.evaluated:
        extra = e.result.get("extra", {}) if e.error is None else {}
        if not (extra.get("inherited") and extra.get("recovery")):
            continue
        scratch = make_evaluator(evaluator, dict(extra["options"]), toolkit).evaluate(e.candidate.arch)
        rows.append(
            {
                "arch_hash": e.hash,
                "record": 100.0 * float(e.result["valid_accuracy"]),
                "scratch": 100.0 * scratch.valid_accuracy,
            }
        )
    return rows


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    from ..search.config import load_config
    from ..search.loop import run_search
    from ..store.memory import MemoryRunStore

    seeds: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        row: dict[str, Any] = {"seed": seed}
        for mode in MODES:
            doc = _doc(args, seed, mode)
            started = time.perf_counter()
            store = MemoryRunStore(f"inheritance-{mode}-{seed}", doc)
            # relative paths in the config (a seed file) resolve against its folder, as `na-toolkit search` does
            config = load_config(doc, base_dir=config_path(args).resolve().parent)
            result = run_search(config, toolkit=toolkit, progress=False, outputs=False, store=store)
            row[mode] = {**summarise(result), "wall_s": time.perf_counter() - started}
            if mode == "inherit" and args.recovered_vs_scratch:
                row[mode]["recovered_vs_scratch"] = recovered_vs_scratch(result, config.evaluator.name, toolkit)
            _log(f"seed {seed} {mode}: {row[mode]}")
        seeds.append(row)
    gaps = [r["scratch"]["best_valid_accuracy"] - r["inherit"]["best_valid_accuracy"] for r in seeds]
    epoch_ratios = [r["inherit"]["epochs"] / r["scratch"]["epochs"] for r in seeds]
    cpu_ratios = [r["inherit"]["train_cpu_s"] / r["scratch"]["train_cpu_s"] for r in seeds]
    compared = [c for r in seeds for c in r["inherit"].get("recovered_vs_scratch", [])]
    record_gaps = [c["scratch"] - c["record"] for c in compared]
    return {
        "accuracy_gap_points": statistics.median(gaps),
        "training_cost_ratio": statistics.median(epoch_ratios),
        "cpu_time_ratio": statistics.median(cpu_ratios),
        "accuracy_gap_points_mean": statistics.fmean(gaps),
        "accuracy_gap_points_max": max(gaps),
        **(
            {
                "recovered_record_gap_points": statistics.median(record_gaps),
                "recovered_record_gap_points_max": max(record_gaps),
                "recovered_children": len(record_gaps),
            }
            if record_gaps
            else {}
        ),
        "targets": {"accuracy_gap_points": 0.5, "training_cost_ratio": 1 / 3},
        "seeds": seeds,
    }


BENCHMARK = Benchmark(
    "inheritance",
    "searches with weight inheritance vs from scratch: best accuracy gap and training cost ratio",
    configure,
    run,
)

"""`na-toolkit bench inheritance-recovery`: how a damaged approximate start recovers over epochs.

The measurement behind the torch evaluator's `inherit_recovery_epochs` default (docs/moves.md, "Weight
inheritance"). For each seed, the config's seed network is trained from scratch (the parent); moves drawn at
random from it (the config's moves) give children whose weights map approximately and whose start is more
than `inherit_max_drop` below the parent (damaged: a removed conv or ReLU, a cropped kernel, a narrowed
layer), up to `--children` of them. Each damaged child is then trained four ways, all with the evaluator's
protocol (best validation epoch):
- from scratch for `epochs` (the reference),
- recovered from the inherited weights at the full rate for R epochs, for each R in `--budgets` (each R its
  own cosine schedule, as the evaluator runs it),
- fine-tuned for `inherit_epochs` at `inherit_lr` (what a damaged start got with `inherit_max_drop = 1`).

Figures (top level): `recovery_gap_points` (R -> median over children of scratch minus recovered validation
accuracy, in points; positive: recovery short of scratch), `recovery_gap_points_max` (R -> the worst child),
`fine_tune_gap_points` (the same for the short fine-tune), `start_gap_points` (parent minus the damaged
start, median) and, per child under `children`, every accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Benchmark, at_least
from .inheritance import config_path

if TYPE_CHECKING:
    from ..toolkit import Toolkit


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="search config (default: the repository's examples/digits-cpu.toml, recorded as null: a result's "
        "params name no checkout's path)",
    )
    parser.add_argument(
        "--seeds", type=at_least(1), default=3, help="evaluator seeds 0..N-1, one parent each (default 3)"
    )
    parser.add_argument("--children", type=at_least(1), default=4, help="damaged children per parent (default 4)")
    parser.add_argument(
        "--budgets", default="1,2,3,4,6,8", help="recovery epochs to try, comma-separated (default 1,2,3,4,6,8)"
    )
    parser.add_argument("--draws", type=int, default=200, help="moves drawn per parent looking for children")
    parser.add_argument("--epochs", type=int, default=None, help="epochs from scratch (default: the config's)")
    parser.add_argument(
        "--inherit-max-drop",
        type=float,
        default=None,
        help="accuracy drop (fraction) past which a start is damaged (default: the evaluator's)",
    )


def _log(msg: str) -> None:
    print(f"[inheritance-recovery] {msg}", file=sys.stderr, flush=True)


def _points(x: float) -> float:
    return 100.0 * x


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    from ..errors import ConfigError, NAToolkitError
    from ..evaluation.inherit import inherit_state
    from ..evaluation.repair import ParentNetwork
    from ..evaluation.torch_trainer import TorchEvaluator
    from ..files import read_toml
    from ..search.config import build_seed, load_config

    try:
        budgets = sorted({int(b) for b in str(args.budgets).split(",") if b.strip()})
    except ValueError:
        raise ConfigError(f"--budgets {args.budgets!r}: give whole numbers of epochs, e.g. 1,2,4") from None
    if not budgets or budgets[0] < 1:
        raise ConfigError(f"--budgets {args.budgets!r}: give at least one number of epochs >= 1")
    doc = read_toml(config_path(args), "config file", ConfigError)
    options = dict(doc.get("evaluator", {}).get("options", {}))
    options.setdefault("dataset", doc.get("dataset", "digits"))
    if args.epochs is not None:
        options["epochs"] = args.epochs
    if args.inherit_max_drop is not None:
        options["inherit_max_drop"] = args.inherit_max_drop
    # the config's seed as a search builds it: a registered name, or an IR .json / .onnx file relative to it
    arch = build_seed(load_config(config_path(args)), toolkit)
    names = doc.get("search", {}).get("moves") or toolkit.moves.names()
    moves = [toolkit.moves.get(str(name)) for name in names]
    children: list[dict[str, Any]] = []
    max_drop = None
    for seed in range(args.seeds):
        base = TorchEvaluator.from_toolkit(toolkit, **{**options, "seed": seed})
        max_drop = float(base.options["inherit_max_drop"])
        parent, state = base.evaluate_with_weights(arch)
        _log(f"seed {seed}: parent {_points(parent.valid_accuracy):.2f}")
        rng = np.random.default_rng(seed)
        seen: set[str] = set()
        found = 0
        for _ in range(args.draws):
            if found >= args.children:
                break
            op = moves[int(rng.integers(len(moves)))]
            params = op.sample(arch, rng)
            if params is None:
                continue
            try:
                child = op.apply(arch, **params)
            except NAToolkitError:
                continue
            if child.hash in seen:
                continue
            seen.add(child.hash)
            move = ({"operation": op.name, "params": params},)
            inherited = inherit_state(arch, state, move, child, toolkit.moves, seed)
            if inherited.state is None or inherited.preservation != "approximate":
                continue
            network = ParentNetwork(arch, state, inherited.shared)  # for the repair's layer reconstruction
            first = TorchEvaluator.from_toolkit(
                toolkit, **{**options, "seed": seed, "inherit_recovery_epochs": budgets[0]}
            )
            result, _ = first.evaluate_with_weights(child, inherited.state, parent.valid_accuracy, network)
            recovery = result.extra.get("inherit_recovery")
            if recovery is None:
                continue  # not damaged: the short fine-tune serves it
            found += 1
            row: dict[str, Any] = {
                "seed": seed,
                "move": {"operation": op.name, "params": params},
                "parent": _points(parent.valid_accuracy),
                "start": _points(recovery["valid_accuracy"]),
                **(
                    {"start_unrepaired": _points(result.extra["inherit_repair"]["valid_accuracy_before"])}
                    if "inherit_repair" in result.extra
                    else {}
                ),
                "recovered": {budgets[0]: _points(result.valid_accuracy)},
            }
            for r in budgets[1:]:
                ev = TorchEvaluator.from_toolkit(toolkit, **{**options, "seed": seed, "inherit_recovery_epochs": r})
                row["recovered"][r] = _points(
                    ev.evaluate_with_weights(child, inherited.state, parent.valid_accuracy, network)[0].valid_accuracy
                )
            tune = TorchEvaluator.from_toolkit(toolkit, **{**options, "seed": seed, "inherit_max_drop": 1.0})
            row["fine_tune"] = _points(
                tune.evaluate_with_weights(child, inherited.state, parent.valid_accuracy, network)[0].valid_accuracy
            )
            row["scratch"] = _points(base.evaluate(child).valid_accuracy)
            _log(f"seed {seed} {op.name} {params}: {row}")
            children.append(row)
    if not children:
        raise NAToolkitError("no damaged child was found: raise --draws, or lower the evaluator's inherit_max_drop")

    recovery_gaps = {str(r): [c["scratch"] - c["recovered"][r] for c in children] for r in budgets}
    tune_gaps = [c["scratch"] - c["fine_tune"] for c in children]
    return {
        "recovery_gap_points": {r: statistics.median(g) for r, g in recovery_gaps.items()},
        "recovery_gap_points_max": {r: max(g) for r, g in recovery_gaps.items()},
        "fine_tune_gap_points": statistics.median(tune_gaps),
        "fine_tune_gap_points_max": max(tune_gaps),
        "start_gap_points": statistics.median(c["parent"] - c["start"] for c in children),
        "inherit_max_drop": max_drop,
        "children": [{**c, "recovered": {str(k): v for k, v in c["recovered"].items()}} for c in children],
    }


BENCHMARK = Benchmark(
    "inheritance-recovery",
    "damaged approximate starts: validation accuracy recovered per fine-tuning epoch vs from scratch",
    configure,
    run,
)

"""`na-toolkit demo` (what `make demo` runs): the main job end to end on the embedded default.

Calibrates a roofline model of this CPU, measures the seed with ONNX Runtime to set a latency budget, and
runs the neural-architect search from `simple-cnn` on the first dataset (digits, mnist-5k) the seed does not
saturate (or `--dataset`) under a 16 MB size budget; prints the Pareto table and the run folder
(na_toolkit/search/demo.py). With `--move NAME` it instead gives a quick tour
of moves: applies `--steps` sampled moves of that kind (e.g. a plugin's), exports ONNX and checks parity.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..bench.base import MAX_SEED, at_least
from ._output import notice
from .command import WORK_FAILED_EXIT, Command
from .evaluate import resize_arg

#: the moves a tour applies (`--steps`), and the most it takes
DEFAULT_STEPS = 5
MAX_STEPS = 1_000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--arch", default="simple-cnn", metavar="FILE|SEED", help="starting network (default simple-cnn)"
    )
    parser.add_argument(
        "--dataset",
        metavar="NAME|PATH",
        help="search this dataset (default: the first of digits, mnist-5k the seed does not saturate)",
    )
    parser.add_argument(
        "--resize",
        type=resize_arg,
        metavar="PX|HxW",
        help="resize an image-folder dataset's images to PX x PX (or H x W)",
    )
    parser.add_argument("--steps", type=int, default=None, help="moves tour only: moves to apply (default 5)")
    parser.add_argument(
        "--seed", type=at_least(0, MAX_SEED), default=0, help="random seed of the search (or of the sampled moves)"
    )
    parser.add_argument(
        "--move",
        "--operation",
        dest="move",
        action="append",
        metavar="NAME",
        help="instead of the search, a moves tour sampling only this move (repeatable)",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="folder of the run folders (default runs/); the tour keeps its JSON and ONNX there"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def _say(args: argparse.Namespace, text: str = "") -> None:
    if not args.json:
        print(text)


def run(args: argparse.Namespace) -> int:
    """`make demo`: the real hardware-aware search (na_toolkit/search/demo.py, docs/search.md): calibrate
    this CPU, search a dataset the seed does not saturate (--dataset, or chosen) from --arch under 16 MB
    and a latency budget measured here, print the Pareto table and the run folder (under --out, default
    runs/). With --move, the moves tour below instead (a quick look at a move, e.g. a plugin's)."""
    if args.move:
        if args.dataset is not None or args.resize is not None:  # the tour trains nothing: it would be ignored
            from ..errors import ConfigError

            raise ConfigError("--dataset and --resize choose the search's data; the --move tour trains nothing")
        return _moves_tour(args)
    if args.steps is not None:  # the search ran, the steps silently ignored
        from ..errors import ConfigError

        raise ConfigError("--steps is the --move tour's (moves it applies); the search takes none: leave it out")
    from ..search.demo import run_demo

    echo = notice if args.json else None
    result = run_demo(
        args.out or "runs",
        random_seed=args.seed,
        seed_network=args.arch,
        echo=echo,
        toolkit=args.toolkit,
        dataset=args.dataset,
        resize=args.resize,
    )
    if args.json:
        print(json.dumps(result.summary(), indent=2, default=str))
    return 0


def _moves_tour(args: argparse.Namespace) -> int:
    import numpy as np

    from ._format import render_table, shape_str
    from .arch import PARITY_TOL, load_architecture, onnx_parity_max_abs_err, run_seeds, totals_json

    toolkit = args.toolkit
    args.steps = DEFAULT_STEPS if args.steps is None else args.steps
    if not 0 <= args.steps <= MAX_STEPS:  # `--steps 1e20` applied moves for ever
        print(f"na-toolkit: error: --steps must be in [0, {MAX_STEPS}], got {args.steps}", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"arch": args.arch, "seed": args.seed}
    # the input first: a wrong network or move is one error line, not a tour cut short
    start = load_architecture(args.arch, toolkit)
    names = args.move or toolkit.moves.names()
    ops = [toolkit.moves.get(n) for n in names]  # unknown names: UnknownComponentError, exit 2
    if args.move and args.steps and not any(op.is_applicable(start) for op in ops):
        print(
            f"na-toolkit: error: no move of {', '.join(names)} applies to {args.arch}; `na-toolkit demo` without "
            "--move tours every registered move (`na-toolkit plugins` lists them and what each acts on)",
            file=sys.stderr,
        )
        return 2

    if not args.json:
        print("== seed networks (na-toolkit arch seeds)")
        run_seeds(argparse.Namespace(json=False, toolkit=toolkit))
        print()

    rng = np.random.default_rng(args.seed)
    arch = start
    steps = []
    _say(args, f"== {args.steps} sampled moves on {args.arch} ({len(start.nodes)} nodes, {start.params:,} params)")
    if not ops:
        _say(args, "   no moves are registered yet")
    for step in range(1, args.steps + 1 if ops else 1):
        usable = [op for op in ops if op.is_applicable(arch)]
        if not usable:
            which = "of " + ", ".join(names) if args.move else "registered"
            _say(args, f"   step {step}: no move {which} applies to this network: the tour ends here")
            break
        op = usable[int(rng.integers(len(usable)))]
        params = op.sample(arch, rng)
        arch = op.apply(arch, **params)
        steps.append({"operation": op.name, "params": params, "hash": arch.hash, **totals_json(arch)})
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        _say(
            args,
            f"   step {step}: {op.name}({shown}) -> {len(arch.nodes)} nodes, {arch.params:,} params, "
            f"{arch.flops / 1e6:.2f} MFLOPs, hash {arch.hash}",
        )
    result["steps"] = steps

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.out) if args.out else Path(tmp)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            arch.save(out_dir / "demo.json")
        except OSError as exc:
            print(f"na-toolkit: error: cannot write to {str(out_dir)!r}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        import onnx

        model = arch.to_torch(seed=args.seed).eval()
        proto = arch.to_onnx(model=model, batch_size=None)
        onnx.checker.check_model(proto)
        (out_dir / "demo.onnx").write_bytes(proto.SerializeToString())
        err = onnx_parity_max_abs_err(arch, model=model, proto=proto, seed=args.seed)
        result["onnx"] = {
            "path": str(out_dir / "demo.onnx") if args.out else None,
            "onnx_nodes": len(proto.graph.node),
            "checker": "passed",
            "parity_max_abs_err": err,
        }
    _say(args, "")
    _say(
        args,
        f"== ONNX export: {len(proto.graph.node)} ONNX nodes, onnx.checker passed, ONNX Runtime vs torch "
        f"max abs error {err:.2e} (tolerance {PARITY_TOL:g})" + (f", written to {args.out}" if args.out else ""),
    )

    before, after = totals_json(start), totals_json(arch)
    result["cost"] = {"before": before, "after": after}
    if not args.json:
        print()
        print("== cost (batch 1, fp32)")
        rows = []
        for label, a, t in (("start", start, before), ("after moves", arch, after)):
            rows.append(
                [
                    label,
                    shape_str(a.output_shape),
                    t["nodes"],
                    f"{t['params']:,}",
                    f"{t['macs']:,}",
                    f"{t['flops']:,}",
                    f"{t['weight_bytes'] / 1024:.1f}",
                    f"{t['peak_activation_bytes'] / 1024:.1f}",
                ]
            )
        print(
            render_table(
                ["network", "output", "nodes", "params", "MACs", "FLOPs", "weights KiB", "peak act KiB"],
                rows,
                right={2, 3, 4, 5, 6, 7},
            )
        )
    else:
        print(json.dumps(result, indent=2, default=str))
    if not err <= PARITY_TOL:
        print(f"na-toolkit: error: ONNX Runtime and torch differ by {err:.2e} > {PARITY_TOL:g}", file=sys.stderr)
        return WORK_FAILED_EXIT
    return 0


COMMANDS = (
    Command(
        "demo",
        "the main job: a hardware-aware search from simple-cnn on this CPU (digits or mnist-5k; --move: a moves tour)",
        configure,
        run,
    ),
)

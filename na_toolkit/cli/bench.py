"""`na-toolkit bench NAME [args] --json`: run a benchmark, print one JSON object (figures, params, machine)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from ..bench import BENCHMARKS
from ..bench.machine import machine_info
from ..errors import UnknownComponentError
from .command import Command


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None)
        module.configure(p)
        p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
        p.add_argument("--out", help="also write the JSON result to this file")
        p.set_defaults(_bench_module=module_name)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    skip = {"json", "out", "bench", "_bench_module", "_run", "command", "strict_plugins"}
    return {k: v for k, v in vars(args).items() if k not in skip}


def run(args: argparse.Namespace) -> int:
    if args.bench not in BENCHMARKS:
        raise UnknownComponentError("benchmark", args.bench, BENCHMARKS)
    module = importlib.import_module(args._bench_module)
    figures = module.run(args)
    result = {**figures, "params": {"benchmark": args.bench, **_params(args)}, "machine": machine_info()}
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        print(text)
    else:
        for k, v in figures.items():
            print(f"{k}: {json.dumps(v, default=str)}", file=sys.stdout)
    return 0


COMMANDS = (Command("bench", "run a benchmark and print its figures (JSON with --json)", configure, run),)

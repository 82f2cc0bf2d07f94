"""`na-toolkit whatif`: the same search on hypothetical variants of a device's hardware.

    na-toolkit whatif CONFIG.toml [--device D] --vary memory_bandwidth=0.5x,1x,2x [--vary peak_flops.fp16=1x,2x]
                      [--evaluations N] [--seed N] [--json] [--out DIR]

Each variant (the Cartesian product of the --vary flags) re-runs the config's search with the same seed and
budgets; the table gives per variant the best network, its accuracy and latency, and which resource bound
that latency. See docs/whatif.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .command import Command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="search config (TOML, see docs/search.md) whose device is scored by the roofline")
    p.add_argument(
        "--device",
        help="the config's device to vary: a [devices.NAME] entry or the hardware model it reads "
        "(optional when the config has one device)",
    )
    p.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        help="a hardware model field and its values: factors (0.5x,2x) or values with units (100GB/s, 10TFLOPS, "
        "5us); fields: memory_bandwidth, peak_flops.DTYPE, launch_overhead, memory_capacity, power. "
        "Repeat the flag: every combination runs",
    )
    p.add_argument("--evaluations", type=int, metavar="N", help="ground-truth evaluations per variant")
    p.add_argument("--seed", type=int, metavar="N", help="random seed of every variant (overrides random_seed)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    p.add_argument("--out", metavar="DIR", help="write whatif.json, whatif.md, whatif.png and the variants' TOMLs")


def _run(args: argparse.Namespace) -> int:
    from ..search.whatif import WhatIfResult, run_whatif
    from ..search.whatif_report import whatif_text, write_whatif_outputs
    from ._output import check_out, notice

    if args.out is not None:  # before the searches: a writable place
        check_out(Path(args.out) / "whatif.json", option="--out")
    overrides = {"evaluations": args.evaluations, "random_seed": args.seed}
    finished: list[WhatIfResult] = []  # the result so far: a stopped what-if keeps its finished variants

    def keep(so_far: WhatIfResult) -> None:
        finished[:] = [so_far]
        if args.out is not None:
            write_whatif_outputs(so_far, args.out)

    try:
        result = run_whatif(
            args.config,
            args.device,
            args.vary,
            toolkit=args.toolkit,
            overrides={k: v for k, v in overrides.items() if v is not None} or None,
            log=notice,
            on_variant=keep,
        )
    except KeyboardInterrupt:
        if finished:  # what each finished variant's search measured: on stdout, and in --out when given
            print(whatif_text(finished[0].to_json()))
            if args.out is not None:
                notice(f"na-toolkit: wrote the {len(finished[0].outcomes)} finished variant(s) to {args.out}")
        raise
    doc = result.to_json()
    if args.out is not None:
        files = write_whatif_outputs(result, args.out)
        doc["outputs"] = files
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        print(whatif_text(doc))
        if args.out is not None:
            print(f"\nwrote {args.out}: whatif.json, whatif.md, whatif.png, hardware/")
    return 0


COMMANDS = (
    Command(
        "whatif",
        "re-run a search on variants of a device's hardware model (--vary memory_bandwidth=0.5x,1x,2x) and "
        "report the best network per variant and what bounds its latency",
        _configure,
        _run,
    ),
)

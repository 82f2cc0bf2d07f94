"""Ctrl-C a real `na-toolkit search` at random moments and say how each ended (not a benchmark record: a
tool for hunting rare interrupt races). Each run is the search of `tests/test_interrupts.py` (its fault bench:
30 evaluations, 2 workers, the torch evaluator) in its own process group; after a random delay the group
gets SIGINT (a terminal's Ctrl-C), half the time a second one soon after. A run is OK when it exits 130 with
no traceback; any other end prints its stderr's tail.

    .venv/bin/python benchmarks/ctrl_c_stress.py [--runs 25] [--seed 0] [--from-s 0.5] [--to-s 12]

It found the Ctrl-C that pybind11 turned into `ImportError: initialization failed` (1 run in 25, fixed by
`na_toolkit.errors.interrupt_within`), and a Ctrl-C in a search's first second that ended by SIGINT after its
`interrupted` line (15 of 108 runs with `--from-s 0.6 --to-s 1.6`; 0 of 48 since
`na_toolkit.__main__._forget_unhandled_interrupt`).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from na_toolkit.bench import faults as F


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from-s", type=float, default=0.5, help="earliest Ctrl-C after the start (s)")
    parser.add_argument("--to-s", type=float, default=12.0, help="latest Ctrl-C after the start (s)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            work = Path(tmp) / f"run{i}"
            work.mkdir()
            bench = F.make_bench(work, evaluations=30, workers=2)
            out = str(work / "runs")
            proc = bench.start(
                "search",
                str(bench.config),
                "--output",
                out,
                "--no-progress",
                start_new_session=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # run from a background job too
            )
            delay = rng.uniform(args.from_s, args.to_s)
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGINT)
            second = rng.random() < 0.5
            if second:
                time.sleep(rng.uniform(0.0, 1.5))
                try:
                    os.killpg(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                _, err = proc.communicate()
            bench.cleanup()
            ok = proc.returncode == 130 and "Traceback" not in err
            bad += not ok
            print(f"{i} Ctrl-C at {delay:.2f} s, second {second}: exit {proc.returncode} {'OK' if ok else 'BAD'}")
            if not ok:
                print(err[-2500:])
    print(f"{args.runs - bad} of {args.runs} OK")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

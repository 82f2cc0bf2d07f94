"""The benchmark protocol: a plugin registers `Benchmark` objects through `na_register_benchmarks`.

`na-toolkit bench NAME [args] --json` prints one JSON object: the figures `run` returns (at the top level,
under the names the issues use), plus "params" (the arguments) and "machine" (see docs/architecture.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..toolkit import Toolkit


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: `configure(parser)` adds its arguments, `run(args, toolkit) -> figures`."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Toolkit], dict[str, Any]]


#: the largest random seed a command takes: what numpy, torch and a search config's random_seed take
MAX_SEED = 2**63 - 1


def at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse `type` for a count: a whole number >= `minimum` (and <= `maximum`), else the usage error
    (exit 2) names the argument, the bounds and the value, before the command does any work
    (`type=at_least(1)`; a seed: `at_least(0, MAX_SEED)`, past which numpy or torch raised an overflow)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    return parse

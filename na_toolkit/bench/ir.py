"""IR speed and ONNX parity: moves per second, ONNX emit and torch build time, ONNX Runtime parity.

- `moves_per_s`: candidates produced per second from `resnet-cifar` (`--seed-network`, e.g. the 175-node
  `resnet50`; the emit and build times below are of it too) in one process: a move sampled the
  way the search samples it (`search.strategy.random_move`: an applicable operation, then each parameter
  from its mask), applied, the result validated with shapes inferred, costed and hashed. Random walks
  restart from the seed every `--walk-length` moves, so candidates are up to that many moves away.
  Median over `--repeats` timed windows of `--seconds` after a warm-up window; `moves_per_cpu_s` is the
  same count over the process's CPU time (what the rate would be on an idle core).
- `onnx_emit_ms_median`: `to_onnx(resnet-cifar)` with random weights; `onnx_emit_from_torch_ms_median`
  with the weights of a torch build; `torch_build_ms_median`: `to_torch(resnet-cifar)`. Wall-clock
  medians over max(`--repeats`, 15) runs; the `_cpu_ms_median` twins are the process CPU time.
- `onnx_parity_max_abs_err`: over `--networks` random-move networks (1..20 moves from each seed in turn),
  the largest |ONNX Runtime - torch| on random input (batch 2), the ONNX emitted from the torch build.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

from .base import Benchmark

if TYPE_CHECKING:
    from ..toolkit import Toolkit

SEEDS = ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")
BUILTIN_MOVES = ("insert_conv", "insert_add", "scale", "remove")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed windows / timed builds (median reported, default 7)"
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one moves_per_s window (default 2)")
    parser.add_argument(
        "--walk-length", type=int, default=20, help="moves before a walk restarts at the seed (default 20)"
    )
    parser.add_argument(
        "--networks", type=int, default=200, help="random-move networks for the parity check (default 200)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--seed-network", default="resnet-cifar", help="seed of the moves and build timings (default resnet-cifar)"
    )
    parser.add_argument(
        "--moves",
        "--operations",  # the name before the move/operation naming was unified (benchmarks/ir.json params)
        dest="moves",
        default=",".join(BUILTIN_MOVES),
        help="comma-separated registered moves to sample (default: the built-in ones)",
    )


def _log(msg: str) -> None:
    print(f"bench ir: {msg}", file=sys.stderr, flush=True)


def _moves_window(
    seed_arch: Any, move_types: list[Any], rng: Any, seconds: float, walk_length: int
) -> tuple[int, float, float]:
    """(candidates, wall s, CPU s) of one window of random walks from `seed_arch`."""
    from na_toolkit.search.strategy import random_move

    count, arch, steps = 0, seed_arch, 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while True:
        step = random_move(arch, move_types, rng)
        if step is None or steps >= walk_length:
            if time.perf_counter() - wall0 >= seconds:  # a window of dead ends still ends on time
                return count, time.perf_counter() - wall0, time.process_time() - cpu0
            arch, steps = seed_arch, 0
            continue
        _move, arch = step
        arch.cost  # noqa: B018 (validated, shapes inferred and hashed in random_move; costed here)
        steps += 1
        count += 1
        if count % 50 == 0 and time.perf_counter() - wall0 >= seconds:
            return count, time.perf_counter() - wall0, time.process_time() - cpu0


def moves_per_s(args: argparse.Namespace, move_types: list[Any], toolkit: Toolkit) -> dict[str, Any]:
    import numpy as np

    seed_arch = toolkit.seed(args.seed_network)
    rng = np.random.default_rng(args.seed)
    _moves_window(seed_arch, move_types, rng, min(1.0, args.seconds), args.walk_length)  # warm-up
    wall_rates, cpu_rates = [], []
    for r in range(args.repeats):
        n, wall_s, cpu_s = _moves_window(seed_arch, move_types, rng, args.seconds, args.walk_length)
        wall_s, cpu_s = max(wall_s, 1e-9), max(cpu_s, 1e-9)
        wall_rates.append(n / wall_s)
        cpu_rates.append(n / cpu_s)
        _log(f"moves window {r + 1}/{args.repeats}: {n} candidates, {n / wall_s:.0f}/s wall, {n / cpu_s:.0f}/s CPU")
    return {
        "moves_per_s": round(statistics.median(wall_rates), 1),
        "moves_per_cpu_s": round(statistics.median(cpu_rates), 1),
        "moves_per_s_windows": [round(x, 1) for x in wall_rates],
    }


def _median_ms(fn: Any, repeats: int) -> tuple[float, float]:
    """(wall, CPU) medians in ms; the CPU time shows what a busy machine's wall time hides."""
    fn()  # warm-up (lazy imports, first-call caches)
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    return round(statistics.median(wall), 3), round(statistics.median(cpu), 3)


def build_times(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    arch = toolkit.seed(args.seed_network)
    model = arch.to_torch()
    out: dict[str, Any] = {}
    for name, fn in (
        ("onnx_emit", lambda: arch.to_onnx()),
        ("onnx_emit_from_torch", lambda: arch.to_onnx(model=model)),
        ("torch_build", lambda: arch.to_torch()),
    ):
        out[f"{name}_ms_median"], out[f"{name}_cpu_ms_median"] = _median_ms(fn, max(args.repeats, 15))
    _log(f"{args.seed_network}: {out}")
    return out


def onnx_parity(args: argparse.Namespace, move_types: list[Any], toolkit: Toolkit) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort
    import torch

    from na_toolkit.search.strategy import random_move

    rng = np.random.default_rng(args.seed + 1)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    worst, worst_rel, moves_total = 0.0, 0.0, 0
    for i in range(args.networks):
        arch = toolkit.seed(SEEDS[i % len(SEEDS)])
        for _ in range(int(rng.integers(1, 21))):
            step = random_move(arch, move_types, rng)
            if step is None:
                break
            arch = step[1]
            moves_total += 1
        model = arch.to_torch(seed=i).eval()
        proto = arch.to_onnx(model=model, batch_size=None)
        x = rng.standard_normal((2, *arch.input_shape)).astype(np.float32)
        sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        err = float(np.abs(got - want).max())
        worst = max(worst, err)
        worst_rel = max(worst_rel, err / max(float(np.abs(want).max()), 1e-12))
        if (i + 1) % 25 == 0:
            _log(f"parity: {i + 1}/{args.networks} networks, max abs err so far {worst:.3g}")
    return {
        "onnx_parity_max_abs_err": worst,
        "onnx_parity_max_rel_err": worst_rel,
        "onnx_parity_networks": args.networks,
        "onnx_parity_mean_moves": round(moves_total / max(args.networks, 1), 2),
    }


def check_args(args: argparse.Namespace) -> None:
    """ConfigError in one line for a count or a length that is not positive (a --repeats of 0 has no median;
    a --seconds of NaN never ends a window)."""
    from na_toolkit.errors import ConfigError

    for name in ("repeats", "networks", "walk_length"):
        value = getattr(args, name)
        if value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise ConfigError(f"--seconds must be a positive number of seconds, got {args.seconds}")


def applicable_moves(args: argparse.Namespace, toolkit: Toolkit) -> list[Any]:
    """The --moves, refused in one line when none of them is registered or applies to the --seed-network
    (every walk would be a dead end: no candidate to count)."""
    from na_toolkit.errors import ConfigError

    names = [name.strip() for name in args.moves.split(",") if name.strip()]
    if not names:
        raise ConfigError("--moves names no move; give registered moves, comma-separated")
    move_types = [toolkit.moves.get(name) for name in names]
    seed_arch = toolkit.seed(args.seed_network)
    if not any(op.is_applicable(seed_arch) for op in move_types):
        raise ConfigError(
            f"no move of {', '.join(names)} applies to {args.seed_network}; give --moves that apply to it "
            f"(the built-in ones: {', '.join(BUILTIN_MOVES)}) or another --seed-network"
        )
    return move_types


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    check_args(args)
    move_types = applicable_moves(args, toolkit)
    figures: dict[str, Any] = {}
    load_start = os.getloadavg()[0]
    figures.update(moves_per_s(args, move_types, toolkit))
    figures.update(build_times(args, toolkit))
    figures.update(onnx_parity(args, move_types, toolkit))
    # wall-clock figures on a shared machine depend on its load: recorded next to them
    figures["load_average_1m"] = {
        "start": round(load_start, 2),
        "end": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
    }
    figures["targets"] = {
        "moves_per_s": ">= 1000",
        "onnx_emit_ms_median": "<= 20",
        "torch_build_ms_median": "<= 50",
        "onnx_parity_max_abs_err": "<= 1e-4",
    }
    return figures


BENCHMARK = Benchmark("ir", (__doc__ or "").strip().splitlines()[0], configure, run)

"""Training time estimated by a time model vs measured by the torch evaluator, on this CPU.

1. Draw `--networks` random networks from the default seed (`simple-cnn`, random move sequences, as the
   other benchmarks draw them) and, from another random stream, `--calibration-networks` others.
2. The time model a CPU user would pick: the roofline of this machine's ceilings (`calibrate_hardware()`,
   one torch thread), its training step calibrated (`training.fit_train_calibration`) on the calibration
   networks' steps, each timed by the torch evaluator training it for one epoch. The judged networks are
   never part of the calibration.
3. Train every judged network with the torch evaluator (`--epochs`, the dataset's default split, one
   thread) and compare its measured training time with the estimate `TimeModel.train_time(arch, plan)`
   under the evaluator's `TrainingPlan`: median ratio (estimate / measured) and Spearman correlation.

The measured time is the evaluator's CPU time of the training steps (`extra["train_cpu_time_s"]`, `--truth
cpu`, the default): with one thread it is the wall time the steps take on an idle core, which a shared
machine's neighbours do not inflate; `--truth wall` judges against `train_time_s` (its wall time). Both
are reported either way (`wall` and `cpu`), with the load average. The plain roofline (this machine's
ceilings, uncalibrated), the generic `x86-cpu` roofline and the `learned` model of the shipped
`example-cpu` profile are reported beside it under `models`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import TrainingDivergedError
from .base import Benchmark, at_least

if TYPE_CHECKING:
    from ..toolkit import Toolkit

DEFAULT_SEED = "simple-cnn"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--networks", type=at_least(1), default=30, help="networks judged (default 30)")
    parser.add_argument(
        "--calibration-networks", type=at_least(1), default=10, help="other networks the training step is calibrated on"
    )
    parser.add_argument("--epochs", type=at_least(1), default=3, help="epochs the evaluator trains each judged network")
    parser.add_argument("--seed-net", default=DEFAULT_SEED, help=f"seed network (default {DEFAULT_SEED})")
    parser.add_argument("--dataset", default=None, help="the evaluator's dataset (default: its default, digits)")
    parser.add_argument("--max-moves", type=at_least(1), default=6, help="random moves per network, 1..N (default 6)")
    parser.add_argument("--rng-seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--truth", choices=("cpu", "wall"), default="cpu", help="measured time: CPU (default) or wall")


def _log(msg: str) -> None:
    print(f"bench train-time: {msg}", file=sys.stderr, flush=True)


def agreement(estimated: Any, measured: Any) -> dict[str, float]:
    """Median of estimate / measured, Spearman rank correlation, share within ±20%."""
    import numpy as np
    from scipy.stats import spearmanr

    e, m = np.asarray(estimated, float), np.asarray(measured, float)
    ratio = e / m
    return {
        "median_ratio": float(np.median(ratio)),
        "spearman": float(spearmanr(e, m).statistic),
        "within_20pct": float(np.mean(np.abs(ratio - 1) <= 0.2)),
        "ratio_p10": float(np.percentile(ratio, 10)),
        "ratio_p90": float(np.percentile(ratio, 90)),
    }


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    import numpy as np

    from na_toolkit.errors import NAToolkitError
    from na_toolkit.evaluation import make_evaluator
    from na_toolkit.timemodels.calibrate import calibrate_hardware
    from na_toolkit.timemodels.roofline import RooflineTimeModel
    from na_toolkit.timemodels.sampling import all_move_types, load_seed, random_variants
    from na_toolkit.timemodels.training import fit_train_calibration
    from na_toolkit.torchutil import torch_threads

    if args.networks < 5 or args.calibration_networks < 4 or args.epochs < 1:
        raise NAToolkitError("--networks must be >= 5, --calibration-networks >= 4 and --epochs >= 1")
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    seed = load_seed(args.seed_net, toolkit)
    moves = all_move_types(toolkit)
    judged = [
        v.arch
        for v in random_variants(
            {args.seed_net: seed}, args.networks, np.random.default_rng(args.rng_seed), args.max_moves,
            move_types=moves, include_seeds=False,
        )
    ]  # fmt: skip
    calibration = [
        v.arch
        for v in random_variants(
            {args.seed_net: seed}, args.calibration_networks, np.random.default_rng([args.rng_seed, 104729]),
            args.max_moves, move_types=moves, include_seeds=False, exclude={a.hash for a in judged},
        )
    ]  # fmt: skip
    options: dict[str, Any] = {"threads": 1, **({"dataset": args.dataset} if args.dataset else {})}
    evaluator = make_evaluator("torch", {**options, "epochs": args.epochs}, toolkit)
    plan = evaluator.training_plan()
    truth_key = "train_cpu_time_s" if args.truth == "cpu" else "train_time_s"

    def trained(ev: Any, arch: Any) -> tuple[float, float, int | None]:
        """(CPU s, wall s, epochs trained) of `arch`'s training: a diverged one is timed as far as it went."""
        try:
            result = ev.evaluate(arch)
        except TrainingDivergedError as exc:
            return exc.train_cpu_time_s, exc.train_time_s, exc.epochs
        return float(result.extra["train_cpu_time_s"]), float(result.train_time_s), result.epochs

    # ---- the time model: this machine's roofline, its training step calibrated on other networks -----
    t0 = time.perf_counter()
    with torch_threads(1):
        hardware = calibrate_hardware("cpu")
    local = RooflineTimeModel(device=hardware)
    one_epoch = make_evaluator("torch", {**options, "epochs": 1}, toolkit)
    cal_cpu, cal_wall = [], []
    _log(f"calibrating on {len(calibration)} networks (1 epoch each, {plan.steps_per_epoch} steps)")
    for arch in calibration:
        cpu_s, wall_s, _ = trained(one_epoch, arch)
        cal_cpu.append(cpu_s * 1000.0 / plan.steps_per_epoch)
        cal_wall.append(wall_s * 1000.0 / plan.steps_per_epoch)
    cal_steps = cal_cpu if args.truth == "cpu" else cal_wall
    fit = fit_train_calibration(
        local, calibration, cal_steps, plan.step_batch_size, f"{len(calibration)} {args.seed_net} variants, 1 epoch"
    )
    model = RooflineTimeModel(device=hardware, train_calibration=fit)
    calibrate_s = time.perf_counter() - t0

    # ---- ground truth ------------------------------------------------------------------------------------
    _log(f"training {len(judged)} networks for {args.epochs} epochs ({plan.steps} steps each)")
    t0 = time.perf_counter()
    cpu, wall, epochs = [], [], []
    for i, arch in enumerate(judged):
        c, w, trained_epochs = trained(evaluator, arch)
        cpu.append(c)
        wall.append(w)
        epochs.append(int(trained_epochs or args.epochs))  # a diverged run stops early
        _log(f"{i + 1}/{len(judged)} {arch.hash[:10]}: {c:.3f} s CPU, {w:.3f} s wall")
    evaluate_s = time.perf_counter() - t0
    cpu_a, wall_a = np.array(cpu), np.array(wall)
    truth = cpu_a if args.truth == "cpu" else wall_a

    # ---- estimates (each network's steps: the plan's per epoch x the epochs it trained) --------------------
    def estimates(tm: Any) -> Any:
        return np.array(
            [
                tm.train_step_ms(a, plan.step_batch_size) * plan.steps_per_epoch * e / 1000.0
                for a, e in zip(judged, epochs)
            ]
        )

    main = estimates(model)
    others: dict[str, Any] = {"roofline_local_uncalibrated": estimates(local)}
    others["roofline_x86_cpu"] = estimates(RooflineTimeModel.from_toolkit(toolkit, device="x86-cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shipped profile was measured on another CPU: said in its name
        from na_toolkit.timemodels import get_time_model

        others["learned_example_cpu"] = estimates(get_time_model("learned", toolkit, device="example-cpu"))
    figures = agreement(main, truth)
    return {
        "median_ratio": figures["median_ratio"],
        "spearman": figures["spearman"],
        "time_model": {
            "name": "roofline",
            "hardware": "this CPU, calibrate_hardware() with 1 torch thread",
            "train_calibration": fit.to_json(),
            "source": model.train_step_source(),
            **figures,
        },
        "truth": truth_key,
        "cpu": agreement(main, cpu_a),
        "wall": agreement(main, wall_a),
        "models": {name: agreement(values, truth) for name, values in others.items()},
        "plan": plan.to_json(),
        "calibration": {
            "networks": len(calibration),
            "step_ms_cpu": [float(x) for x in cal_cpu],
            "step_ms_wall": [float(x) for x in cal_wall],
            "hardware": {
                "peak_flops_per_s": hardware.peak_flops_per_s,
                "memory_bandwidth_bytes_per_s": hardware.memory_bandwidth_bytes_per_s,
                "launch_overhead_s": hardware.launch_overhead_s,
            },
            "elapsed_s": calibrate_s,
        },
        "networks": {
            "count": len(judged),
            "diverged": int(sum(e < args.epochs for e in epochs)),
            "train_time_s_cpu": {
                "min": float(cpu_a.min()),
                "median": float(np.median(cpu_a)),
                "max": float(cpu_a.max()),
            },
            "wall_over_cpu_median": float(np.median(wall_a / cpu_a)),
            "flops": {"min": float(min(a.flops for a in judged)), "max": float(max(a.flops for a in judged))},
            "per_network": [
                {"hash": a.hash, "measured_cpu_s": float(c), "measured_wall_s": float(w), "estimated_s": float(e)}
                for a, c, w, e in zip(judged, cpu_a, wall_a, main)
            ],
        },
        "evaluate_s": evaluate_s,
        "elapsed_s": time.perf_counter() - started,
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0], "cores": os.cpu_count()},
    }


BENCHMARK = Benchmark("train-time", (__doc__ or "").strip().splitlines()[0], configure, run)

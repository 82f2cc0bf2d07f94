"""Latency prediction on this machine: learned (from a profile built here) and roofline vs measured.

1. Build a device profile here with `na-toolkit profile`'s defaults (timed: `profile_build_s`).
2. Sample a held-out set of networks from seeds (`--heldout-seed`, else the profile's own) and random move
   sequences, none of them in the profile, and measure each with the onnxruntime time model under the
   measurement protocol (docs/time_models.md), in `--repeats` passes spread over the run (the ground truth
   is the profile's statistic over all passes: the minimum for "min", the median of the passes for "median";
   `measurement.cv_median` is the median over networks of the coefficient of variation between passes:
   how reproducible one measurement of a network is here; `measurement.pass_agreement`, how often one pass
   predicts another within 10% / 20%, is the measurement's own ceiling, and `learned.vs_one_pass` the
   learned model's figures against one pass, on the same footing).
3. Predict the held-out set with the learned model (per seed, and split by its outside-the-profile warning:
   latency_heldout.py), without its step 3 (`learned_calibration_only`: the network calibration alone), with
   the roofline of a hardware model calibrated here by `calibrate_hardware()`, and rank it by FLOPs (the
   baseline). `drift`: `--drift-networks` of the profile's own networks measured again among the held-out
   ones, how much faster or slower the machine runs now than when profiled. `learned_rescaled_by_measure`
   (and the roofline's `rescaled_by_measure`): a search's `rescale_by_measure` played on the held-out set
   (the predictions of the others scaled by what the first 5, 10, 20 measured give: their median
   measured/predicted, and each network's factor from its most similar ones; latency_heldout.py).
4. `statistic`: the measured median over minimum of each held-out network, and the learned model fitted on
   the profile's minimums and on its medians against the medians a search's measure reports by default.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Benchmark, at_least
from .latency_heldout import accuracy

if TYPE_CHECKING:
    from ..toolkit import Toolkit

DEFAULT_HELDOUT = 200
#: --quick's sizes where they are not given: a smoke test of minutes (the defaults take 15+ on a 2-core CPU)
QUICK_SIZES = {"samples": 20, "adaptive_rounds": 0, "heldout": 30}
#: profile networks measured again among the held-out ones (the drift reference)
DEFAULT_DRIFT_NETWORKS = 24


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="cpu", help="local device (cpu; cuda:N uses onnxruntime-gpu's CUDA provider)"
    )
    parser.add_argument("--samples", type=int, default=None, help="profile networks (default: the profile command's)")
    parser.add_argument(
        "--adaptive-rounds", type=int, default=None, help="profile adaptive rounds (default: the profile command's)"
    )
    parser.add_argument(
        "--heldout",
        type=int,
        default=None,
        help=f"held-out networks (default {DEFAULT_HELDOUT}; --quick: {QUICK_SIZES['heldout']})",
    )
    parser.add_argument(
        "--heldout-seed",
        action="append",
        dest="heldout_seeds",
        metavar="NAME|FILE",
        help="seed network of the held-out networks (registered name, IR .json or .onnx file, as the profile "
        "command's --seed-net); repeatable; default: the profile's own seeds",
    )
    parser.add_argument("--repeats", type=int, default=3, help="measurement passes over the held-out set (default 3)")
    parser.add_argument("--max-moves", type=at_least(1), default=6, help="random moves per network, 1..N (default 6)")
    parser.add_argument("--rng-seed", type=int, default=0, help="sampling seed (held-out uses a different stream)")
    parser.add_argument(
        "--profile", default=None, help="use this existing profile (a name or a .json) instead of building one"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="ONNX Runtime intra-op threads of the profile built and the held-out measurements, and torch threads "
        "of the roofline's calibration (default: the --profile's, else 1)",
    )
    parser.add_argument(
        "--drift-networks",
        type=int,
        default=DEFAULT_DRIFT_NETWORKS,
        help="profile networks measured again among the held-out ones, to tell the machine's drift since the "
        f"profile from the model's error (default {DEFAULT_DRIFT_NETWORKS}; 0: none)",
    )
    parser.add_argument("--profile-out", default=None, help="keep the profile built here at this path")
    parser.add_argument(
        "--dump", default=None, help="write the held-out networks, measurements and predictions here (JSON)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small minimums everywhere and, where not given, {samples} profile networks, {adaptive_rounds} "
        "adaptive rounds, {heldout} held-out networks (smoke test; figures are not comparable)".format(**QUICK_SIZES),
    )


def resolve_sizes(args: argparse.Namespace) -> argparse.Namespace:
    """Fill in the sizes `args` does not give, in place (the result's "params" then show the sizes used):
    --quick's small ones, else the defaults (the profile command's samples and adaptive rounds stay None:
    ProfileOptions has them). Returns `args`."""
    for key, small in QUICK_SIZES.items():
        if getattr(args, key) is None and args.quick:
            setattr(args, key, small)
    if args.heldout is None:
        args.heldout = DEFAULT_HELDOUT
    return args


def _log(msg: str) -> None:
    print(f"bench latency: {msg}", file=sys.stderr, flush=True)


def measure_heldout(
    archs: list[Any],
    device: str,
    repeats: int,
    settings: Any,
    statistic: str = "median",
    threads: int = 1,
    reference: Sequence[Any] = (),
) -> tuple[Any, dict[str, Any]]:
    """Latency (ms) per network from `repeats` passes (alternating in order, so that a slow spell of the
    machine does not hit the same networks twice): the minimum over the passes for statistic "min", else
    their median; and the reproducibility figures (coefficient of variation between the passes).
    `reference` networks are measured the same way, spread evenly among the others, and left out of the
    figures: their latencies are the figures' `_reference_ms` (an array; pop it before writing JSON)."""
    import numpy as np
    from tqdm import tqdm

    from na_toolkit.timemodels.onnxruntime_tm import OnnxRuntimeTimeModel

    # the measuring order: the reference networks spread evenly among the held-out ones
    after: list[list[int]] = [[] for _ in range(len(archs) + 1)]  # reference networks after k held-out ones
    for j in range(len(reference)):
        after[(j + 1) * len(archs) // (len(reference) + 1)].append(j)
    order_all = [(True, j) for j in after[0]]
    for i in range(len(archs)):
        order_all += [(False, i)] + [(True, j) for j in after[i + 1]]
    items = [reference[j] if is_ref else archs[j] for is_ref, j in order_all]
    values = np.zeros((len(items), repeats))
    within_cv = np.zeros((len(items), repeats))
    per_pass: list[list[dict[str, Any]]] = [[{} for _ in range(repeats)] for _ in items]
    stable = np.zeros((len(items), repeats), dtype=bool)
    with tqdm(total=len(items) * repeats, desc="held-out", file=sys.stderr, mininterval=1.0) as bar:
        for r in range(repeats):
            # a fresh time model per pass: no cache hit may stand in for a measurement
            tm = OnnxRuntimeTimeModel(device=device, settings=settings, statistic=statistic, intra_op_threads=threads)
            order = range(len(items)) if r % 2 == 0 else reversed(range(len(items)))
            for i in order:
                est = tm.estimate(items[i])
                values[i, r] = est.latency_ms
                m = est.details["measurement"]
                within_cv[i, r] = m["cv"]
                per_pass[i][r] = {
                    k: m[k] for k in ("median_ms", "p10_ms", "min_ms", "cv", "runs", "stable", "wall_median_ms")
                }
                stable[i, r] = bool(m["stable"])
                bar.update(1)
    # the statistic over all of a network's samples: the lower envelope over every pass for "min" (a slow
    # spell of the machine lasts minutes and can cover a whole pass), the median of the passes otherwise
    truth_all = values.min(axis=1) if statistic == "min" else np.median(values, axis=1)
    # both in their own order (order_all lists each in turn)
    held = np.array([k for k, (is_ref, _) in enumerate(order_all) if not is_ref], dtype=int)
    ref = np.array([k for k, (is_ref, _) in enumerate(order_all) if is_ref], dtype=int)
    v = values[held]
    between_cv = v.std(axis=1, ddof=1) / v.mean(axis=1) if repeats > 1 else np.zeros(len(held))
    figures = {
        "cv_median": float(np.median(between_cv)) if repeats > 1 else None,
        "cv_p90": float(np.percentile(between_cv, 90)) if repeats > 1 else None,
        "within_run_cv_median": float(np.median(within_cv[held])),
        "stable_share": float(stable[held].mean()),
        "repeats": repeats,
        "networks": len(archs),
        "clock": tm.clock,
        "statistic": statistic,
        "intra_op_threads": tm.intra_op_threads,
        "settings": settings.to_json(),
    }
    figures["_per_pass"] = [per_pass[k] for k in held]
    figures["_reference_ms"] = truth_all[ref]
    return truth_all[held], figures


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    """The figures; a profile built without --profile-out goes to a temporary folder, removed however it ends."""
    with tempfile.TemporaryDirectory(prefix="na-bench-") as scratch:
        return _run(args, toolkit, Path(scratch))


def _run(args: argparse.Namespace, toolkit: Toolkit, scratch: Path) -> dict[str, Any]:
    import numpy as np

    from na_toolkit.errors import ConfigError, NAToolkitError
    from na_toolkit.timemodels.learned import LearnedTimeModel
    from na_toolkit.timemodels.measure import MeasureSettings
    from na_toolkit.timemodels.profile import DeviceProfile, resolve_profile_path
    from na_toolkit.timemodels.profile_plan import print_to_stderr
    from na_toolkit.timemodels.profiler import ProfileBuilder, ProfileOptions
    from na_toolkit.timemodels.sampling import all_move_types, random_variants

    from .latency_heldout import (
        check_seed_flops,
        drift_figures,
        drift_reference,
        given_seeds,
        heldout_doc,
        learned_split,
        pass_figures,
        profile_seeds,
        rescaled_figures,
    )

    resolve_sizes(args)
    if args.heldout < 10 or args.repeats < 1:
        raise ConfigError(f"--heldout must be >= 10 and --repeats >= 1, got {args.heldout} and {args.repeats}")
    if args.drift_networks < 0:
        raise ConfigError(f"--drift-networks must be >= 0 (0: no drift reference), got {args.drift_networks}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    quick = args.quick
    given = given_seeds(args.heldout_seeds, toolkit)  # a bad one is refused before minutes of profiling
    load_start = os.getloadavg()
    # ---- 1. the profile -----------------------------------------------------------------------------
    build_s = None
    if args.profile:
        profile = DeviceProfile.load(resolve_profile_path(args.profile, toolkit.hardware))  # a name or a path
        args.threads = profile_threads(args.threads, profile)  # recorded in "params"
        check_profile_fits(profile, args.profile, args.device, args.threads)
        max_flops = profile.plan.get("max_flops")
    else:
        out = Path(args.profile_out) if args.profile_out else scratch / "bench-profile.json"
        args.threads = args.threads or 1
        options = ProfileOptions(
            out=out, device=args.device, rng_seed=args.rng_seed, max_moves=args.max_moves, threads=args.threads
        )
        if args.samples is not None:
            options.samples = args.samples
        if args.adaptive_rounds is not None:
            options.adaptive_rounds = args.adaptive_rounds
        if quick:
            options.kernel_settings = MeasureSettings.quick()
            options.network_settings = MeasureSettings.quick()
        max_flops = options.max_flops
        check_seed_flops(given or {}, max_flops, "--heldout-seed")  # before minutes of profiling
        _log(
            f"building a profile (its seeds and {options.samples} networks, {options.adaptive_rounds} adaptive "
            f"rounds) at {out}"
        )
        t0 = time.perf_counter()
        profile = ProfileBuilder(options, toolkit, print_to_stderr).run()
        build_s = time.perf_counter() - t0
        if not profile.complete:
            raise NAToolkitError(f"profile build stopped early ({profile.stopped}); figures need a complete profile")
    # ---- 2. the held-out set ------------------------------------------------------------------------
    own = profile_seeds(profile, toolkit)
    seeds = given or own
    check_seed_flops(seeds, max_flops, "--heldout-seed" if given else "the profile's seed network")
    args.heldout_seeds = list(seeds)  # recorded in "params"
    rng = np.random.default_rng([args.rng_seed, 7919])  # a stream the profile never draws from
    variants = random_variants(
        seeds,
        args.heldout,
        rng,
        args.max_moves,
        move_types=all_move_types(toolkit),
        exclude=profile.network_hashes(),
        include_seeds=False,
        max_flops=max_flops,
    )
    archs = [v.arch for v in variants]
    if len(archs) < args.heldout:
        counts = ", ".join(f"{s} {sum(v.seed == s for v in variants)}" for s in seeds)
        _log(f"the held-out seeds gave {len(archs)} networks of the {args.heldout} asked ({counts})")
    if len(archs) < 3:
        raise ConfigError(
            f"the held-out seeds ({', '.join(seeds)}) gave {len(archs)} networks that are not in the profile and "
            "within its max_flops; give other --heldout-seed networks (or a higher --max-moves)"
        )
    overlap = len({a.hash for a in archs} & profile.network_hashes())
    settings = MeasureSettings.quick() if quick else MeasureSettings()
    _log(f"measuring {len(archs)} held-out networks x {args.repeats} passes (the measurement protocol)")
    t0 = time.perf_counter()
    drift_ref = drift_reference(profile, toolkit, args.drift_networks, args.rng_seed)
    truth, measurement = measure_heldout(
        archs, args.device, args.repeats, settings, profile.statistic, args.threads, [a for a, _ in drift_ref]
    )
    reference_ms = measurement.pop("_reference_ms")
    measurement["measure_s"] = time.perf_counter() - t0
    # the machine is shared: how busy it was says how far its latencies could be trusted
    measurement["load_average_1min"] = {"start": load_start[0], "end": os.getloadavg()[0], "cores": os.cpu_count()}
    # ---- 3. predictions -----------------------------------------------------------------------------
    t0 = time.perf_counter()
    learned = LearnedTimeModel(profile, layer_types=toolkit.layer_types)
    fit_s = time.perf_counter() - t0
    # wall clock (what a caller waits) and the thread's CPU time (the model's own cost: on a shared machine
    # the wall clock also counts the time slices other processes get)
    t0, c0 = time.perf_counter(), time.thread_time()
    estimates = [learned.estimate(a) for a in archs]  # with its outside-the-profile reasons: features once
    per_s = len(archs) / (time.perf_counter() - t0)
    per_s_cpu = len(archs) / max(time.thread_time() - c0, 1e-9)
    fresh = LearnedTimeModel(
        profile, layer_types=toolkit.layer_types
    )  # cold kernel memo: the worst case of a first query
    t0, c0 = time.perf_counter(), time.thread_time()
    for a in archs:
        clear_kernel_memos(fresh.model)
        fresh.estimate(a)
    per_s_cold = len(archs) / (time.perf_counter() - t0)
    per_s_cold_cpu = len(archs) / max(time.thread_time() - c0, 1e-9)
    pred = np.array([e.latency_ms for e in estimates])
    outside = [e.details["outside_profile_domain"] for e in estimates]
    per_pass = measurement.pop("_per_pass")
    measurement["pass_agreement"], vs_one_pass = pass_figures(
        per_pass, measurement["statistic"], pred, [v.seed for v in variants]
    )
    drift = drift_figures([t for _, t in drift_ref], reference_ms, pred, truth)
    calibration_only = None  # the ablation of the learned model's step 3, side by side on the same truth
    if profile.fewshot is None:  # the same fitted model, its calibration without the residual correction
        from na_toolkit.timemodels.kernels import kernels_of

        X = learned.model.network_features([kernels_of(a) for a in archs])
        calibration_only = accuracy(learned.model.calibration_only(X), truth)  # type: ignore[union-attr]
    variant_seeds = [v.seed for v in variants]
    roofline = roofline_figures(archs, truth, args.device, args.threads)
    roofline["rescaled_by_measure"] = rescaled_figures(
        roofline.pop("predictions_ms"), truth, archs, variant_seeds, args.rng_seed
    )
    statistic = statistic_figures(profile, toolkit, archs, [v.seed for v in variants], per_pass)
    if args.dump:
        from na_toolkit.files import strict_json_text, write_text_atomic

        # strict JSON: a pass that failed to measure is null, never a bare NaN
        dump = [
            {
                "seed": v.seed,
                "moves": list(v.moves),
                "arch": v.arch.to_json(),
                "truth_ms": float(t),
                "learned_ms": float(p),
                "outside_profile_domain": o,
                "passes": pp,
            }
            for v, t, p, o, pp in zip(variants, truth, pred, outside, per_pass)
        ]
        write_text_atomic(args.dump, strict_json_text(dump))
    flops = np.array([a.flops for a in archs], float)
    from scipy.stats import spearmanr

    return {
        "learned": {
            **accuracy(pred, truth),
            "predictions_per_s": per_s,
            "predictions_per_s_cpu": per_s_cpu,
            "predictions_per_s_cold": per_s_cold,
            "predictions_per_s_cold_cpu": per_s_cold_cpu,
            "fit_s": fit_s,
            "residual_kept": getattr(learned.model, "residual_", None) is not None,
            "vs_one_pass": vs_one_pass,
            **learned_split(pred, truth, [v.seed for v in variants], outside, list(seeds)),
        },
        "learned_calibration_only": calibration_only,
        "learned_rescaled_by_measure": rescaled_figures(pred, truth, archs, variant_seeds, args.rng_seed),
        "drift": drift,
        "roofline": roofline,
        "statistic": statistic,
        "flops_proxy": {"spearman": float(spearmanr(flops, truth).statistic)},
        "measurement": measurement,
        "profile_build_s": build_s,
        "profile": {
            "name": profile.name,
            "kernels": len(profile.kernels),
            "networks": len(profile.networks),
            "failures": len(profile.failures),
            "device": profile.device_name,
            "runtime": profile.runtime,
            "elapsed_s": profile.elapsed_s,
        },
        "heldout": {
            "networks": len(archs),
            "in_profile": overlap,
            "latency_ms": {"min": float(truth.min()), "median": float(np.median(truth)), "max": float(truth.max())},
            "nodes": {"min": min(len(a) for a in archs), "max": max(len(a) for a in archs)},
            **heldout_doc(seeds, own, [v.seed for v in variants]),
        },
    }


def statistic_figures(
    profile: Any, toolkit: Toolkit, archs: list[Any], seeds: list[str], per_pass: list[list[dict[str, Any]]]
) -> dict[str, Any]:
    """What a search's measure reports by default is the median of a network's samples, what a profile keeps
    the minimum: the held-out networks' measured median over minimum (each network's median of its passes'
    medians over the lowest of their minimums), and the learned model fitted on the profile's minimums and on
    its medians, each judged against those measured medians."""
    import numpy as np

    from na_toolkit.timemodels.learned import LearnedTimeModel

    from .latency_heldout import spread

    median = np.array([np.median([p["median_ms"] for p in passes]) for passes in per_pass])
    ratio = median / np.array([min(p["min_ms"] for p in passes) for passes in per_pass])

    by_seed = {s: [i for i, x in enumerate(seeds) if x == s] for s in sorted(set(seeds))}
    own = [n.latency_ms("median") / n.latency_ms("min") for n in profile.networks]
    out: dict[str, Any] = {
        "median_over_min": {**spread(ratio), "by_seed": {s: float(np.median(ratio[i])) for s, i in by_seed.items()}},
        "profile_median_over_min": spread(own),
    }
    for stat in ("min", "median"):
        model = LearnedTimeModel(profile, layer_types=toolkit.layer_types, statistic=stat, check_device=False)
        pred = model.predict_ms(archs)
        out[f"learned_{stat}_vs_median"] = {
            **accuracy(pred, median),
            "by_seed": {s: float(np.median(pred[i] / median[i])) for s, i in by_seed.items()},
        }
    return out


def clear_kernel_memos(model: Any) -> None:
    """Empty the kernel-prediction memo of a profile's latency model: a `KernelLatencyModel`'s own, a
    `FewShotLatencyModel`'s in each of its priors (it predicts through them and has none itself)."""
    memo = getattr(model, "_memo", None)
    if memo is not None:
        memo.clear()
    for prior in getattr(model, "priors", ()):
        clear_kernel_memos(prior)


def profile_threads(threads: int | None, profile: Any) -> int:
    """The intra-op threads to measure the held-out networks with: those given, else the profile's (a profile
    of 2 threads is a device of its own: its held-out networks run on 2 threads too)."""
    return threads if threads is not None else int(profile.runtime.get("intra_op_threads") or 1)


def check_profile_fits(profile: Any, path: str, device: str, threads: int = 1) -> None:
    """A `--profile` whose figures cannot be compared with what this benchmark measures is refused: the
    held-out networks are measured by ONNX Runtime at batch size 1 on `--device`, so the profile must be an
    ONNX Runtime profile at batch size 1 of a device of the same kind, with the settings it measures with (one
    intra-op thread: `na-toolkit profile`'s default); a different model of CPU or GPU of that kind is the
    learned model's own warning."""
    from na_toolkit.errors import ConfigError
    from na_toolkit.machine import parse_device

    there = str(profile.device.get("device", "cpu"))
    problems = []
    if profile.runtime_name != "onnxruntime":
        problems.append(f"it was measured with {profile.runtime_name!r}, not onnxruntime")
    if profile.batch_size != 1:
        problems.append(f"it was measured at batch size {profile.batch_size}, not 1")
    if parse_device(there).kind != parse_device(device).kind:
        problems.append(f"it measured {there!r}, and --device is {device!r}")
    elif profile.runtime_name == "onnxruntime":  # the held-out networks' threads, graph optimization, clock
        from na_toolkit.timemodels.onnxruntime_tm import OnnxRuntimeTimeModel
        from na_toolkit.timemodels.profile_match import profile_differences

        here = OnnxRuntimeTimeModel(device=device, intra_op_threads=threads)
        problems += [d.replace("the measure", "this benchmark") for d in profile_differences(profile, here, False)]
    if problems:
        raise ConfigError(
            f"--profile {path!r} cannot be compared with this benchmark's measurements (ONNX Runtime, batch size 1, "
            f"on --device {device!r}): {'; '.join(problems)}. Give a profile built by `na-toolkit profile --device "
            f"{device}{f' --threads {threads}' if threads != 1 else ''}` (onnxruntime, batch size 1), or leave "
            "--profile out to build one"
        )


def roofline_figures(archs: list[Any], truth: Any, device: str, threads: int = 1) -> dict[str, Any]:
    """The roofline with this machine's ceilings, measured by calibrate_hardware() with as many torch threads
    as the held-out networks run intra-op threads (one by default)."""
    import numpy as np

    from na_toolkit.timemodels.calibrate import calibrate_hardware
    from na_toolkit.timemodels.roofline import RooflineTimeModel
    from na_toolkit.torchutil import torch_threads

    with torch_threads(threads):
        hw = calibrate_hardware(device)
    model = RooflineTimeModel(device=hw)
    pred = np.array([model.estimate(a).latency_ms for a in archs])
    return {
        **accuracy(pred, truth),
        "predictions_ms": pred,  # for the rescaled figures (run() takes it out)
        "hardware": {
            "peak_flops_per_s": hw.peak_flops_per_s,
            "memory_bandwidth_bytes_per_s": hw.memory_bandwidth_bytes_per_s,
            "launch_overhead_s": hw.launch_overhead_s,
            "threads": threads,
        },
    }


BENCHMARK = Benchmark("latency", (__doc__ or "").strip().splitlines()[0], configure, run)

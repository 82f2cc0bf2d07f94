"""A new device in 20 measurements: a few-shot profile against a full profile of the same machine.

1. A full profile of this machine (`na-toolkit profile`'s defaults; timed), or `--full-profile PATH` of this
   machine measured before with the same protocol.
2. The few-shot profile (`na-toolkit profile --fewshot N --prior ...`): N networks chosen among `--pool`
   candidates with the priors' learned models, measured here. The priors must be other devices (by default
   the shipped `example-cpu`, an Intel Xeon measured with ONNX Runtime, and `h200-torch-b1`, an H200 measured
   with torch); a prior measured on this machine is refused.
3. Held-out networks (a sampling stream neither profile draws from, none of their networks) measured here in
   `--repeats` passes with the profiles' network protocol (bench latency's `measure_heldout`): the truth.
4. Figures on the held-out set: `within_20pct` (share of networks predicted within ±20%) and `spearman` of
   the few-shot profile's learned time model; the same for the full profile (`full`), and two ablations fitted
   like the few-shot model: N *random* candidates of the same pool measured the same way (`random_choice`),
   and the N chosen networks without priors (`no_prior`: log FLOPs and log kernel count only); and three that
   isolate what 0.4.0 changed: the N chosen networks fitted in one form only (`ridge_only`, `groups_only`: the
   groups of the prior with the smaller leave-one-out error), and 0.3.0's method whole (`previous_method`: N
   candidates chosen on the features without the priors' group shares, measured the same way, ridge form).
   `fewshot.form`, `fewshot.loo_rms_log` and `fewshot.group_weights` say what the few-shot model fitted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Benchmark

if TYPE_CHECKING:
    from ..toolkit import Toolkit

DEFAULT_PRIORS = ("example-cpu", "h200-torch-b1")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="local device (default cpu)")
    parser.add_argument("--fewshot", type=int, default=20, help="networks the few-shot profile measures (default 20)")
    parser.add_argument(
        "--prior",
        action="append",
        dest="priors",
        metavar="NAME|FILE",
        help=f"prior profile of another device, repeatable (default: {', '.join(DEFAULT_PRIORS)})",
    )
    parser.add_argument("--pool", type=int, default=300, help="candidates the few-shot networks are chosen from")
    parser.add_argument("--samples", type=int, default=None, help="full profile networks (default: the command's)")
    parser.add_argument("--adaptive-rounds", type=int, default=None, help="full profile adaptive rounds")
    parser.add_argument("--heldout", type=int, default=150, help="held-out networks (default 150)")
    parser.add_argument("--repeats", type=int, default=2, help="measurement passes over the held-out set (default 2)")
    parser.add_argument("--rng-seed", type=int, default=0, help="sampling seed (each set draws its own stream)")
    parser.add_argument("--full-profile", default=None, help="a full profile of this machine to use instead of one")
    parser.add_argument("--work-dir", default=None, help="keep the profiles built here in this folder")
    parser.add_argument("--quick", action="store_true", help="small minimums everywhere (smoke test only)")


def _log(msg: str) -> None:
    print(f"bench fewshot-profile: {msg}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    if args.work_dir:
        return _run(args, toolkit, Path(args.work_dir))
    with tempfile.TemporaryDirectory(prefix="na-bench-fewshot-") as tmp:  # removed however the run ends
        return _run(args, toolkit, Path(tmp))


def _run(args: argparse.Namespace, toolkit: Toolkit, work: Path) -> dict[str, Any]:
    import numpy as np

    from ..errors import ConfigError, NAToolkitError
    from ..timemodels.devices import describe_local_device
    from ..timemodels.kernels import kernels_of
    from ..timemodels.learned import LearnedTimeModel
    from ..timemodels.measure import MeasureSettings
    from ..timemodels.profile import DeviceProfile, check_device
    from ..timemodels.profile_fewshot import (
        FewShotLatencyModel,
        FewShotProfileBuilder,
        choose_informative,
        load_priors,
        measured_shares,
        prior_model,
    )
    from ..timemodels.profile_plan import NETWORK_SETTINGS, ProfileOptions, make_time_model, print_to_stderr
    from ..timemodels.profiler import DEFAULT_SEEDS, ProfileBuilder
    from ..timemodels.sampling import all_move_types, load_seed, random_variants
    from .latency import measure_heldout
    from .latency_heldout import accuracy

    if args.heldout < 10 or args.repeats < 1 or args.fewshot < 5:
        raise ConfigError("--heldout must be >= 10, --repeats >= 1 and --fewshot >= 5")
    work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    here = describe_local_device(args.device)["name"]
    prior_refs = tuple(args.priors or DEFAULT_PRIORS)
    priors = load_priors(prior_refs, toolkit.layer_types, 1, toolkit.hardware)
    for ref, prior in zip(prior_refs, priors):
        if prior.device_name == here:
            raise ConfigError(f"prior {ref!r} was measured on this machine ({here}): the figure needs other devices")
    settings = MeasureSettings.quick() if args.quick else NETWORK_SETTINGS

    def options(out: Path, **changes: Any) -> ProfileOptions:
        o = ProfileOptions(out=out, device=args.device, progress=False, resume=out.exists(), **changes)
        if args.quick:
            o.kernel_settings = o.network_settings = MeasureSettings.quick()
        return o

    # ---- 1. the full profile ------------------------------------------------------------------------
    full_s = None
    if args.full_profile:
        full = DeviceProfile.load(args.full_profile)
        check_device(full, strict=True)
    else:
        o = options(work / "full.json", rng_seed=args.rng_seed)
        if args.samples is not None:
            o.samples = args.samples
        if args.adaptive_rounds is not None:
            o.adaptive_rounds = args.adaptive_rounds
        _log(f"full profile: its seeds and {o.samples} networks, {o.adaptive_rounds} adaptive rounds at {o.out}")
        t0 = time.perf_counter()
        full = ProfileBuilder(o, toolkit, print_to_stderr).run()
        full_s = time.perf_counter() - t0
    if not full.complete or full.fewshot is not None:
        raise NAToolkitError(f"{full.name}: the full profile must be complete and not few-shot")
    # ---- 2. the few-shot profile (its pool from a stream of its own) --------------------------------
    fo = options(work / "fewshot.json", rng_seed=args.rng_seed + 1, fewshot=args.fewshot, pool=args.pool)
    fo.priors = prior_refs
    _log(f"few-shot profile: {args.fewshot} of {args.pool} candidates, priors {', '.join(prior_refs)}")
    t0 = time.perf_counter()
    fewshot = FewShotProfileBuilder(fo, toolkit, print_to_stderr).run()
    fewshot_s = time.perf_counter() - t0
    if not fewshot.complete:
        raise NAToolkitError(f"few-shot profile stopped early ({fewshot.stopped})")
    # ---- 3. ablation: as many random candidates of the same pool, measured the same way -------------
    seeds = {s: load_seed(s, toolkit) for s in DEFAULT_SEEDS}
    moves = all_move_types(toolkit)
    pool = random_variants(
        seeds, args.pool, np.random.default_rng(fo.rng_seed), fo.max_moves, move_types=moves, max_flops=fo.max_flops
    )
    pick = np.random.default_rng([args.rng_seed, 104729]).permutation(len(pool))[: args.fewshot]
    random_archs = [pool[i].arch for i in pick]
    models = [prior_model(p, toolkit.layer_types) for p in priors]
    names = [p.name for p in priors]
    old_features = FewShotLatencyModel(models, names).features([kernels_of(v.arch) for v in pool])
    previous_archs = [pool[i].arch for i in choose_informative(old_features, args.fewshot)]
    tm = make_time_model("onnxruntime", args.device, settings, 1, full.statistic)
    random_y = np.array([tm.estimate(a).latency_ms for a in random_archs])
    previous_y = np.array([tm.estimate(a).latency_ms for a in previous_archs])
    # ---- 4. the held-out set --------------------------------------------------------------------------
    variants = random_variants(
        seeds,
        args.heldout,
        np.random.default_rng([args.rng_seed, 7919]),
        fo.max_moves,
        move_types=moves,
        exclude=full.network_hashes() | fewshot.network_hashes() | {a.hash for a in random_archs + previous_archs},
        include_seeds=False,
        max_flops=fo.max_flops,
    )
    archs = [v.arch for v in variants]
    _log(f"measuring {len(archs)} held-out networks x {args.repeats} passes")
    t0 = time.perf_counter()
    truth, measurement = measure_heldout(archs, args.device, args.repeats, settings, full.statistic)
    measurement.pop("_per_pass")
    measurement.pop("_reference_ms")
    measurement["measure_s"] = time.perf_counter() - t0
    measurement["load_average_1min"] = {"start": load_start[0], "end": os.getloadavg()[0], "cores": os.cpu_count()}
    # ---- 5. predictions ---------------------------------------------------------------------------------
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the priors' "measured on another device" warnings
        t0 = time.perf_counter()
        few_model = LearnedTimeModel.from_toolkit(toolkit, device=fewshot)
        fit_s = time.perf_counter() - t0
        full_model = LearnedTimeModel.from_toolkit(toolkit, device=full)
    few = accuracy(few_model.predict_ms(archs), truth)
    held_kernels = [kernels_of(a) for a in archs]
    chosen_kernels = [kernels_of(a) for a in fewshot.architectures(toolkit.layer_types)]
    chosen_y = np.array([n.latency_ms(fewshot.statistic) for n in fewshot.networks])
    shares = measured_shares(fewshot)
    ablations = {
        "random_choice": FewShotLatencyModel(models, names).fit_networks(
            [kernels_of(a) for a in random_archs], random_y
        ),
        "no_prior": FewShotLatencyModel([]).fit_networks(chosen_kernels, chosen_y),
        "ridge_only": FewShotLatencyModel(models, names, ("ridge",)).fit_networks(chosen_kernels, chosen_y, shares),
        "groups_only": FewShotLatencyModel(models, names, ("groups",)).fit_networks(chosen_kernels, chosen_y, shares),
        "previous_method": FewShotLatencyModel(models, names, ("ridge",)).fit_networks(
            [kernels_of(a) for a in previous_archs], previous_y
        ),
    }
    by_seed = {}
    for seed in DEFAULT_SEEDS:
        idx = [i for i, v in enumerate(variants) if v.seed == seed]
        if len(idx) >= 3:
            pred = few_model.predict_ms([archs[i] for i in idx])
            by_seed[seed] = {"networks": len(idx), **accuracy(pred, truth[idx])}
    return {
        "within_20pct": few["within_20pct"],
        "spearman": few["spearman"],
        "fewshot": {
            **few,
            "measured_networks": len(fewshot.networks),
            "build_s": fewshot_s,
            "fit_s": fit_s,
            **few_model.model.describe_fit(),  # type: ignore[union-attr]
            "priors": [
                {"name": p.name, "device": p.device, "content_hash": p.content_hash} for p in fewshot.fewshot.priors
            ]
            if fewshot.fewshot
            else [],
            "by_seed": by_seed,
        },
        "full": {
            **accuracy(full_model.predict_ms(archs), truth),
            "kernels": len(full.kernels),
            "networks": len(full.networks),
            "build_s": full_s,
            "elapsed_s": full.elapsed_s,
        },
        **{name: accuracy(m.predict_networks(held_kernels), truth) for name, m in ablations.items()},
        "measurement": measurement,
        "heldout": {
            "networks": len(archs),
            "latency_ms": {"min": float(truth.min()), "median": float(np.median(truth)), "max": float(truth.max())},
        },
        "device": here,
    }


BENCHMARK = Benchmark("fewshot-profile", (__doc__ or "").strip().splitlines()[0], configure, run)

"""`na-toolkit profile`: measure a device profile (kernels + whole networks) for the learned time model."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .command import Command

if TYPE_CHECKING:
    from ..timemodels.profile import DeviceProfile


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="local device: cpu, cuda or cuda:N (default cpu)")
    parser.add_argument(
        "--runtime", choices=("onnxruntime", "torch"), help="runtime that measures (default onnxruntime)"
    )
    parser.add_argument("--out", required=True, help="profile JSON to write, e.g. profiles/NAME.json")
    parser.add_argument("--json", action="store_true", help="print what was measured as JSON")
    parser.add_argument("--samples", type=int, help="random variants of the seeds measured besides them (default 100)")
    parser.add_argument(
        "--seed-net",
        action="append",
        dest="seed_nets",
        metavar="NAME|FILE",
        help="seed network (registered name, IR .json or .onnx file); repeatable; default: simple-cnn, resnet-cifar, "
        "mobilenetv2-cifar",
    )
    parser.add_argument("--max-moves", type=int, help="random moves per sampled network: 1..N (default 6)")
    parser.add_argument("--adaptive-rounds", type=int, help="adaptive sampling rounds (default 2)")
    parser.add_argument("--batch-size", type=int, help="batch size measured (default 1)")
    parser.add_argument("--threads", type=int, help="intra-op threads of the runtime (default 1)")
    parser.add_argument("--rng-seed", type=int, help="seed of the sampling (default 0)")
    parser.add_argument(
        "--time-budget-s",
        type=float,
        default=None,
        help="stop (keeping a valid partial profile, resumable) after S seconds; 0: make the plan and stop",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the partial profile at --out (its stored arguments; one given again must agree)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--quick", action="store_true", help="small measurement minimums (smoke tests only: noisier numbers)"
    )
    few = parser.add_argument_group("few-shot profile (a new device from a few measurements)")
    few.add_argument(
        "--fewshot",
        type=int,
        metavar="N",
        help="measure only N networks, chosen to be informative with the --prior profiles (e.g. 20)",
    )
    few.add_argument(
        "--prior",
        action="append",
        dest="priors",
        metavar="NAME|FILE",
        help="full profile of another device (registered name or JSON path); repeatable; needs --fewshot",
    )
    few.add_argument("--pool", type=int, help="with --fewshot: candidate networks the N are chosen from (default 300)")


def _check_counts(o: Any) -> None:
    """Each count within the bounds a profile's plan keeps (`profile_plan.PLAN_BOUNDS`), said as the option
    before anything is measured: past them (`--rng-seed -1`, `--samples 1e20`) the profile refused its own plan
    once the kernels were set up, as a traceback."""
    from ..errors import ProfileError
    from ..timemodels.profile import DeviceProfile
    from ..timemodels.profile_plan import PLAN_BOUNDS

    bounds = {key: (lo, hi) for key, (_, lo, hi) in PLAN_BOUNDS.items()}
    batch = DeviceProfile.model_fields["batch_size"].metadata
    bounds["batch_size"] = (1, next(m.le for m in batch if getattr(m, "le", None) is not None))
    for key in ("samples", "max_moves", "adaptive_rounds", "batch_size", "threads", "rng_seed", "fewshot", "pool"):
        lo, hi = bounds[key]
        if not lo <= getattr(o, key) <= hi:
            option = "--" + key.replace("_", "-")
            raise ProfileError(f"{option} must be a whole number in [{lo}, {hi}], got {getattr(o, key)}")


def run(args: argparse.Namespace) -> int:
    from ..errors import ProfileError
    from ..timemodels.profile_fewshot import builder_for, fit_summary, fit_summary_line
    from ..timemodels.profile_plan import print_to_stderr
    from ..timemodels.profiler import ProfileOptions

    # the options typed: the others keep ProfileOptions' defaults (a resume: the profile's stored values), and
    # on --resume each typed one must agree with the stored value (argparse defaults are None: never typed)
    given: dict[str, Any] = {
        "device": args.device,
        "runtime": args.runtime,
        "samples": args.samples,
        "seeds": tuple(args.seed_nets) if args.seed_nets else None,
        "max_moves": args.max_moves,
        "adaptive_rounds": args.adaptive_rounds,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "rng_seed": args.rng_seed,
        "fewshot": args.fewshot,
        "priors": tuple(args.priors) if args.priors else None,
        "pool": args.pool,
    }
    given = {name: value for name, value in given.items() if value is not None}
    if args.quick:
        from ..timemodels.measure import MeasureSettings

        given["kernel_settings"] = given["network_settings"] = MeasureSettings.quick()
    o = ProfileOptions(
        out=Path(args.out),
        time_budget_s=args.time_budget_s,
        resume=args.resume,
        progress=not args.no_progress,
        explicit=frozenset(given) - {"network_settings"},
        **given,
    )
    _check_counts(o)  # each count's lower and upper bound
    if o.time_budget_s is not None and not (o.time_budget_s >= 0 and math.isfinite(o.time_budget_s)):
        raise ProfileError(
            f"--time-budget-s must be a number of seconds >= 0 (0: make the plan and stop; leave it out for no "
            f"limit), got {o.time_budget_s}"
        )
    if o.priors and not o.fewshot and not o.resume:
        raise ProfileError("--prior needs --fewshot N (the number of networks to measure on this device)")
    if "pool" in given and not o.fewshot and not o.resume:  # a full profile measures every network it plans
        raise ProfileError("--pool chooses a few-shot profile's networks: it needs --fewshot N")
    if o.fewshot and not o.priors and not o.resume:
        raise ProfileError("--fewshot needs at least one --prior (a full profile of another device)")
    profile = builder_for(o, args.toolkit, print_to_stderr).run()  # its messages as `na-toolkit profile: ...` lines
    state = "complete" if profile.complete else f"partial ({profile.stopped}; continue with --resume)"
    model = fit_summary(profile, args.toolkit.layer_types)
    if args.json:
        doc = {
            "path": str(profile.path),
            "complete": profile.complete,
            "stopped": profile.stopped,
            "kernels": len(profile.kernels),
            "networks": len(profile.networks),
            "failures": len(profile.failures),
            "device": profile.device_name,
            "runtime": profile.runtime_name,
            "elapsed_s": profile.elapsed_s,
            "statistic": profile.statistic,
            "quick": profile.quick,
            # items measured while other processes took the measuring thread's core (unknown: not recorded)
            "contention": profile_contention(profile),
            "fewshot": None
            if profile.fewshot is None
            else {
                "n": profile.fewshot.n,
                "pool": profile.fewshot.pool,
                "priors": [{"name": p.name, "content_hash": p.content_hash} for p in profile.fewshot.priors],
                "model": model,
            },
        }
        json.dump(doc, sys.stdout, indent=2, default=str)
        print()
        return _exit_status(profile)
    if profile.fewshot is not None:
        priors = ", ".join(p.name for p in profile.fewshot.priors)
        print(
            f"{profile.path}: few-shot, {len(profile.networks)} of {profile.fewshot.n} networks measured "
            f"({len(profile.failures)} failures) on {profile.device_name} with {profile.runtime_name}, priors "
            f"{priors}, {profile.elapsed_s:.0f} s, {state}"
        )
        if model is not None:
            print(f"model: {fit_summary_line(model)}")
        _next_steps(profile)
        return _exit_status(profile)
    print(
        f"{profile.path}: {len(profile.kernels)} kernels, {len(profile.networks)} networks, "
        f"{len(profile.failures)} failures on {profile.device_name} with {profile.runtime_name}, "
        f"{profile.elapsed_s:.0f} s, {state}",
        file=sys.stdout,
    )
    _next_steps(profile)
    return _exit_status(profile)


def _exit_status(profile: DeviceProfile) -> int:
    """0, or a profile stopped by Ctrl-C or SIGTERM (saved, resumable) ends as the CLI ends on them
    (`na-toolkit: interrupted`, 130; `na-toolkit: terminated`, 143): raised for `main` to say."""
    from ..errors import Terminated

    if profile.stopped == "interrupted":
        raise KeyboardInterrupt
    if profile.stopped == "terminated":
        raise Terminated
    return 0


def readiness(kernels: int, networks: int, *, complete: bool, fewshot: bool = False) -> tuple[bool, str | None]:
    """Whether the learned model can use a profile of `kernels` and `networks` measurements, and the line
    `profile` and `hw show` say of it (why not yet, or why it uses it poorly; None: nothing to say). A few-shot
    profile measures networks only (its kernels are its priors'). What to do names `--resume` only where the
    profile is partial: a complete one resumed measures nothing more."""
    from ..timemodels.fitting import MIN_NETWORKS
    from ..timemodels.profile_fewshot import MIN_FEWSHOT_NETWORKS

    if fewshot:
        if networks >= MIN_FEWSHOT_NETWORKS:
            return True, None
        todo = (
            "make a new few-shot profile with a larger --fewshot (another --out)"
            if complete
            else "continue it with --resume"
        )
        return False, (
            f"not usable yet: {networks} networks measured, the few-shot model needs {MIN_FEWSHOT_NETWORKS}; {todo}"
        )
    more = (
        "make a new profile with more --samples (another --out): resuming a complete one measures nothing more"
        if complete
        else "continue it with --resume"
    )
    if kernels < 3:
        return False, f"not usable yet: {kernels} kernels measured, the learned model needs 3; {more}"
    if networks < MIN_NETWORKS:
        return True, (
            f"only {networks} networks measured (fewer than {MIN_NETWORKS}): the learned model sums its kernel "
            f"predictions with no overhead calibration, often several times the real latency; {more}"
        )
    return True, None


def profile_contention(profile: DeviceProfile) -> dict[str, int]:
    """How many of a profile's items were measured while other processes took the measuring thread's core, were
    not, or do not say (`measure_noise.contention_counts`; a few-shot profile: its own networks)."""
    from ..timemodels.measure_noise import contention_counts

    return contention_counts(item.measurement for item in [*profile.kernels, *profile.networks])


def contention_text(counts: dict[str, int], clock: str) -> str | None:
    """What `hw show` and `profile` say of `profile_contention`: how many items were measured contended, or
    why that is unknown (None: no items)."""
    from ..timemodels.measure_noise import CONTENDED_WALL_RATIO

    total = sum(counts.values())
    checked = counts["contended"] + counts["not_contended"]
    if not checked:
        if not total:
            return None
        if clock != "thread_cpu":
            return f"cannot tell: measured on the {clock} clock (only a thread-CPU measurement can show it)"
        return "unknown: the profile was written before profiles recorded it"
    unknown = f"; {counts['unknown']} items measured before it was recorded" if counts["unknown"] else ""
    if not counts["contended"]:
        return f"none of {checked} items{unknown}"
    return (
        f"{counts['contended']} of {checked} items measured while other processes took the measuring thread's core "
        f"(wall clock > {CONTENDED_WALL_RATIO:g}x its CPU time): their latencies may read high, profile again on a "
        f"quiet machine{unknown}"
    )


def _next_steps(profile: DeviceProfile) -> None:
    """What the profile's latencies are, and how to look at it and use it."""
    quick = "; measured with --quick (smoke-test minimums, noisier: profile again without it for a search)"
    print(f"latencies: the {profile.statistic} of each item's timed runs{quick if profile.quick else ''}")
    usable, note = readiness(
        len(profile.kernels), len(profile.networks), complete=profile.complete, fewshot=profile.fewshot is not None
    )
    use = f'time_model = {{ name = "learned", options = {{ device = "{Path(str(profile.path)).resolve()}" }} }}'
    print(f"see it: na-toolkit hw show {profile.path}; " + (f"use it: {use}" if usable else str(note)))
    if usable and note:
        print(note)
    counts = profile_contention(profile)
    if counts["contended"]:  # said only when some were: "none" or "unknown" is `hw show`'s
        print(f"contended: {contention_text(counts, str(profile.runtime.get('clock')))}")


COMMANDS = (
    Command(
        "profile",
        "measure a device profile (kernels and networks, or --fewshot N with priors) for the learned time model",
        configure,
        run,
    ),
)

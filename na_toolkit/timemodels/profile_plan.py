"""What a device profile measures and how: the options of `na-toolkit profile` (`ProfileOptions`, whose
`plan()` is stored in the profile so that --resume regenerates the same sampling), the measurement
minimums of kernels and networks, and the measured time model of each runtime (`make_time_model`)."""

from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DeviceWarning, HardwareError, ProfileError, UnknownComponentError
from ..files import DEVICE_PROFILE, document_kind
from .devices import parse_device
from .measure import MeasureSettings
from .measured import MeasuredTimeModel

DEFAULT_SEEDS = ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")
RUNTIMES = ("onnxruntime", "torch")

#: profiling minimums (explicitly smaller than the protocol's defaults: the process is kept busy measuring, so
#: caches and clocks are warm; per item the warm-up covers the session's first-run allocations)
KERNEL_SETTINGS = MeasureSettings(
    warmup_runs=10, warmup_s=0.03, min_runs=20, max_runs=400, max_time_s=0.25, rel_tolerance=0.02, target_sample_s=0.002
)
NETWORK_SETTINGS = MeasureSettings(
    warmup_runs=10, warmup_s=0.2, min_runs=40, max_runs=600, max_time_s=1.0, rel_tolerance=0.015, target_sample_s=0.003
)


# ---- measuring ------------------------------------------------------------------------------------------
def make_time_model(
    runtime: str, device: str, settings: MeasureSettings, threads: int = 1, statistic: str = "min"
) -> MeasuredTimeModel:
    """The measured time model a profile of `runtime` on the local `device` measures with."""
    spec = parse_device(device)
    if runtime == "onnxruntime":
        from .onnxruntime_tm import OnnxRuntimeTimeModel

        # a profile is of the device it names: no fallback to the CPU provider (an error lists the available)
        provider = "cuda" if spec.is_cuda else None
        return OnnxRuntimeTimeModel(
            device=device, provider=provider, settings=settings, intra_op_threads=threads, statistic=statistic
        )
    if runtime == "torch":
        from .torch_tm import TorchTimeModel

        return TorchTimeModel(
            device=device, settings=settings, intra_op_threads=threads, measure_training=False, statistic=statistic
        )
    raise UnknownComponentError("profiling runtime", runtime, RUNTIMES)


@dataclass
class ProfileOptions:
    """What to profile and how (`na-toolkit profile`'s arguments). A resumed profile's stored plan wins."""

    out: Path
    device: str = "cpu"
    runtime: str = "onnxruntime"
    samples: int = 100
    #: registered seed names or IR .json / .onnx files (`profile_resume.resolve_seeds`)
    seeds: tuple[str, ...] = DEFAULT_SEEDS
    max_moves: int = 6
    adaptive_rounds: int = 2
    batch_size: int = 1
    threads: int = 1
    #: the statistic a profile's latencies are: the lower envelope by default (see measured.STATISTICS)
    statistic: str = "min"
    rng_seed: int = 0
    time_budget_s: float | None = None
    resume: bool = False
    progress: bool = True
    #: checkpoint at least this often (seconds)
    save_every_s: float = 5.0
    kernel_settings: MeasureSettings = KERNEL_SETTINGS
    network_settings: MeasureSettings = NETWORK_SETTINGS
    max_flops: float | None = 2e9
    #: few-shot (profile_fewshot.py): measure this many networks chosen with the latency structure of the
    #: `priors` (other devices' profiles: paths or registered names) among `pool` sampled candidates; 0: a full profile
    fewshot: int = 0
    priors: tuple[str, ...] = ()
    pool: int = 300
    #: the options the caller set explicitly (the CLI: the arguments typed): on --resume each must agree with
    #: the profile's stored one (`OPTION_FLAGS` names them in the error); the others take the stored values
    explicit: frozenset[str] = field(default_factory=frozenset)

    def plan(self) -> dict[str, Any]:
        if self.fewshot:
            return {
                "fewshot": self.fewshot,
                "pool": self.pool,
                "seeds": list(self.seeds),
                "max_moves": self.max_moves,
                "rng_seed": self.rng_seed,
                "threads": self.threads,
                "max_flops": self.max_flops,
                "statistic": self.statistic,
            }
        return {
            "samples": self.samples,
            # `samples` variants besides the seeds (a plan without it, made before: the seeds among them)
            SEEDS_BESIDE_SAMPLES: True,
            "seeds": list(self.seeds),
            "max_moves": self.max_moves,
            "adaptive_rounds": self.adaptive_rounds,
            "rng_seed": self.rng_seed,
            "threads": self.threads,
            "max_flops": self.max_flops,
            "statistic": self.statistic,
        }


#: the plan key of a profile that measures its seeds and `samples` variants besides: an older plan lacks it,
#: and its `samples` networks count the seeds (so it resumes to the networks it planned)
SEEDS_BESIDE_SAMPLES = "seeds_beside_samples"


def initial_count(plan: dict[str, Any], samples: int, seeds: dict[str, Any]) -> int:
    """How many networks a full profile's initial sample holds: its distinct seeds and `samples` variants, or
    for a plan made before the seeds were measured besides (`SEEDS_BESIDE_SAMPLES`), `samples` in all."""
    return samples + len({a.hash for a in seeds.values()}) if plan.get(SEEDS_BESIDE_SAMPLES) else samples


#: the `na-toolkit profile` argument of each option whose stored value a resume keeps
OPTION_FLAGS = {
    "device": "--device",
    "runtime": "--runtime",
    "samples": "--samples",
    "seeds": "--seed-net",
    "max_moves": "--max-moves",
    "adaptive_rounds": "--adaptive-rounds",
    "batch_size": "--batch-size",
    "threads": "--threads",
    "rng_seed": "--rng-seed",
    "kernel_settings": "--quick",
    "fewshot": "--fewshot",
    "pool": "--pool",
    "priors": "--prior",
}


# ---- checks of a stored plan and settings (a profile file is user input: --resume runs what it says) ------
#: (type, lowest, highest) of each plan entry a resumed profile takes; a plan of 10**9 samples ran for ever
#: most seed networks a plan names
MAX_SEEDS = 1_000
PLAN_BOUNDS: dict[str, tuple[type, float, float]] = {
    "samples": (int, 0, 1_000_000),
    "max_moves": (int, 1, 1_000),
    "adaptive_rounds": (int, 0, 1_000),
    "adaptive_done": (int, 0, 1_000),
    "rng_seed": (int, 0, 2**63 - 1),
    "threads": (int, 1, 1_024),
    "max_flops": (float, 1.0, 1e18),
    "fewshot": (int, 0, 10_000),
    "pool": (int, 1, 1_000_000),
}
#: the same for each measurement setting (MeasureSettings' fields; its own checks order them)
SETTINGS_BOUNDS: dict[str, tuple[type, float, float]] = {
    "warmup_runs": (int, 0, 1_000_000),
    "warmup_s": (float, 0.0, 3_600.0),
    "min_runs": (int, 3, 10_000_000),
    "max_runs": (int, 3, 10_000_000),
    "max_time_s": (float, 1e-6, 3_600.0),
    "rel_tolerance": (float, 1e-9, 1.0),
    "calls_per_run": (int, 0, 10_000_000),
    "target_sample_s": (float, 1e-9, 60.0),
}


def _check_bounded(where: str, doc: dict[str, Any], bounds: dict[str, tuple[type, float, float]]) -> None:
    for key, (kind, lo, hi) in bounds.items():
        value = doc.get(key)
        if value is None:
            continue
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"{where}.{key} must be an integer, got {value!r}")
        if not is_number or not lo <= value <= hi:  # NaN fails both comparisons
            raise ValueError(f"{where}.{key} must be a number in [{lo:g}, {hi:g}], got {value!r}")


def check_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """`plan` if a resumed profile may run it: counts within bounds, seeds a list of names; else ValueError."""
    _check_bounded("plan", plan, PLAN_BOUNDS)
    seeds = plan.get("seeds")
    if seeds is not None and not (
        isinstance(seeds, list)
        and 0 < len(seeds) <= MAX_SEEDS
        and all(isinstance(s, str) and 0 < len(s) <= 4096 for s in seeds)
    ):
        raise ValueError(f"plan.seeds must be a non-empty list of seed names or files, got {str(seeds)[:200]}")
    networks = plan.get("seed_networks")
    if networks is not None and not (
        isinstance(seeds, list)
        and isinstance(networks, list)
        and len(networks) == len(seeds)
        and all(
            isinstance(n, dict)
            and set(n) == {"hash", "arch"}
            and isinstance(n["hash"], str)
            and re.fullmatch(r"[0-9a-f]{16}", n["hash"])
            and isinstance(n["arch"], dict)
            for n in networks
        )
    ):
        raise ValueError(
            "plan.seed_networks must be a list of {hash, arch} tables, one per entry of plan.seeds, got "
            f"{str(networks)[:200]}"
        )
    statistic = plan.get("statistic")
    if statistic is not None and not isinstance(statistic, str):
        raise ValueError(f"plan.statistic must be a string, got {statistic!r}")
    return plan


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` ({"kernel": {...}, "network": {...}}) if each is a table of bounded measurement settings."""
    for part, doc in settings.items():
        if not isinstance(doc, dict):
            raise ValueError(f"settings.{part} must be a table of measurement settings, got {doc!r}")
        _check_bounded(f"settings.{part}", doc, SETTINGS_BOUNDS)
        gc = doc.get("disable_gc")
        if gc is not None and not isinstance(gc, bool):
            raise ValueError(f"settings.{part}.disable_gc must be true or false, got {gc!r}")
    return settings


def check_record(part: str, record: dict[str, Any]) -> dict[str, Any]:
    """A profile's `runtime` or `device` record (`part`) if the values the toolkit acts on are ones it knows;
    else ValueError naming the field and the allowed values (a hand edit taken silently would measure or
    predict something else than the profile says)."""
    from .measured import STATISTICS

    def refuse(key: str, allowed: str) -> None:
        raise ValueError(f"{part}.{key} is {record[key]!r}; allowed: {allowed}")

    if part == "runtime":
        if "name" in record and record["name"] not in RUNTIMES:
            refuse("name", ", ".join(RUNTIMES))
        for key in ("intra_op_threads", "inter_op_threads"):
            value = record.get(key)
            if key in record and (type(value) is not int or value < 1):
                refuse(key, "a whole number >= 1")
        if "statistic" in record and record["statistic"] not in STATISTICS:
            refuse("statistic", ", ".join(STATISTICS))
        return record
    if "device" in record:
        try:
            kind = parse_device(str(record["device"])).kind
        except HardwareError:
            refuse("device", "cpu, cuda or cuda:N")
        if "kind" in record and record["kind"] != kind:
            refuse("kind", f"{kind!r} (device.device is {record['device']!r})")
    return record


def check_new_out(out: Path) -> None:
    """A new profile's `--out` must not exist: an existing profile is continued with `--resume`, and any other
    file (an architecture, a hardware model) is never written over; and it ends in .json, as what reads a
    profile by its path tells it by that suffix (`--out p.onnx` wrote a profile `hw show` read as a model)."""
    if not out.exists():
        if out.suffix.lower() != ".json":
            raise ProfileError(f"--out {str(out)!r}: a device profile is a JSON file; give a path ending in .json")
        return
    found = document_kind(out)
    if found == DEVICE_PROFILE:
        raise ProfileError(f"{str(out)!r} exists; pass --resume to continue it or choose another --out")
    what = f"an existing {found}" if found else ("a folder" if out.is_dir() else "an existing file")
    raise ProfileError(f"--out {str(out)!r} is {what}, not a device profile; choose another --out")


def warn_seeds_over_cap(seeds: dict[str, Any], max_flops: float | None) -> None:
    """A DeviceWarning naming the seed networks over the plan's `max_flops`: each is measured, but none of its
    variants (a move or two from it, over the cap too), so the profile holds no family around it."""
    over = [
        f"{name} ({arch.flops / 1e9:.3g} GFLOPs)"
        for name, arch in seeds.items()
        if max_flops and arch.flops > max_flops
    ]
    if over:
        warnings.warn(
            f"seed network {', '.join(over)} is over the plan's max_flops of {max_flops / 1e9:.3g} GFLOPs: it is "
            "measured, but its variants are not (they are over it too), so the learned model knows no networks like it "
            "(ProfileOptions(max_flops=...) raises the cap, at the cost of longer measurements)",
            DeviceWarning,
            stacklevel=3,
        )


def print_to_stderr(msg: str) -> None:
    """What `na-toolkit profile` shows of a `ProfileBuilder`'s progress messages (its `log`; a library's goes
    to the `na_toolkit.timemodels.profiler` logger): one `na-toolkit profile: ...` line on stderr each."""
    print(f"na-toolkit profile: {msg}", file=sys.stderr)

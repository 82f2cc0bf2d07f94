"""Device profiles: measured kernels and whole networks of one device + runtime, as schema-versioned JSON.

A profile is what the `learned` time model is fitted from when it is loaded (data, never pickled models).
`na-toolkit profile` builds one (`ProfileBuilder`):

1. sample whole networks: the seeds and random move sequences applied to them (`random_variants`);
2. for each network, measure its kernels that are not measured yet (kernels.py: one runtime operator after
   fusion, measured as a standalone network), then the network itself;
3. adaptive rounds (nn-Meter, Zhang et al. MobiSys 2021, section 4.3): fit the model, find the kernels whose
   cross-validated prediction errs most and measure configurations around them (channels, spatial size,
   kernel size, stride perturbed), and find the networks whose calibrated prediction errs most and measure
   networks one random move away from them.

The profile is written atomically (temp file + `os.replace`) after every network and at least every few
seconds, so an interrupted run (Ctrl-C, a time budget, a crash) leaves a valid partial profile that
`--resume` continues: the plan is regenerated from the stored arguments and measured items are skipped.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArchitectureError, NAToolkitError, ProfileError, TimeModelError
from ..ir.architecture import Architecture
from .kernels import Kernel, kernel_architecture, kernels_of, measurable, neighbour_kernel_architectures
from .measure import MeasureSettings

PROFILE_SCHEMA = "na_toolkit.device_profile"
PROFILE_SCHEMA_VERSION = 1
DEFAULT_SEEDS = ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")
RUNTIMES = ("onnxruntime", "torch")

#: profiling minimums (explicitly smaller than DESIGN.md's defaults: the process is kept busy measuring, so
#: caches and clocks are warm; per item the warm-up covers the session's first-run allocations)
KERNEL_SETTINGS = MeasureSettings(
    warmup_runs=10, warmup_s=0.03, min_runs=20, max_runs=400, max_time_s=0.25, rel_tolerance=0.02, target_sample_s=0.002
)
NETWORK_SETTINGS = MeasureSettings(
    warmup_runs=10, warmup_s=0.2, min_runs=40, max_runs=600, max_time_s=1.0, rel_tolerance=0.015, target_sample_s=0.003
)
#: an item whose cross-validated error exceeds this (|log ratio|) is measured again before new samples are
#: drawn around it: on a shared machine a large error is often a measurement taken while the machine was busy
REMEASURE_LOG_ERROR = 0.095
#: every this many seconds the profiler times a reference network (the largest seed); a reading this much
#: slower than the best so far marks the items measured since the previous reading as taken in a slow
#: spell (on a shared machine they last minutes and slow every kernel by 10-40%), and those items are
#: measured again at the end of the phase, keeping the lower value
SPEED_CHECK_EVERY_S = 15.0
SLOW_SPELL_FACTOR = 1.10
#: when more than this share of all items fall in slow spells, the device is unsteady (not briefly busy):
#: they are not measured again (seen on an H200 at batch 1: the reference read 1.5-2.9 ms over one minute)
UNSTEADY_SHARE = 0.5


class ProfileDeviceWarning(UserWarning):
    """A profile measured on another device than the one here."""


# ---- records --------------------------------------------------------------------------------------------
def measurement_summary(details: dict[str, Any]) -> dict[str, Any]:
    """The part of a Measurement a profile keeps per item (the context is stored once per profile)."""
    m = details["measurement"]
    keep = ("median_ms", "p10_ms", "p90_ms", "iqr_ms", "min_ms", "cv", "runs", "calls_per_run", "stable", "wall_median_ms")
    out = {k: m[k] for k in keep if k in m}
    nv = details.get("nvml") or {}
    if nv.get("before") is not None:  # GPU: keep the telemetry per item
        out["nvml"] = nv
    return out


@dataclass(kw_only=True)
class MeasuredItem:
    """One measured architecture of a profile (a kernel's standalone network or a whole network)."""

    #: Architecture JSON
    arch: dict[str, Any]
    measurement: dict[str, Any]
    phase: str = "initial"
    remeasured: int = 0

    def latency_ms(self, statistic: str = "median") -> float:
        return float(self.measurement[f"{statistic}_ms"])


@dataclass(kw_only=True)
class KernelRecord(MeasuredItem):
    key: str
    kind: str


@dataclass(kw_only=True)
class NetworkRecord(MeasuredItem):
    hash: str
    seed: str
    moves: list[dict[str, Any]]


def _record(cls: type, doc: Any, where: str):
    if not isinstance(doc, dict):
        raise ProfileError(f"{where}: expected an object, got {type(doc).__name__}")
    names = {f.name for f in fields(cls)}
    required = {"key", "kind", "arch", "measurement"} if cls is KernelRecord else {"hash", "seed", "moves", "arch", "measurement"}
    missing = required - set(doc)
    if missing:
        raise ProfileError(f"{where}: missing field(s) {sorted(missing)}")
    m = doc["measurement"]
    if not isinstance(m, dict) or not isinstance(m.get("median_ms"), (int, float)) or not m["median_ms"] > 0:
        raise ProfileError(f"{where}: measurement needs a positive 'median_ms', got {m!r}")
    return cls(**{k: v for k, v in doc.items() if k in names})


@dataclass
class DeviceProfile:
    """A measured device profile. `device` and `software` describe where it was measured; `plan` holds the
    arguments that regenerate the sampling plan on --resume."""

    name: str
    device: dict[str, Any]
    software: dict[str, Any]
    runtime: dict[str, Any]
    batch_size: int
    plan: dict[str, Any]
    settings: dict[str, Any]
    nvml: dict[str, Any]
    kernels: list[KernelRecord] = field(default_factory=list)
    networks: list[NetworkRecord] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: [elapsed seconds, reference network latency in ms]: the machine's speed over the run
    speed_checks: list[list[float]] = field(default_factory=list)
    complete: bool = False
    stopped: str = ""
    created: str = ""
    updated: str = ""
    elapsed_s: float = 0.0
    path: Path | None = None

    # ---- identity of the device -------------------------------------------------------------------------
    @property
    def device_name(self) -> str:
        return str(self.device.get("name", "?"))

    @property
    def runtime_name(self) -> str:
        return str(self.runtime.get("name", "?"))

    @property
    def statistic(self) -> str:
        """Which statistic of the samples the profile's latencies are (see measured.STATISTICS)."""
        return str(self.runtime.get("statistic", "median"))

    def kernel_keys(self) -> set[str]:
        return {k.key for k in self.kernels}

    def network_hashes(self) -> set[str]:
        return {n.hash for n in self.networks}

    # ---- JSON -------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "schema": PROFILE_SCHEMA,
            "schema_version": PROFILE_SCHEMA_VERSION,
            "name": self.name,
            "complete": self.complete,
            "stopped": self.stopped,
            "created": self.created,
            "updated": self.updated,
            "elapsed_s": round(self.elapsed_s, 3),
            "device": self.device,
            "software": self.software,
            "runtime": self.runtime,
            "batch_size": self.batch_size,
            "plan": self.plan,
            "settings": self.settings,
            "nvml": self.nvml,
            "counts": {"kernels": len(self.kernels), "networks": len(self.networks), "failures": len(self.failures)},
            "kernels": [asdict(k) for k in self.kernels],
            "networks": [asdict(n) for n in self.networks],
            "failures": self.failures,
            "speed_checks": self.speed_checks,
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write atomically: a temp file in the same folder, fsync, then os.replace (never a torn file)."""
        target = Path(path or self.path or f"{self.name}.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        self.updated = _now()
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        text = json.dumps(self.to_json(), separators=(",", ":"), default=str)
        with open(tmp, "w") as f:
            f.write(text)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        self.path = target
        return target

    @classmethod
    def from_json(cls, doc: Any, where: str = "profile") -> DeviceProfile:
        if not isinstance(doc, dict) or doc.get("schema") != PROFILE_SCHEMA:
            raise ProfileError(f"{where} is not a na_toolkit device profile (no \"schema\": \"{PROFILE_SCHEMA}\")")
        version = doc.get("schema_version")
        if version != PROFILE_SCHEMA_VERSION:
            raise ProfileError(
                f"{where} has profile schema_version {version!r}; this toolkit reads {PROFILE_SCHEMA_VERSION}: "
                "rebuild it with `na-toolkit profile`"
            )
        for key, typ in (("name", str), ("device", dict), ("software", dict), ("runtime", dict), ("batch_size", int),
                         ("plan", dict), ("settings", dict), ("kernels", list), ("networks", list)):
            if not isinstance(doc.get(key), typ):
                raise ProfileError(f"{where}: field {key!r} must be a {typ.__name__}, got {type(doc.get(key)).__name__}")
        kernels = [_record(KernelRecord, k, f"{where}: kernels[{i}]") for i, k in enumerate(doc["kernels"])]
        networks = [_record(NetworkRecord, n, f"{where}: networks[{i}]") for i, n in enumerate(doc["networks"])]
        return cls(
            name=doc["name"],
            device=doc["device"],
            software=doc["software"],
            runtime=doc["runtime"],
            batch_size=doc["batch_size"],
            plan=doc["plan"],
            settings=doc["settings"],
            nvml=doc.get("nvml") or {},
            kernels=kernels,
            networks=networks,
            failures=list(doc.get("failures") or []),
            speed_checks=list(doc.get("speed_checks") or []),
            complete=bool(doc.get("complete")),
            stopped=str(doc.get("stopped") or ""),
            created=str(doc.get("created") or ""),
            updated=str(doc.get("updated") or ""),
            elapsed_s=float(doc.get("elapsed_s") or 0.0),
        )

    @classmethod
    def load(cls, path: str | Path) -> DeviceProfile:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ProfileError(f"cannot read profile {str(p)!r}: {exc.strerror or exc}") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProfileError(f"profile {str(p)!r} is corrupt (not valid JSON: {exc}); rebuild it with `na-toolkit profile`") from None
        prof = cls.from_json(doc, where=f"profile {str(p)!r}")
        prof.path = p
        return prof

    def architectures(self) -> list[Architecture]:
        return [Architecture.from_json(n.arch) for n in self.networks]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---- the local device ----------------------------------------------------------------------------------
def describe_local_device(device: str) -> dict[str, Any]:
    """Exact description of a local device: CPU model and core count, and the GPU (name, driver, memory)."""
    import platform

    from ..bench.machine import cpu_model
    from .measured import DeviceSpec, describe_device
    from .nvml import Nvml

    spec = DeviceSpec.parse(device)
    out: dict[str, Any] = {
        "device": str(spec),
        "kind": spec.kind,
        "name": describe_device(spec),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
    }
    if spec.is_cuda:
        with Nvml() as nv:
            snap = nv.snapshot(spec.index)
            out["gpu"] = None if snap is None else {
                "name": snap.name, "uuid": snap.uuid, "driver_version": snap.driver_version,
                "memory_total_bytes": snap.memory_total_bytes, "power_limit_w": snap.power_limit_w,
            }
    return out


def local_device_name(kind: str, index: int = 0) -> str:
    from .measured import DeviceSpec, describe_device

    return describe_device(DeviceSpec(kind, index))


def check_device(profile: DeviceProfile, strict: bool = False) -> str | None:
    """Compare the profile's device with this machine's device of the same kind. Returns the warning text
    (also issued as ProfileDeviceWarning) when they differ; strict=True raises ProfileError instead."""
    kind = profile.device.get("kind", "cpu")
    here = local_device_name(kind, _index(profile.device.get("device", "cpu")))
    there = profile.device_name
    if here == there:
        return None
    msg = (
        f"profile {profile.name!r} was measured on {there!r} ({profile.device.get('device', '?')}), "
        f"but this machine's {kind} is {here!r}"
    )
    if strict:
        raise ProfileError(msg + "; build a new profile here instead of resuming that one")
    warnings.warn(msg + "; its latencies describe that device", ProfileDeviceWarning, stacklevel=3)
    return msg


def _index(device: str) -> int:
    _, _, idx = str(device).partition(":")
    return int(idx) if idx.isdigit() else 0


def resolve_profile_path(device: str | Path, toolkit: Any = None) -> Path:
    """A profile file from a path or a registered profile name (`na-toolkit hw list` shows them)."""
    p = Path(str(device))
    if p.suffix == ".json" or p.exists():
        if not p.exists():
            raise ProfileError(f"profile file {str(p)!r} does not exist")
        return p
    from ..errors import UnknownComponentError
    from ..plugins import get_toolkit

    tk = toolkit or get_toolkit()
    profiles = {name: src for name, src in tk.hardware.items() if getattr(src, "kind", "") == "profile"}
    if str(device) not in profiles:
        raise UnknownComponentError("device profile", str(device), profiles)
    return Path(profiles[str(device)].path)


# ---- sampling networks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """A network made from a seed by a sequence of moves."""

    seed: str
    moves: tuple[dict[str, Any], ...]
    arch: Architecture


def load_seed(seed: str, toolkit: Any = None) -> Architecture:
    """A registered seed by name, or an architecture JSON file."""
    from ..plugins import get_toolkit

    tk = toolkit or get_toolkit()
    if seed in tk.seeds:
        return tk.seeds.get(seed).build()
    p = Path(seed)
    if p.exists():
        return Architecture.load(p)
    from ..errors import UnknownComponentError

    raise UnknownComponentError("seed network (name or architecture JSON file)", seed, tk.seeds.names())


def random_move(arch: Architecture, rng: np.random.Generator, operations: list[Any], tries: int = 8):
    """One random valid move: an operation drawn uniformly, its parameters by the operation's own
    `sample` (which respects its masks). None when no operation applies."""
    for _ in range(tries):
        op = operations[int(rng.integers(len(operations)))]
        try:
            params = op.sample(arch, rng)
            if params is None:
                continue
            return op.name, params, op.apply(arch, **params)
        except (NAToolkitError, ValueError):  # a plugin move that fails is skipped, not fatal
            continue
    return None


def random_variants(
    seeds: dict[str, Architecture],
    count: int,
    rng: np.random.Generator,
    max_moves: int = 6,
    toolkit: Any = None,
    exclude: Iterable[str] = (),
    include_seeds: bool = True,
    max_flops: float | None = None,
) -> list[Variant]:
    """`count` distinct networks: the seeds themselves (if include_seeds) and random move sequences of
    0..max_moves moves from a seed drawn in turn. Hashes in `exclude` are skipped."""
    from ..plugins import get_toolkit

    tk = toolkit or get_toolkit()
    operations = [tk.operations.get(n) for n in tk.operations.names()]
    seen = set(exclude)
    out: list[Variant] = []
    names = list(seeds)
    if include_seeds:
        for name in names:
            a = seeds[name]
            if a.hash not in seen and len(out) < count:
                seen.add(a.hash)
                out.append(Variant(name, (), a))
    attempts = 0
    while len(out) < count and attempts < 50 * count + 100:
        attempts += 1
        name = names[attempts % len(names)]
        arch = seeds[name]
        moves: list[dict[str, Any]] = []
        for _ in range(int(rng.integers(1, max_moves + 1)) if operations else 0):
            step = random_move(arch, rng, operations)
            if step is None:
                break
            op_name, params, arch = step
            moves.append({"operation": op_name, "params": _plain(params)})
        if arch.hash in seen or (max_flops is not None and arch.flops > max_flops):
            continue
        seen.add(arch.hash)
        out.append(Variant(name, tuple(moves), arch))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---- measuring ------------------------------------------------------------------------------------------
def make_time_model(runtime: str, device: str, settings: MeasureSettings, threads: int = 1, statistic: str = "min"):
    if runtime == "onnxruntime":
        from .onnxruntime_tm import OnnxRuntimeTimeModel

        # a profile is of the device it names: no fallback to the CPU provider (an error lists the available)
        provider = "cuda" if device.startswith("cuda") else None
        return OnnxRuntimeTimeModel(
            device=device, provider=provider, settings=settings, intra_op_threads=threads, statistic=statistic
        )
    if runtime == "torch":
        from .torch_tm import TorchTimeModel

        return TorchTimeModel(
            device=device, settings=settings, intra_op_threads=threads, measure_training=False, statistic=statistic
        )
    from ..errors import UnknownComponentError

    raise UnknownComponentError("profiling runtime", runtime, RUNTIMES)


@dataclass
class ProfileOptions:
    out: Path
    device: str = "cpu"
    runtime: str = "onnxruntime"
    samples: int = 100
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

    def plan(self) -> dict[str, Any]:
        return {
            "samples": self.samples, "seeds": list(self.seeds), "max_moves": self.max_moves,
            "adaptive_rounds": self.adaptive_rounds, "rng_seed": self.rng_seed, "threads": self.threads,
            "max_flops": self.max_flops, "statistic": self.statistic,
        }


class Interrupted(Exception):
    pass


class ProfileBuilder:
    """Builds (or resumes) a profile; see the module docstring. `run()` returns the profile, saved."""

    def __init__(self, options: ProfileOptions, toolkit: Any = None, log: Callable[[str], None] | None = None):
        self.o = options
        self.toolkit = toolkit
        self.log = log or (lambda msg: print(f"na-toolkit profile: {msg}", file=sys.stderr))
        self._stop_reason = ""
        self._last_save = 0.0
        self._t_start = 0.0
        self._elapsed_before = 0.0
        self._bar: Any = None
        self._reference: Architecture | None = None
        self._last_check = 0.0
        self._best_speed_ms = float("inf")
        self._last_check_ms = 0.0
        self._since_check: list[MeasuredItem] = []
        self._suspects: list[MeasuredItem] = []

    # ---- setup ------------------------------------------------------------------------------------------
    def _new_profile(self) -> DeviceProfile:
        from ..bench.machine import machine_info
        from .nvml import Nvml

        o = self.o
        info = machine_info()
        with Nvml() as nv:
            nvml = {"status": nv.status()}
            if nv.available and o.device.startswith("cuda"):
                snap = nv.snapshot(_index(o.device))
                nvml["start"] = None if snap is None else snap.to_json()
        tm_k = make_time_model(o.runtime, o.device, o.kernel_settings, o.threads, o.statistic)
        runtime = {"name": o.runtime, **{k: v for k, v in tm_k.cache_settings().items() if k not in ("measure", "train_measure")}}
        return DeviceProfile(
            name=o.out.stem,
            device=describe_local_device(o.device),
            software={"python": info["python"], "platform": info["platform"], "libraries": info["libraries"]},
            runtime=runtime,
            batch_size=o.batch_size,
            plan=o.plan(),
            settings={"kernel": o.kernel_settings.to_json(), "network": o.network_settings.to_json()},
            nvml=nvml,
            created=_now(),
        )

    def _load_for_resume(self) -> DeviceProfile:
        o = self.o
        prof = DeviceProfile.load(o.out)
        check_device(prof, strict=True)
        if prof.runtime_name != o.runtime:
            raise ProfileError(
                f"profile {str(o.out)!r} was measured with runtime {prof.runtime_name!r}, not {o.runtime!r}; "
                "resume it with the same --runtime"
            )
        # the stored plan wins: a resumed profile continues the sampling it started
        plan = prof.plan
        o.samples = int(plan.get("samples", o.samples))
        o.seeds = tuple(plan.get("seeds", o.seeds))
        o.max_moves = int(plan.get("max_moves", o.max_moves))
        o.adaptive_rounds = int(plan.get("adaptive_rounds", o.adaptive_rounds))
        o.rng_seed = int(plan.get("rng_seed", o.rng_seed))
        o.threads = int(plan.get("threads", o.threads))
        o.max_flops = plan.get("max_flops", o.max_flops)
        o.statistic = prof.statistic
        o.batch_size = prof.batch_size
        if "kernel" in prof.settings:
            o.kernel_settings = MeasureSettings.from_json(prof.settings["kernel"])
            o.network_settings = MeasureSettings.from_json(prof.settings["network"])
        self._elapsed_before = prof.elapsed_s
        prof.complete = False
        prof.stopped = ""
        return prof

    # ---- bookkeeping ------------------------------------------------------------------------------------
    def _checkpoint(self, prof: DeviceProfile, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last_save >= self.o.save_every_s:
            prof.elapsed_s = self._elapsed_before + (now - self._t_start)
            prof.save(self.o.out)
            self._last_save = now

    def _should_stop(self) -> bool:
        if self._stop_reason:
            return True
        budget = self.o.time_budget_s
        if budget is not None and time.perf_counter() - self._t_start >= budget:
            self._stop_reason = f"time budget of {budget:g} s reached"
            return True
        return False

    def _on_sigint(self, signum, frame) -> None:
        if self._stop_reason == "interrupted":  # second Ctrl-C: stop now (the last checkpoint stays valid)
            raise KeyboardInterrupt
        self._stop_reason = "interrupted"
        self.log("interrupted: finishing the current measurement and saving the partial profile (Ctrl-C again to abort)")

    def _progress(self, total: int, desc: str):
        from tqdm import tqdm

        if self._bar is not None:
            self._bar.close()
        self._bar = tqdm(total=total, desc=desc, unit="item", file=sys.stderr, disable=not self.o.progress,
                         dynamic_ncols=True, mininterval=0.5, smoothing=0.1)
        return self._bar

    # ---- measuring one item -----------------------------------------------------------------------------
    def _measure_kernel(self, prof: DeviceProfile, kernel: Kernel, tm: Any, phase: str, arch: Architecture | None = None) -> None:
        try:
            karch = arch or kernel_architecture(kernel, layer_types=self._layer_types())
            est = tm.estimate(karch, prof.batch_size)
        except (TimeModelError, ArchitectureError) as exc:
            prof.failures.append({"what": "kernel", "key": kernel.key, "error": str(exc)})
            return
        rec = KernelRecord(key=kernel.key, kind=kernel.kind, arch=karch.to_json(), measurement=measurement_summary(est.details), phase=phase)
        prof.kernels.append(rec)
        self._since_check.append(rec)  # judged by the next speed check

    def _measure_network(self, prof: DeviceProfile, v: Variant, tm: Any, phase: str) -> None:
        try:
            est = tm.estimate(v.arch, prof.batch_size)
        except TimeModelError as exc:
            prof.failures.append({"what": "network", "hash": v.arch.hash, "error": str(exc)})
            return
        rec = NetworkRecord(
            hash=v.arch.hash, seed=v.seed, moves=list(v.moves), arch=v.arch.to_json(),
            measurement=measurement_summary(est.details), phase=phase,
        )
        prof.networks.append(rec)
        self._since_check.append(rec)  # judged by the next speed check

    def _layer_types(self):
        from ..plugins import get_toolkit

        return (self.toolkit or get_toolkit()).layer_types

    # ---- phases -----------------------------------------------------------------------------------------
    def _measure_variants(self, prof: DeviceProfile, variants: list[Variant], tm_k: Any, tm_n: Any, phase: str, desc: str) -> None:
        known_k, known_n = prof.kernel_keys(), prof.network_hashes()
        failed = {f.get("key") or f.get("hash") for f in prof.failures}
        todo: list[tuple[str, Any]] = []
        planned_k: set[str] = set()
        for v in variants:
            if v.arch.hash in known_n or v.arch.hash in failed:
                continue
            for k in kernels_of(v.arch):
                if measurable(k) and k.key not in known_k and k.key not in planned_k and k.key not in failed:
                    planned_k.add(k.key)
                    todo.append(("kernel", k))
            todo.append(("network", v))
        if not todo:
            return
        bar = self._progress(len(todo), desc)
        for what, item in todo:
            if self._should_stop():
                break
            if what == "kernel":
                self._measure_kernel(prof, item, tm_k, phase)
            else:
                self._measure_network(prof, item, tm_n, phase)
            bar.update(1)
            self._checkpoint(prof)
            self._speed_check(prof, tm_k)
        self._remeasure_slow_spells(prof, tm_k, tm_n)

    # ---- slow spells ------------------------------------------------------------------------------------
    def _speed_check(self, prof: DeviceProfile, tm: Any, force: bool = False) -> None:
        now = time.perf_counter()
        if self._reference is None or not (force or now - self._last_check >= SPEED_CHECK_EVERY_S):
            return
        self._last_check = now
        try:
            ms = tm.measure_again(self._reference, prof.batch_size).latency_ms
        except TimeModelError:
            return
        prof.speed_checks.append([round(self._elapsed_before + now - self._t_start, 2), ms])
        self._best_speed_ms = min(self._best_speed_ms, ms)
        # the interval is suspect when the reading at either end is slow against the best reading so far
        limit = SLOW_SPELL_FACTOR * self._best_speed_ms
        if ms > limit or self._last_check_ms > limit:
            self._suspects += self._since_check
        self._since_check = []
        self._last_check_ms = ms

    def _measure_record_again(self, prof: DeviceProfile, rec: MeasuredItem, tm: Any) -> None:
        """Measure a recorded item again; keep the lower value of the profile's statistic (a busy machine
        only ever adds time)."""
        try:
            est = tm.measure_again(Architecture.from_json(rec.arch, layer_types=self._layer_types()), prof.batch_size)
        except TimeModelError:
            return
        new = measurement_summary(est.details)
        rec.remeasured += 1
        if new[f"{prof.statistic}_ms"] < rec.latency_ms(prof.statistic):
            rec.measurement = new

    def _remeasure_slow_spells(self, prof: DeviceProfile, tm_k: Any, tm_n: Any) -> None:
        if self._should_stop():
            return
        self._speed_check(prof, tm_k, force=True)
        suspects, self._suspects = self._suspects, []
        if not suspects:
            return
        total = len(prof.kernels) + len(prof.networks)
        if len(suspects) > UNSTEADY_SHARE * total:
            # not a spell but the device's normal state (a GPU at batch 1 whose clocks and launch overhead
            # wander, say): measuring everything again would double the time and change nothing
            readings = [ms for _t, ms in prof.speed_checks]
            self.log(f"the reference network's latency wandered between {min(readings):.3g} and "
                     f"{max(readings):.3g} ms over the run, so {len(suspects)} of {total} items fall in a "
                     "'slow spell': the device is unsteady rather than briefly busy; they are kept as measured")
            return
        self.log(f"{len(suspects)} items were measured in a slow spell of the machine: measuring them again")
        bar = self._progress(len(suspects), "slow-spell re-measure")
        for rec in suspects:
            if self._should_stop():
                self._suspects = suspects  # not done: a resumed run cannot know them, the values stay valid
                return
            self._measure_record_again(prof, rec, tm_k if isinstance(rec, KernelRecord) else tm_n)
            bar.update(1)
            self._checkpoint(prof)

    def _remeasure(self, prof: DeviceProfile, kernel_err, network_err, tm_k: Any, tm_n: Any, r: int) -> None:
        """Measure the worst-predicted items again; keep the lower of the two values of the profile's
        statistic (the lower envelope: a busy machine only ever adds time)."""
        worst_k = [k for k, e in sorted(kernel_err, key=lambda kv: -kv[1]) if e > REMEASURE_LOG_ERROR][: max(4, len(kernel_err) // 10)]
        worst_n = [h for h, e in sorted(network_err, key=lambda kv: -kv[1]) if e > REMEASURE_LOG_ERROR][: max(4, len(network_err) // 5)]
        items = [("kernel", k) for k in worst_k] + [("network", h) for h in worst_n]
        if not items:
            return
        by_key = {k.key: k for k in prof.kernels}
        by_hash = {n.hash: n for n in prof.networks}
        bar = self._progress(len(items), f"adaptive {r + 1} re-measure")
        for what, ident in items:
            if self._should_stop():
                return
            rec = by_key[ident] if what == "kernel" else by_hash[ident]
            self._measure_record_again(prof, rec, tm_k if what == "kernel" else tm_n)
            bar.update(1)
            self._checkpoint(prof)

    def _adaptive_round(self, prof: DeviceProfile, r: int, tm_k: Any, tm_n: Any, rng: np.random.Generator) -> None:
        from .learned import cross_validated_errors

        kernel_err, network_err = cross_validated_errors(prof)
        o = self.o
        self._remeasure(prof, kernel_err, network_err, tm_k, tm_n, r)
        n_kernels = max(8, o.samples // 2)
        n_networks = max(4, o.samples // 6)
        # kernels: neighbours of the worst-predicted configurations
        known = prof.kernel_keys()
        worst = sorted(kernel_err, key=lambda kv: -kv[1])[: max(4, n_kernels // 4)]
        by_key = {k.key: k for k in prof.kernels}
        new_kernels: list[tuple[Kernel, Architecture]] = []
        lt = self._layer_types()
        for key, _err in worst:
            rec = by_key[key]
            karch = Architecture.from_json(rec.arch, layer_types=lt)
            kernel = kernels_of(karch)[0]
            for arch in neighbour_kernel_architectures(kernel, rng, 4, layer_types=lt):
                k2 = kernels_of(arch)[0]
                if k2.key not in known and len(new_kernels) < n_kernels:
                    known.add(k2.key)
                    new_kernels.append((k2, arch))
        # networks: one random move away from the worst-predicted networks
        from ..plugins import get_toolkit

        tk = self.toolkit or get_toolkit()
        operations = [tk.operations.get(n) for n in tk.operations.names()]
        hashes = prof.network_hashes()
        by_hash = {n.hash: n for n in prof.networks}
        new_nets: list[Variant] = []
        for h, _err in sorted(network_err, key=lambda kv: -kv[1])[: n_networks]:
            rec = by_hash[h]
            arch = Architecture.from_json(rec.arch, layer_types=lt)
            step = random_move(arch, rng, operations) if operations else None
            if step is None:
                continue
            op_name, params, child = step
            if child.hash in hashes or (o.max_flops is not None and child.flops > o.max_flops):
                continue
            hashes.add(child.hash)
            new_nets.append(Variant(rec.seed, (*rec.moves, {"operation": op_name, "params": _plain(params)}), child))
        self.log(f"adaptive round {r + 1}: {len(new_kernels)} kernel configurations near the worst predicted, {len(new_nets)} networks")
        bar = self._progress(len(new_kernels), f"adaptive {r + 1} kernels")
        for kernel, arch in new_kernels:
            if self._should_stop():
                return
            self._measure_kernel(prof, kernel, tm_k, f"adaptive{r + 1}", arch)
            bar.update(1)
            self._checkpoint(prof)
            self._speed_check(prof, tm_k)
        self._measure_variants(prof, new_nets, tm_k, tm_n, f"adaptive{r + 1}", f"adaptive {r + 1} networks")

    # ---- the run ----------------------------------------------------------------------------------------
    def run(self) -> DeviceProfile:
        o = self.o
        if o.runtime not in RUNTIMES:
            from ..errors import UnknownComponentError

            raise UnknownComponentError("profiling runtime", o.runtime, RUNTIMES)
        if o.samples < 1:
            raise ProfileError(f"--samples must be >= 1, got {o.samples}")
        if o.resume:
            if not o.out.exists():
                raise ProfileError(f"--resume: {str(o.out)!r} does not exist; run without --resume to start it")
            prof = self._load_for_resume()
            self.log(f"resuming {o.out}: {len(prof.kernels)} kernels and {len(prof.networks)} networks measured")
        else:
            if o.out.exists():
                raise ProfileError(f"{str(o.out)!r} exists; pass --resume to continue it or choose another --out")
            prof = self._new_profile()
        tm_k = make_time_model(o.runtime, o.device, o.kernel_settings, o.threads, o.statistic)
        tm_n = make_time_model(o.runtime, o.device, o.network_settings, o.threads, o.statistic)
        seeds = {s: load_seed(s, self.toolkit) for s in o.seeds}
        rng = np.random.default_rng(o.rng_seed)
        variants = random_variants(seeds, o.samples, rng, o.max_moves, self.toolkit, max_flops=o.max_flops)
        self._reference = max(seeds.values(), key=lambda a: a.flops)

        self._t_start = time.perf_counter()
        self._last_save = self._t_start
        old_handler = None
        try:
            old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread: Ctrl-C handling stays the caller's
            pass
        try:
            self._checkpoint(prof, force=True)
            self._measure_variants(prof, variants, tm_k, tm_n, "initial", "kernels+networks")
            # adaptive rounds: each round's RNG depends on the round only, so a resumed run repeats it
            for r in range(o.adaptive_rounds):
                if self._should_stop():
                    break
                done = prof.plan.get("adaptive_done", 0)
                if r < done:
                    continue
                self._adaptive_round(prof, r, tm_k, tm_n, np.random.default_rng([o.rng_seed, r + 1]))
                if not self._should_stop():
                    prof.plan["adaptive_done"] = r + 1
                    self._checkpoint(prof, force=True)
            prof.complete = not self._stop_reason
            prof.stopped = self._stop_reason
            if prof.device.get("kind") == "cuda":
                from .nvml import Nvml

                with Nvml() as nv:
                    snap = nv.snapshot(_index(o.device)) if nv.available else None
                    prof.nvml["end"] = None if snap is None else snap.to_json()
            # the final save happens while Ctrl-C is still ours: it cannot be cut short
            self._checkpoint(prof, force=True)
        finally:
            if self._bar is not None:
                self._bar.close()
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        return prof

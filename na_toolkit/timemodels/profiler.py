"""Building a device profile (`na-toolkit profile`): the measurement plan, the measuring, speed checks
against slow spells, resume, and a save that Ctrl-C cannot tear.

1. sample whole networks: the seeds and random move sequences applied to them (`sampling.random_variants`);
2. for each network, measure its kernels that are not measured yet (kernels.py: one runtime operator after
   fusion, measured as a standalone network), then the network itself;
3. adaptive rounds (nn-Meter, Zhang et al. MobiSys 2021, section 4.3): fit the model, find the kernels whose
   cross-validated prediction errs most and measure configurations around them (channels, spatial size,
   kernel size, stride perturbed), and find the networks whose calibrated prediction errs most and measure
   networks one random move away from them.

The profile (profile.py, the format) is written atomically after every network and at least every few
seconds, so an interrupted run (Ctrl-C, a time budget, a crash) leaves a valid partial profile that
`--resume` continues: the plan is regenerated from the stored arguments and measured items are skipped.
The plan stores the seed networks themselves (`plan.seed_networks`: hash and architecture JSON), so a resume
needs no seed file and works from any folder; an argument given again on --resume must agree with the
stored one (`ProfileOptions.explicit`), else it is refused: one profile never mixes two plans.
A resume writes the file only once it has measured something new: one that fails or finds nothing left
to measure leaves the profile as it was read (a complete profile stays complete).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ArchitectureError, ConfigError, ProfileError, TimeModelError, UnknownComponentError
from ..ir.architecture import Architecture
from ..machine import machine_info
from .devices import describe_local_device, parse_device
from .kernels import Kernel, kernel_architecture, kernels_of, measurable, neighbour_kernel_architectures
from .learned import cross_validated_errors
from .measure import MeasureSettings
from .profile import (
    DeviceProfile,
    KernelRecord,
    MeasuredItem,
    NetworkRecord,
    check_device,
    measurement_summary,
    utc_now,
)
from .profile_plan import (
    DEFAULT_SEEDS,
    KERNEL_SETTINGS,
    NETWORK_SETTINGS,
    OPTION_FLAGS,
    RUNTIMES,
    ProfileOptions,
    make_time_model,
)
from .sampling import Variant, all_move_types, plain, random_move, random_variants

if TYPE_CHECKING:
    from ..toolkit import Toolkit

# the plan's names, for the callers of the builder (`from na_toolkit.timemodels.profiler import ProfileOptions`)
__all__ = [
    "DEFAULT_SEEDS",
    "KERNEL_SETTINGS",
    "NETWORK_SETTINGS",
    "RUNTIMES",
    "ProfileBuilder",
    "ProfileOptions",
    "make_time_model",
    "resolve_seeds",
]

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


class ProfileBuilder:
    """Builds (or resumes) a profile; see the module docstring. `run()` returns the profile, saved."""

    def __init__(self, options: ProfileOptions, toolkit: Toolkit, log: Callable[[str], None] | None = None):
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
        #: a resumed profile as it was read (its measured content, complete, stopped), until it changes:
        #: a resume that measures nothing new leaves its input file exactly as it found it
        self._as_read: tuple[str, bool, str] | None = None
        #: a resumed profile written before plans stored their seed networks: its seeds, stored at its next save
        self._pin_seeds: dict[str, Any] | None = None

    # ---- setup ------------------------------------------------------------------------------------------
    def _new_profile(self, seeds: dict[str, Architecture]) -> DeviceProfile:
        from .nvml import Nvml

        o = self.o
        info = machine_info()
        spec = parse_device(o.device)
        with Nvml() as nv:
            nvml: dict[str, Any] = {"status": nv.status()}
            if nv.available and spec.is_cuda:
                snap = nv.snapshot(spec.index)
                nvml["start"] = None if snap is None else snap.to_json()
        tm_k = make_time_model(o.runtime, o.device, o.kernel_settings, o.threads, o.statistic)
        runtime = {
            "name": o.runtime,
            **{k: v for k, v in tm_k.cache_settings().items() if k not in ("measure", "train_measure")},
        }
        return DeviceProfile(
            name=o.out.stem,
            device=describe_local_device(o.device),
            software={"python": info["python"], "platform": info["platform"], "libraries": info["libraries"]},
            runtime=runtime,
            batch_size=o.batch_size,
            plan={**o.plan(), "seed_networks": seed_networks_doc(seeds)},
            settings={"kernel": o.kernel_settings.to_json(), "network": o.network_settings.to_json()},
            nvml=nvml,
            kernels=[],
            networks=[],
            created=utc_now(),
        )

    def _load_for_resume(self) -> DeviceProfile:
        o = self.o
        prof = DeviceProfile.load(o.out)
        if prof.fewshot is not None:  # profile_fewshot.FewShotProfileBuilder continues those
            raise ProfileError(f"{str(o.out)!r} is a few-shot profile: resume it with `na-toolkit profile --resume`")
        self._take_stored(prof)
        o.samples = int(prof.plan.get("samples", o.samples))
        o.adaptive_rounds = int(prof.plan.get("adaptive_rounds", o.adaptive_rounds))
        return prof

    def _take_stored(self, prof: DeviceProfile) -> None:
        """Check a profile to resume (its device is this one, the options set explicitly agree with it), then
        take its stored plan, device, runtime and settings: a resumed profile continues what it started."""
        o = self.o
        check_device(prof, strict=True)
        self._check_explicit(prof)
        plan = prof.plan
        o.device = str(prof.device.get("device", o.device))
        o.runtime = prof.runtime_name
        o.max_moves = int(plan.get("max_moves", o.max_moves))
        o.rng_seed = int(plan.get("rng_seed", o.rng_seed))
        o.threads = int(plan.get("threads", o.threads))
        o.max_flops = plan.get("max_flops", o.max_flops)
        o.statistic = prof.statistic
        o.batch_size = prof.batch_size
        if "kernel" in prof.settings:
            o.kernel_settings = MeasureSettings.from_json(prof.settings["kernel"])
        if "network" in prof.settings:
            o.network_settings = MeasureSettings.from_json(prof.settings["network"])
        self._elapsed_before = prof.elapsed_s
        self._as_read = (_content(prof), prof.complete, prof.stopped)
        prof.complete = False
        prof.stopped = ""

    def _check_explicit(self, prof: DeviceProfile) -> None:
        """Refuse an option set explicitly (`ProfileOptions.explicit`: an argument typed with --resume) that
        differs from the stored one, or that a profile of this kind does not have."""
        o, plan, where = self.o, prof.plan, f"profile {str(self.o.out)!r}"
        stored: dict[str, Any] = {
            "device": prof.device.get("device"),
            "runtime": prof.runtime_name,
            "batch_size": prof.batch_size,
            "threads": plan.get("threads"),
            "max_moves": plan.get("max_moves"),
            "rng_seed": plan.get("rng_seed"),
        }
        if prof.fewshot is None:
            stored |= {"samples": plan.get("samples"), "adaptive_rounds": plan.get("adaptive_rounds")}
            other = ("fewshot", "pool", "priors")
        else:
            stored |= {"fewshot": prof.fewshot.n, "pool": plan.get("pool")}
            other = ("samples", "adaptive_rounds")
        kind = "a full" if prof.fewshot is None else "a few-shot"
        extra = sorted(o.explicit & set(other))
        if extra:
            raise ProfileError(f"{OPTION_FLAGS[extra[0]]} does not apply to {where}, {kind} profile: resume without it")
        for name, value in stored.items():
            if name not in o.explicit or value is None:
                continue
            given = getattr(o, name)
            if name == "device":  # the same device however it is written ("cuda" is "cuda:0")
                value, given = str(parse_device(value)), str(parse_device(given))
            if given != value:
                flag = OPTION_FLAGS[name]
                raise ProfileError(
                    f"{flag} {given} conflicts with {where}, which was started with {flag} {value}: resume without "
                    f"{flag} (a resume continues the stored plan) or start a new profile with another --out"
                )
        settings = {"kernel": o.kernel_settings.to_json(), "network": o.network_settings.to_json()}
        if "kernel_settings" in o.explicit and any(
            MeasureSettings.from_json(prof.settings[part]).to_json() != settings[part]
            for part in ("kernel", "network")
            if part in prof.settings
        ):
            raise ProfileError(
                f"--quick conflicts with {where}, which was measured with other measurement minimums (its "
                f"settings: {prof.settings}): resume without --quick or start a new profile with another --out"
            )

    # ---- seeds ------------------------------------------------------------------------------------------
    def _new_seeds(self) -> dict[str, Architecture]:
        """A new profile's seed networks (`resolve_seeds` of the options' seeds), by their stored reference."""
        seeds = resolve_seeds(self.o.seeds, self.toolkit)
        self.o.seeds = tuple(seeds)
        return seeds

    def _resumed_seeds(self, prof: DeviceProfile) -> dict[str, Architecture]:
        """A resumed profile's seed networks: those its plan stores (a profile written before plans stored
        them: its seed references resolved here, checked against the seed networks it measured); seeds given
        explicitly again must be the same networks."""
        o, where = self.o, f"profile {str(self.o.out)!r}"
        labels = list(prof.plan.get("seeds") or o.seeds)
        stored = prof.plan.get("seed_networks")
        if stored is None:
            seeds = self._seeds_as_typed(prof, labels)
        else:
            seeds = {}
            for label, doc in zip(labels, stored, strict=True):
                try:
                    arch = Architecture.from_json(doc["arch"], layer_types=self.toolkit.layer_types)
                except ArchitectureError as exc:
                    raise ProfileError(
                        f"{where}: its seed network {label!r} (plan.seed_networks) cannot be built with this "
                        f"toolkit's layer types ({exc}): install the plugin it was started with or start a new profile"
                    ) from None
                if arch.hash != doc["hash"]:
                    raise ProfileError(
                        f"{where}: its seed network {label!r} builds to hash {arch.hash}, not the {doc['hash']} it "
                        "was stored with (edited, or another toolkit version): start a new profile with another --out"
                    )
                seeds[label] = arch
        if "seeds" in o.explicit:
            _check_same_seeds(where, seeds, resolve_seeds(o.seeds, self.toolkit))
        o.seeds = tuple(seeds)
        return seeds

    def _seeds_as_typed(self, prof: DeviceProfile, labels: list[str]) -> dict[str, Architecture]:
        """The seeds of a profile written before plans stored their seed networks: its references as they were
        typed (a file: relative to the folder it was started in), each checked against the seed network the
        profile measured, if it did; they are stored in the plan at the next save."""
        where = f"profile {str(self.o.out)!r}"
        seeds: dict[str, Architecture] = {}
        for label in labels:
            registered = label in self.toolkit.seeds
            again = (
                "resume it with the toolkit version it was started with"
                if registered
                else "resume it from the folder it was started in (where that file is)"
            )
            try:
                (arch,) = resolve_seeds([label], self.toolkit, what="").values()
            except ProfileError as exc:  # exc: ": file '/here/seed.json' does not exist", say
                raise ProfileError(
                    f"{where} names its seed network as it was typed, {label!r} (it was written before profiles "
                    f"stored their seed networks), and here{exc}: {again}"
                ) from None
            measured = {n.hash for n in prof.networks if n.seed == label and not n.moves}
            if measured and arch.hash not in measured:
                found = "the toolkit's seed" if registered else "the file here"
                raise ProfileError(
                    f"{where} started from seed network {label!r} with hash {min(measured)}, but {found} {label!r} "
                    f"has hash {arch.hash} (another network): {again}, or start a new profile with another --out"
                )
            seeds[label] = arch
        self._pin_seeds = {"seeds": list(seeds), "seed_networks": seed_networks_doc(seeds)}
        return seeds

    # ---- bookkeeping ------------------------------------------------------------------------------------
    def _checkpoint(self, prof: DeviceProfile, force: bool = False, final: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last_save >= self.o.save_every_s:
            if self._unchanged(prof, final):
                return  # nothing new measured: the file read is left as it was (complete stays complete)
            prof.elapsed_s = self._elapsed_before + (now - self._t_start)
            if self._pin_seeds is not None:  # an older profile: from now on its plan holds its seed networks
                prof.plan |= self._pin_seeds
                self._pin_seeds = None
            prof.save(self.o.out)
            self._last_save = now

    def _unchanged(self, prof: DeviceProfile, final: bool) -> bool:
        """Is a resumed profile still what was read (at the `final` save: its complete/stopped too)?"""
        if self._as_read is None:
            return False
        content, complete, stopped = self._as_read
        if _content(prof) != content:
            self._as_read = None  # changed: saved from now on
            return False
        return not final or (prof.complete, prof.stopped) == (complete, stopped)

    def _should_stop(self) -> bool:
        if self._stop_reason:
            return True
        budget = self.o.time_budget_s
        if budget is not None and time.perf_counter() - self._t_start >= budget:
            self._stop_reason = f"time budget of {budget:g} s reached"
            return True
        return False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        """Ctrl-C or SIGTERM: the first stops after the current item (saved, marked interrupted), a second now."""
        if self._stop_reason == "interrupted":
            raise KeyboardInterrupt
        self._stop_reason = "interrupted"
        again = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        self.log(f"interrupted: finishing the current measurement, saving the partial profile ({again} again: abort)")

    def _progress(self, total: int, desc: str) -> Any:
        from tqdm import tqdm

        if self._bar is not None:
            self._bar.close()
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit="item",
            file=sys.stderr,
            disable=not self.o.progress,
            dynamic_ncols=True,
            mininterval=0.5,
            smoothing=0.1,
        )
        return self._bar

    # ---- measuring one item -----------------------------------------------------------------------------
    def _measure_kernel(
        self, prof: DeviceProfile, kernel: Kernel, tm: Any, phase: str, arch: Architecture | None = None
    ) -> None:
        try:
            karch = arch or kernel_architecture(kernel, layer_types=self.toolkit.layer_types)
            est = tm.estimate(karch, prof.batch_size)
        except (TimeModelError, ArchitectureError) as exc:
            prof.failures.append({"what": "kernel", "key": kernel.key, "error": str(exc)})
            return
        rec = KernelRecord(
            key=kernel.key,
            kind=kernel.kind,
            arch=karch.to_json(),
            measurement=measurement_summary(est.details),
            phase=phase,
        )
        prof.kernels.append(rec)
        self._since_check.append(rec)  # judged by the next speed check

    def _measure_network(self, prof: DeviceProfile, v: Variant, tm: Any, phase: str) -> None:
        try:
            est = tm.estimate(v.arch, prof.batch_size)
        except TimeModelError as exc:
            prof.failures.append({"what": "network", "hash": v.arch.hash, "error": str(exc)})
            return
        rec = NetworkRecord(
            hash=v.arch.hash,
            seed=v.seed,
            moves=list(v.moves),
            arch=v.arch.to_json(),
            measurement=measurement_summary(est.details),
            phase=phase,
        )
        prof.networks.append(rec)
        self._since_check.append(rec)  # judged by the next speed check

    # ---- phases -----------------------------------------------------------------------------------------
    def _measure_variants(
        self, prof: DeviceProfile, variants: list[Variant], tm_k: Any, tm_n: Any, phase: str, desc: str
    ) -> None:
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
            est = tm.measure_again(
                Architecture.from_json(rec.arch, layer_types=self.toolkit.layer_types), prof.batch_size
            )
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
            self.log(
                f"the reference network's latency wandered between {min(readings):.3g} and "
                f"{max(readings):.3g} ms over the run, so {len(suspects)} of {total} items fall in a "
                "'slow spell': the device is unsteady rather than briefly busy; they are kept as measured"
            )
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

    def _remeasure(
        self,
        prof: DeviceProfile,
        kernel_err: list[tuple[str, float]],
        network_err: list[tuple[str, float]],
        tm_k: Any,
        tm_n: Any,
        r: int,
    ) -> None:
        """Measure the worst-predicted items again; keep the lower of the two values of the profile's
        statistic (the lower envelope: a busy machine only ever adds time)."""
        worst_k = [k for k, e in sorted(kernel_err, key=lambda kv: -kv[1]) if e > REMEASURE_LOG_ERROR][
            : max(4, len(kernel_err) // 10)
        ]
        worst_n = [h for h, e in sorted(network_err, key=lambda kv: -kv[1]) if e > REMEASURE_LOG_ERROR][
            : max(4, len(network_err) // 5)
        ]
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
        kernel_err, network_err = cross_validated_errors(prof, self.toolkit.layer_types)
        o = self.o
        self._remeasure(prof, kernel_err, network_err, tm_k, tm_n, r)
        n_kernels = max(8, o.samples // 2)
        n_networks = max(4, o.samples // 6)
        # kernels: neighbours of the worst-predicted configurations
        known = prof.kernel_keys()
        worst = sorted(kernel_err, key=lambda kv: -kv[1])[: max(4, n_kernels // 4)]
        by_key = {k.key: k for k in prof.kernels}
        new_kernels: list[tuple[Kernel, Architecture]] = []
        lt = self.toolkit.layer_types
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
        move_types = all_move_types(self.toolkit)
        hashes = prof.network_hashes()
        by_hash = {n.hash: n for n in prof.networks}
        new_nets: list[Variant] = []
        for h, _err in sorted(network_err, key=lambda kv: -kv[1])[:n_networks]:
            net = by_hash[h]
            arch = Architecture.from_json(net.arch, layer_types=lt)
            step = random_move(arch, rng, move_types) if move_types else None
            if step is None:
                continue
            op_name, params, child = step
            if child.hash in hashes or (o.max_flops is not None and child.flops > o.max_flops):
                continue
            hashes.add(child.hash)
            new_nets.append(Variant(net.seed, (*net.moves, {"operation": op_name, "params": plain(params)}), child))
        self.log(
            f"adaptive round {r + 1}: {len(new_kernels)} kernel configurations near the worst predicted, "
            f"{len(new_nets)} networks"
        )
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
            raise UnknownComponentError("profiling runtime", o.runtime, RUNTIMES)
        if o.samples < 1:
            raise ProfileError(f"--samples must be >= 1, got {o.samples}")
        if o.resume:
            if not o.out.exists():
                raise ProfileError(f"--resume: {str(o.out)!r} does not exist; run without --resume to start it")
            prof = self._load_for_resume()
            seeds = self._resumed_seeds(prof)
            self.log(f"resuming {o.out}: {len(prof.kernels)} kernels and {len(prof.networks)} networks measured")
        else:
            if o.out.exists():
                raise ProfileError(f"{str(o.out)!r} exists; pass --resume to continue it or choose another --out")
            seeds = self._new_seeds()
            prof = self._new_profile(seeds)
        tm_k = make_time_model(o.runtime, o.device, o.kernel_settings, o.threads, o.statistic)
        tm_n = make_time_model(o.runtime, o.device, o.network_settings, o.threads, o.statistic)
        rng = np.random.default_rng(o.rng_seed)
        variants = random_variants(
            seeds, o.samples, rng, o.max_moves, move_types=all_move_types(self.toolkit), max_flops=o.max_flops
        )
        self._reference = max(seeds.values(), key=lambda a: a.flops)

        with self._measuring():
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
                    snap = nv.snapshot(parse_device(o.device).index) if nv.available else None
                    prof.nvml["end"] = None if snap is None else snap.to_json()
            # the final save happens while Ctrl-C is still ours: it cannot be cut short
            self._checkpoint(prof, force=True, final=True)
        return prof

    @contextlib.contextmanager
    def _measuring(self) -> Iterator[None]:
        """Start the clock and own Ctrl-C and SIGTERM (see `_on_sigint`) while measuring; restored after."""
        self._t_start = self._last_save = time.perf_counter()
        old_handlers: dict[int, Any] = {}
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                old_handlers[signum] = signal.signal(signum, self._on_sigint)
        except ValueError:  # not the main thread: signal handling stays the caller's
            pass
        try:
            yield
        finally:
            if self._bar is not None:
                self._bar.close()
            for signum, old in old_handlers.items():
                signal.signal(signum, old if old is not None else signal.SIG_DFL)


def resolve_seeds(refs: Sequence[str], toolkit: Toolkit, what: str = "--seed-net") -> dict[str, Architecture]:
    """The seed networks `refs` name, by the reference a profile stores: a registered name, or the absolute
    path of an IR .json or an .onnx file (a relative path is from the working directory). The forms, code
    path and errors of a search's `seed_network` (`search.config`), with `what` named in the errors."""
    from ..search.config import build_seed, seed_reference

    seeds: dict[str, Architecture] = {}
    for ref in refs:
        try:
            reference = seed_reference(ref, Path.cwd(), toolkit, label=what)
            seeds.setdefault(reference, build_seed(reference, toolkit, label=what))
        except ConfigError as exc:
            raise ProfileError(str(exc)) from None
    return seeds


def seed_networks_doc(seeds: dict[str, Architecture]) -> list[dict[str, Any]]:
    """`plan.seed_networks`: each seed network's hash and architecture JSON, in the order of `plan.seeds`."""
    return [{"hash": arch.hash, "arch": arch.to_json()} for arch in seeds.values()]


def _check_same_seeds(where: str, stored: dict[str, Architecture], given: dict[str, Architecture]) -> None:
    """Refuse seed networks given again with --resume that are not the ones the profile was started with."""
    again = "resume without --seed-net (the profile keeps its seed networks) or start a new profile with another --out"
    if len(given) != len(stored):
        raise ProfileError(
            f"--seed-net names {len(given)} seed networks ({', '.join(given)}), but {where} was started with "
            f"{len(stored)} ({', '.join(stored)}): {again}"
        )
    for i, ((label, arch), (ref, new)) in enumerate(zip(stored.items(), given.items(), strict=True)):
        if new.hash != arch.hash:
            raise ProfileError(
                f"--seed-net {ref!r} (hash {new.hash}) is not seed network {i + 1} of {len(stored)} that {where} "
                f"was started with, {label!r} (hash {arch.hash}): {again}"
            )


def _content(prof: DeviceProfile) -> str:
    """What a profile measured (its document without the run's bookkeeping: times, complete, stopped)."""
    return prof.content_hash()

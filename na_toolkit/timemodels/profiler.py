"""Building a device profile (`na-toolkit profile`): the measurement plan, the measuring, speed checks
against slow spells, resume, and a save that Ctrl-C cannot tear.

1. sample whole networks: the seeds and `samples` random move sequences applied to them (`random_variants`);
2. for each network, measure its kernels that are not measured yet (kernels.py: one runtime operator after
   fusion, measured as a standalone network), then the network itself;
3. adaptive rounds (nn-Meter, Zhang et al. MobiSys 2021, section 4.3): fit the model, find the kernels whose
   cross-validated prediction errs most and measure configurations around them (channels, spatial size,
   kernel size, stride perturbed), and find the networks whose calibrated prediction errs most and measure
   networks one random move away from them.

The profile (profile.py, the format) is written atomically after every network and at least every few
seconds, so an interrupted run (Ctrl-C, a time budget, a crash) leaves a valid partial profile that
`--resume` continues: the plan is regenerated from the stored arguments and seed networks, and measured items
are skipped; one profile never mixes two plans (profile_resume.py).
A resume writes the file only once it has measured something new: one that fails or finds nothing left
to measure leaves the profile as it was read (a complete profile stays complete).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ArchitectureError, ProfileError, TimeModelError, UnknownComponentError
from ..ir.architecture import Architecture
from ..machine import machine_info
from .devices import describe_local_device, parse_device
from .kernels import Kernel, kernel_architecture, kernels_of, measurable
from .profile import (
    DeviceProfile,
    KernelRecord,
    MeasuredItem,
    NetworkRecord,
    measurement_summary,
    utc_now,
)
from .profile_plan import (
    DEFAULT_SEEDS,
    KERNEL_SETTINGS,
    NETWORK_SETTINGS,
    RUNTIMES,
    ProfileOptions,
    check_new_out,
    initial_count,
    make_time_model,
    warn_seeds_over_cap,
)
from .profile_resume import resolve_seeds, seed_networks_doc, stored_seeds, take_stored_plan
from .sampling import Variant, adaptive_samples, all_move_types, cross_validated_errors, random_variants

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


_LOGGER = logging.getLogger(__name__)  # na_toolkit.timemodels.profiler


class ProfileBuilder:
    """Builds (or resumes) a profile; see the module docstring. `run()` returns the profile, saved. `log`
    takes each progress message (resuming, adaptive rounds, slow spells, an interrupt): by default the
    `na_toolkit.timemodels.profiler` logger at INFO (a library prints nothing itself; the command passes
    `profile_plan.print_to_stderr`). The progress bars are `options.progress`."""

    def __init__(self, options: ProfileOptions, toolkit: Toolkit, log: Callable[[str], None] | None = None):
        self.o = options
        self.toolkit = toolkit
        self.log = log or (lambda msg: _LOGGER.info("%s", msg))
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
        from .nvml_match import snapshot_of

        o = self.o
        info = machine_info()
        spec = parse_device(o.device)
        with Nvml() as nv:
            nvml: dict[str, Any] = {"status": nv.status()}
            if nv.available and spec.is_cuda:
                snap = snapshot_of(nv, spec.index)
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
        """Check a profile to resume and take its stored plan (`profile_resume.take_stored_plan`)."""
        take_stored_plan(self.o, prof)
        self._elapsed_before = prof.elapsed_s
        self._as_read = (_content(prof), prof.complete, prof.stopped)
        prof.complete = False
        prof.stopped = ""

    # ---- seeds ------------------------------------------------------------------------------------------
    def _new_seeds(self) -> dict[str, Architecture]:
        """A new profile's seed networks (`resolve_seeds` of the options' seeds), by their stored reference."""
        seeds = resolve_seeds(self.o.seeds, self.toolkit)
        self.o.seeds = tuple(seeds)
        warn_seeds_over_cap(seeds, self.o.max_flops)
        return seeds

    def _resumed_seeds(self, prof: DeviceProfile) -> dict[str, Architecture]:
        """A resumed profile's seed networks (`profile_resume.stored_seeds`); those of a profile written before
        plans stored them are stored at its next save."""
        seeds, self._pin_seeds = stored_seeds(self.o, prof, self.toolkit)
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
        """Ctrl-C or SIGTERM: the first stops after the current item (saved, marked "interrupted", or
        "terminated" for SIGTERM: the CLI exits 130 or 143 by it), a second now."""
        if self._stop_reason in ("interrupted", "terminated"):
            raise KeyboardInterrupt
        self._stop_reason = "interrupted" if signum == signal.SIGINT else "terminated"
        again = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        self.log(
            f"{self._stop_reason}: finishing the current measurement, saving the partial profile ({again} again: abort)"
        )

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
        new_kernels, new_nets = adaptive_samples(
            prof, kernel_err, network_err, n_kernels, n_networks, rng, self.toolkit, o.max_flops
        )
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
        if o.samples < 0:
            raise ProfileError(f"--samples must be >= 0 (random variants besides the seeds), got {o.samples}")
        if o.resume:
            if not o.out.exists():
                raise ProfileError(f"--resume: {str(o.out)!r} does not exist; run without --resume to start it")
            prof = self._load_for_resume()
            seeds = self._resumed_seeds(prof)
            self.log(f"resuming {o.out}: {len(prof.kernels)} kernels and {len(prof.networks)} networks measured")
        else:
            check_new_out(o.out)
            seeds = self._new_seeds()
            prof = self._new_profile(seeds)
        tm_k = make_time_model(o.runtime, o.device, o.kernel_settings, o.threads, o.statistic)
        tm_n = make_time_model(o.runtime, o.device, o.network_settings, o.threads, o.statistic)
        rng = np.random.default_rng(o.rng_seed)
        n_initial = initial_count(prof.plan, o.samples, seeds)  # the seeds and --samples variants of them
        variants = random_variants(
            seeds, n_initial, rng, o.max_moves, move_types=all_move_types(self.toolkit), max_flops=o.max_flops
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
                from .nvml_match import snapshot_of

                with Nvml() as nv:
                    snap = snapshot_of(nv, parse_device(o.device).index)
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


def _content(prof: DeviceProfile) -> str:
    """What a profile measured (its document without the run's bookkeeping: times, complete, stopped)."""
    return prof.content_hash()

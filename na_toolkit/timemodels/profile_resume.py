"""Resuming a device profile: a resumed profile continues the plan it started. Arguments typed again with
`--resume` must agree with the stored ones (`check_explicit`), and the seed networks are the ones the plan
stores (`plan.seed_networks`: hash and architecture JSON), so a resume needs no seed file and works from any
folder (`stored_seeds`). Used by the full (`profiler.py`) and few-shot (`profile_fewshot.py`) builders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArchitectureError, ConfigError, ProfileError
from ..ir.architecture import Architecture
from ..machine import library_version
from .devices import describe_local_device, parse_device
from .measure import MeasureSettings
from .profile import DeviceProfile, check_device
from .profile_match import SETTINGS
from .profile_plan import OPTION_FLAGS, ProfileOptions, make_time_model

if TYPE_CHECKING:
    from ..toolkit import Toolkit


def take_stored_plan(o: ProfileOptions, prof: DeviceProfile) -> None:
    """Check a profile to resume (its device is this one, the options set explicitly agree with it), then
    take its stored plan, device, runtime and settings into `o`: a resumed profile continues what it started."""
    check_device(prof, strict=True)
    check_explicit(o, prof)
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
    check_same_setup(o, prof)


#: what of a profile's `device` record is this machine's too on resume (the name: `check_device`)
_DEVICE_FIELDS = ("cores", "machine", "cpu_model")
_GPU_FIELDS = ("name", "driver_version", "memory_total_bytes")


def check_same_setup(o: ProfileOptions, prof: DeviceProfile) -> None:
    """Refuse to resume `prof` where this machine's device record, runtime settings or runtime library
    versions differ from those it stored: the new measurements would be filed under the old labels, and
    another version or core count gives other latencies (`profile_match`), so one profile never mixes them.
    `o` holds the stored plan already (`take_stored_plan`)."""
    here_device = describe_local_device(o.device)
    runtime = make_time_model(o.runtime, o.device, o.kernel_settings, o.threads, o.statistic).cache_settings()
    stored_gpu, here_gpu = prof.device.get("gpu") or {}, here_device.get("gpu") or {}
    stored_versions, here_versions = prof.runtime.get("versions") or {}, runtime.get("versions") or {}
    libraries = prof.software.get("libraries") or {}
    pairs: list[tuple[str, Any, Any]] = [
        *((f"device.{k}", prof.device.get(k), here_device.get(k)) for k in _DEVICE_FIELDS),
        *((f"device.gpu.{k}", stored_gpu.get(k), here_gpu.get(k)) for k in _GPU_FIELDS),
        *((f"runtime.{k}", prof.runtime.get(k), runtime.get(k)) for k, _ in SETTINGS),
        *((f"runtime.versions.{d}", stored_versions.get(d), here_versions.get(d)) for d in here_versions),
        *((f"software.libraries.{d}", libraries.get(d), library_version(d)) for d in here_versions),
    ]
    for field_path, stored, here in pairs:
        if stored is not None and here is not None and stored != here:
            raise ProfileError(
                f"cannot resume profile {str(o.out)!r}: its {field_path} is {stored!r}, this machine's is "
                f"{here!r}; one profile never mixes devices or runtimes (they give other latencies): start a "
                "new profile with another --out"
            )


def check_explicit(o: ProfileOptions, prof: DeviceProfile) -> None:
    """Refuse an option set explicitly (`ProfileOptions.explicit`: an argument typed with --resume) that
    differs from the stored one, or that a profile of this kind does not have."""
    plan, where = prof.plan, f"profile {str(o.out)!r}"
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


def stored_seeds(
    o: ProfileOptions, prof: DeviceProfile, toolkit: Toolkit
) -> tuple[dict[str, Architecture], dict[str, Any] | None]:
    """A resumed profile's seed networks: those its plan stores (a profile written before plans stored
    them: its seed references resolved here, checked against the seed networks it measured); seeds given
    explicitly again must be the same networks. Also the plan entries to store at the next save (None when
    the plan holds its seed networks already)."""
    where = f"profile {str(o.out)!r}"
    pin = None
    labels = list(prof.plan.get("seeds") or o.seeds)
    stored = prof.plan.get("seed_networks")
    if stored is None:
        seeds = _seeds_as_typed(o, prof, labels, toolkit)
        pin = {"seeds": list(seeds), "seed_networks": seed_networks_doc(seeds)}
    else:
        seeds = {}
        for label, doc in zip(labels, stored, strict=True):
            try:
                arch = Architecture.from_json(doc["arch"], layer_types=toolkit.layer_types)
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
        _check_same_seeds(where, seeds, resolve_seeds(o.seeds, toolkit))
    o.seeds = tuple(seeds)
    return seeds, pin


def _seeds_as_typed(
    o: ProfileOptions, prof: DeviceProfile, labels: list[str], toolkit: Toolkit
) -> dict[str, Architecture]:
    """The seeds of a profile written before plans stored their seed networks: its references as they were
    typed (a file: relative to the folder it was started in), each checked against the seed network the
    profile measured, if it did; they are stored in the plan at the next save."""
    where = f"profile {str(o.out)!r}"
    seeds: dict[str, Architecture] = {}
    for label in labels:
        registered = label in toolkit.seeds
        again = (
            "resume it with the toolkit version it was started with"
            if registered
            else "resume it from the folder it was started in (where that file is)"
        )
        try:
            (arch,) = resolve_seeds([label], toolkit, what="").values()
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
    return seeds


def resolve_seeds(refs: Sequence[str], toolkit: Toolkit, what: str = "--seed-net") -> dict[str, Architecture]:
    """The seed networks `refs` name, by the reference a profile stores: a registered name, or the absolute
    path of an IR .json or an .onnx file (a relative path is from the working directory). The forms, code
    path and errors of a search's `seed_network` (`search.config`), with `what` named in the errors."""
    from ..ir.seeds import build_seed_reference, seed_reference

    seeds: dict[str, Architecture] = {}
    for ref in refs:
        try:
            reference = seed_reference(ref, Path.cwd(), toolkit, label=what)
            seeds.setdefault(reference, build_seed_reference(reference, toolkit, label=what))
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

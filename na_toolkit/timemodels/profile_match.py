"""Does a device profile describe the runtime a search measures with? A profile's latencies are those of one
runtime with one set of settings (ONNX Runtime 1.32 on the CPU provider, one intra-op thread, graph
optimization "all", batch 1); a learned time model fitted on it predicts those. A search whose `measure` runs
another runtime, version or settings decides budgets by latencies the learned model does not predict, so
the run warns naming each difference (`runtime_differences`); a batch size other than the profile's is a
config error before anything runs (`check_profile_batch`), since the model estimates at its profile's only.
The statistic is the learned model's (`LearnedTimeModel.statistic`): a profile records each item's median,
p10 and min, and a search fits the model on the one its measure reports unless the config names another.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TimeModelError

if TYPE_CHECKING:
    from .profile import DeviceProfile

#: settings of the profile's `runtime` record that change latencies, and what a message calls them
SETTINGS = (
    ("provider", "execution provider"),
    ("intra_op_threads", "intra-op threads"),
    ("inter_op_threads", "inter-op threads"),
    ("graph_optimization", "graph optimization level"),
    ("clock", "clock"),  # thread_cpu times one thread's CPU time, wall the elapsed time
)
#: settings that do not change a GPU's latencies (host threads)
_HOST_ONLY = ("intra_op_threads", "inter_op_threads")


def _profile_of(model: Any) -> Any:
    """The device profile a (learned) time model was fitted on, or None for any other model."""
    from .profile import DeviceProfile

    profile = getattr(model, "profile", None)
    return profile if isinstance(profile, DeviceProfile) else None


def runtime_differences(model: Any, measure: Any) -> list[str]:
    """How the runtime of the profile `model` (a learned time model) was fitted on differs from the one the
    measuring time model `measure` runs: its name, version and the settings in `SETTINGS`, each as
    "intra-op threads: 1 in the profile, 2 in the measure". Empty when they agree, when `model` has no profile,
    or when `measure` runs nothing (no `runtime`)."""
    profile = _profile_of(model)
    if profile is None or not getattr(measure, "runtime", ""):
        return []
    out = profile_differences(profile, measure)
    # which statistic: the model's (the profile records every one; a search gives it the measure's when the
    # config names none), not the profile's; another runtime is the one difference named, as above
    ours, theirs = getattr(model, "statistic", None), getattr(measure, "statistic", None)
    if ours and theirs and ours != theirs and profile.runtime_name == measure.runtime:
        out.append(f"statistic: the learned model predicts the {ours}, the measure reports the {theirs}")
    return out


def profile_differences(profile: DeviceProfile, measure: Any, versions: bool = True) -> list[str]:
    """`runtime_differences` of a profile itself; `versions=False` leaves the library versions out."""
    runtime = getattr(measure, "runtime", "")
    if profile.runtime_name != runtime:
        return [f"runtime: {profile.runtime_name} in the profile, {runtime} in the measure"]
    there: Mapping[str, Any] = profile.runtime
    here: Mapping[str, Any] = measure.cache_settings()
    on_gpu = profile.device.get("kind") == "cuda"
    out = []
    for key, label in SETTINGS:
        if (key in there or key in here) and there.get(key) != here.get(key) and not (on_gpu and key in _HOST_ONLY):
            out.append(f"{label}: {there.get(key)} in the profile, {here.get(key)} in the measure")
    old, new = (there.get("versions") or {}, here.get("versions") or {}) if versions else ({}, {})
    for dist in sorted(set(old) & set(new)):
        if old[dist] != new[dist]:
            out.append(f"{dist} version: {old[dist]} in the profile, {new[dist]} here")
    return out


def runtime_warning(model: Any, measure: Any) -> str | None:
    """The warning of a profile measured with another runtime or settings than the run's `measure`, naming each
    difference and what to do, or None when they agree."""
    diffs = runtime_differences(model, measure)
    if not diffs:
        return None
    profile = _profile_of(model)
    if all(d.startswith("statistic:") for d in diffs):  # the profile is fine: the model's option is not
        return (
            f"the learned model of profile {profile.name!r} and the measure {measure.name!r} differ "
            f"({'; '.join(diffs)}): it predicts other latencies than the measured ones that decide the budgets; "
            "drop the learned model's option statistic (it then predicts the measure's), or give both the same"
        )
    return (
        f"profile {profile.name!r} was measured with other runtime settings than the measure "
        f"{measure.name!r} ({'; '.join(diffs)}): the learned model predicts that runtime's latencies, not the "
        "measured ones that decide the budgets; profile again with the measure's settings (na-toolkit profile "
        "--runtime, --threads), or give the measure the profile's"
    )


def quick_profile_warning(model: Any) -> str | None:
    """A warning when a (learned) time model was fitted on a profile measured with `profile --quick`."""
    profile = _profile_of(model)
    if profile is None or not profile.quick:
        return None
    where = f" ({profile.path})" if profile.path is not None else ""
    return (
        f"profile {profile.name!r}{where} was measured with `na-toolkit profile --quick` (the smoke tests' "
        "measurement minimums: noisier latencies), so the estimates that rank proposals are noisier too; "
        "build it again without --quick"
    )


def check_profile_batch(device: str, batch_size: int, models: Mapping[str, Any]) -> None:
    """ConfigError when a time model of device `device` (role -> model) was fitted on a profile measured at
    another batch size than the device's `batch_size`, or its optional `check_batch_size(batch_size)` raises a
    TimeModelError (a table without a column at that batch size): it would refuse every estimate of the run."""
    for role, model in models.items():
        check = getattr(model, "check_batch_size", None)  # optional: a model that knows its batch sizes
        if check is not None:
            try:
                check(batch_size)
            except TimeModelError as exc:
                raise ConfigError(
                    f"devices.{device}.batch_size = {batch_size}: the {role} {model.name!r}: {exc}"
                ) from None
        profile = _profile_of(model)
        if profile is not None and profile.batch_size != batch_size:
            raise ConfigError(
                f"devices.{device}.batch_size = {batch_size}: the {role} {model.name!r} was fitted on profile "
                f"{profile.name!r}, measured at batch size {profile.batch_size}; set batch_size = "
                f"{profile.batch_size}, or build a profile with `na-toolkit profile --batch-size {batch_size}`"
            )

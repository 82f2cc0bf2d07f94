"""A run resumed by other code than the code that started it.

`--resume` replays a run from its start (stored evaluations and measurements served, not paid for again),
and every choice and score of the replay is the resuming toolkit's: a resume by another na_toolkit or plugin
version than the one that started the run follows the new version's defaults from there on, and the run may
differ from an uninterrupted run of the version that started it. Two things keep that from going unseen:

- `version_warning`: each session of a run (its provenance events, search/provenance.py) records the
  na_toolkit and plugin versions; a resume by other versions than the run's first session's is one warning
  naming both (on stderr, in summary.json and report.md), and `runs` and report.md list the versions per
  session (`sessions`).
- `resolved_defaults`: a default that affects results and that the config can name is written into the
  stored config when the run starts (the learned time model's `statistic`, which follows the device's
  measure when the config names none; each device's `rescale_by_measure` and `rescale_neighbours`), so newer
  code with another default resumes the run with the value it started with. A config given with `--resume`
  is compared with those values filled in the same way.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .components import Components

#: the store artifact listing the defaults a run's stored config got when it started (dotted key -> value)
RESOLVED_ARTIFACT = "resolved_defaults"
TOOLKIT = "na_toolkit"


def session_versions(event: Mapping[str, Any]) -> dict[str, str]:
    """{"na_toolkit": version, plugin distribution: version, ...} of one session of a run (a provenance event).
    Events of runs made before `toolkit_version` was recorded give it through the built-in plugins' entries
    (their version is na_toolkit's)."""
    out: dict[str, str] = {}
    plugins = event.get("plugins")
    for name, info in sorted((plugins if isinstance(plugins, Mapping) else {}).items()):
        if not isinstance(info, Mapping) or not info.get("version"):
            continue
        if info.get("builtin"):
            out.setdefault(TOOLKIT, str(info["version"]))
        else:
            out[str(info.get("dist") or name)] = str(info["version"])
    if event.get("toolkit_version"):
        out[TOOLKIT] = str(event["toolkit_version"])
    return out


def _described(versions: Mapping[str, str], names: list[str]) -> str:
    return ", ".join(f"{n} {versions.get(n, '(not installed)')}" for n in names)


def version_warning(provenance: Mapping[str, Any], run_id: str) -> str | None:
    """The warning of a resume (the last event of `provenance`) by other na_toolkit or plugin versions than
    the session that started the run (its first event); None when they are the same or nothing is on record."""
    events = [e for e in provenance.get("events") or [] if isinstance(e, Mapping)]
    if len(events) < 2:
        return None
    first, now = session_versions(events[0]), session_versions(events[-1])
    if not first or not now:
        return None
    # na_toolkit first, then each plugin the run's first session or this one had, where the versions differ
    names = [n for n in [TOOLKIT, *sorted((set(first) | set(now)) - {TOOLKIT})] if first.get(n) != now.get(n)]
    if not names:
        return None
    kept = events[-1].get("evaluations")
    served = f"its {kept} stored evaluations are" if isinstance(kept, int) else "its stored evaluations are"
    new = _described(now, names)
    return (
        f"run {run_id} was started by {_described(first, names)} and is resumed by {new}: {served} replayed, "
        f"but how they are scored and what is evaluated after them follow {new}'s defaults, so the run may "
        f"differ from an uninterrupted run of the version that started it (resume it with the version that "
        f"started it to keep that, or start a new run to compare like with like)"
    )


def session_lines(provenance: Mapping[str, Any]) -> list[str]:
    """One line per session of the run (start, each resume): when, from which stored evaluation on, and with
    which na_toolkit and plugin versions (report.md's 'Sessions')."""
    out = []
    for event in provenance.get("events") or []:
        if not isinstance(event, Mapping):
            continue
        when = event.get("time_s")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if isinstance(when, int | float) else "?"
        kept = event.get("evaluations")
        at = f" (after {kept} stored evaluations)" if isinstance(kept, int) and event.get("event") == "resume" else ""
        versions = session_versions(event)
        listed = ", ".join(f"{n} {v}" for n, v in versions.items()) or "versions not recorded"
        out.append(f"{event.get('event', '?')} {stamp}{at}: {listed}")
    return out


def toolkit_versions(provenance: Mapping[str, Any]) -> list[str]:
    """The na_toolkit version of each session, consecutive repeats merged (`runs`' toolkit column)."""
    out: list[str] = []
    for event in provenance.get("events") or []:
        version = session_versions(event).get(TOOLKIT, "?") if isinstance(event, Mapping) else "?"
        if not out or out[-1] != version:
            out.append(version)
    return out


# ---- defaults written into the stored config ----------------------------------------------------------
def resolved_defaults(components: Components) -> dict[str, Any]:
    """Dotted config key -> value of each default that affects results and that the built components chose
    where the config names nothing: the Pareto front's accuracy floor from the dataset's commonest class
    (`summary.majority_floor`), a learned time model's `statistic` (its device's measure's), and each device's
    `rescale_by_measure` (on when it has a `measure`) and, where that is on, its `rescale_neighbours`."""
    out: dict[str, Any] = {}
    descriptor = components.dataset_descriptor
    if descriptor is not None and components.config.search.pareto_min_accuracy is None:
        from .summary import majority_floor

        out["search.pareto_min_accuracy"] = majority_floor(descriptor)
    for dev in components.config.devices:
        model = components.time_models.get(dev.name)
        statistic = getattr(model, "statistic", None)
        takes = "statistic" in getattr(type(model), "OPTIONS", {})
        if statistic and takes and "statistic" not in dev.time_model.options:
            out[f"devices.{dev.name}.time_model.options.statistic"] = statistic
        named = components.config.doc.get("devices", {}).get(dev.name, {})
        if dev.measure is not None and isinstance(named, Mapping) and named.get("rescale_by_measure") is None:
            out[f"devices.{dev.name}.rescale_by_measure"] = dev.rescale_by_measure
        if dev.rescale_by_measure and isinstance(named, Mapping) and named.get("rescale_neighbours") is None:
            out[f"devices.{dev.name}.rescale_neighbours"] = dev.rescale_neighbours
    return out


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two config documents (a resume's given config and the
    run's own)."""
    out = []
    for key in sorted(set(a) | set(b)):
        full = f"{prefix}{key}"
        if isinstance(a.get(key), Mapping) and isinstance(b.get(key), Mapping):
            out += config_differences(a[key], b[key], full + ".")
        elif a.get(key) != b.get(key):
            out.append(full)
    return out


def with_defaults(doc: Mapping[str, Any], resolved: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the config document `doc` with each of `resolved` (dotted keys: `resolved_defaults`) set
    where the document names nothing (a component written as a bare name becomes {name, options})."""
    out = copy.deepcopy(dict(doc))
    for key, value in resolved.items():
        *path, leaf = key.split(".")
        node: Any = out
        for i, part in enumerate(path):
            child = node.get(part) if isinstance(node, dict) else None
            if isinstance(child, str) and i + 1 < len(path) and path[i + 1] == "options":
                child = {"name": child}  # `time_model = "learned"`: the table form, to hold its options
            if child is None:
                child = {}
            if not isinstance(child, dict):
                break
            node[part] = child
            node = child
        else:
            node.setdefault(leaf, value)
    return out

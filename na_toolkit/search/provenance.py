"""Where a run's results come from: which plugin (and which version of which distribution) provided each
component the run used, which time model produced each metric and whether each figure is measured or
estimated (figure_sources.py), the library versions, the machine and its load. Recorded when a run starts (the
store's `provenance` artifact, kept by --resume, which adds its own entry) and written into `summary.json`;
`check_plugins` turns a plugin missing on `--resume` or `export` into an error naming the plugin and its
version instead of an unknown-name error.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..machine import machine_info
from .compat import version_warning
from .figure_sources import figure_sources

if TYPE_CHECKING:  # pragma: no cover
    from ..ir.architecture import Architecture
    from ..toolkit import Toolkit
    from .components import Components

ARTIFACT = "provenance"


def _plugin(toolkit: Toolkit, registry: str, name: str) -> dict[str, Any]:
    """kind/name -> the plugin that registered it: {"name", "plugin", "dist", "version"}."""
    reg = toolkit.registries()[registry]
    out: dict[str, Any] = {"name": name}
    if name not in reg:
        return {**out, "plugin": None}
    label = reg.plugin_of(name)  # how the registry names its plugin: "name (dist version)"
    info = next((i for i in toolkit.plugins.values() if label in (i.label, i.name)), None)
    if info is None:  # registered directly, not by a plugin
        return {**out, "plugin": None}
    out["plugin"] = info.name
    out["dist"] = info.dist or None
    out["version"] = info.version or None
    return out


def _layer_types_of(arch: Architecture) -> list[str]:
    return sorted({n.type for n in arch.nodes})


def component_provenance(components: Components) -> dict[str, Any]:
    """Per kind of component the run uses, who provided it (JSON data)."""
    tk, config = components.toolkit, components.config
    out: dict[str, Any] = {
        "strategy": _plugin(tk, "strategies", config.strategy.name),
        "evaluator": _plugin(tk, "evaluators", config.evaluator.name),
        "executor": _plugin(tk, "executors", config.executor.name),
        "moves": [_plugin(tk, "moves", m.name) for m in components.move_types],
        "predictors": {t: _plugin(tk, "predictors", p.name) for t, p in config.predictors.items()},
        "layer_types": [_plugin(tk, "layer_types", t) for t in _layer_types_of(components.seed_arch)],
        "devices": {},
    }
    if isinstance(config.seed_network, str) and config.seed_network in tk.seeds:
        out["seed"] = _plugin(tk, "seeds", config.seed_network)
    dataset = components.evaluator_options.get("dataset")  # the config's `dataset`, or the evaluator's option
    if isinstance(dataset, str) and dataset in tk.datasets:  # a registered one (not a path)
        out["dataset"] = _plugin(tk, "datasets", dataset)
    for d in config.devices:
        dev: dict[str, Any] = {"time_model": _plugin(tk, "time_models", d.time_model.name)}
        tm = components.time_models.get(d.name)
        dev["estimate"] = _estimate_kind(tm)
        if d.measure is not None:
            dev["measure"] = _plugin(tk, "time_models", d.measure.name)
        # per figure of the rows: measured or estimated, and by which model (ONNX Runtime's peak memory is an
        # estimate), budgeted or not; the seed tells whether an analytic or learned model gives a figure
        dev["figures"] = figure_sources(config, d, tm, components.measures.get(d.name), components.seed_arch)
        if d.measure is not None:  # the figures that chose which candidates to measure: the time model's
            dev["scored_by"] = figure_sources(config, d, tm, None, budgeted_only=True)
        out["devices"][d.name] = dev
    return out


def _estimate_kind(time_model: Any) -> str:
    """How a device's latencies are obtained: measured on the device, measured elsewhere (a table of others'
    measurements) or estimated (learned, analytic: the time model's own name says which)."""
    if time_model is None:
        return "none"
    if getattr(time_model, "measures", False):
        return "measured"
    source = time_model.figure_source("latency_ms") if hasattr(time_model, "figure_source") else None
    kind = source.kind if source is not None and source.kind != "measured" else "estimated"
    return f"{kind} ({getattr(time_model, 'name', '?')})"


def run_provenance(components: Components, started: str = "start") -> dict[str, Any]:
    """What a run records when it starts (or resumes): components, metric sources, machine, load."""
    try:
        load = list(os.getloadavg())
    except OSError:  # not every platform has it
        load = None
    from .. import __version__

    return {
        "event": started,
        "time_s": time.time(),
        "toolkit_version": __version__,
        "components": component_provenance(components),
        "plugins": {
            name: {"dist": info.dist or None, "version": info.version or None, "builtin": info.builtin}
            for name, info in sorted(components.toolkit.plugins.items())
            if info.error is None
        },
        "machine": machine_info(),
        "load_average": load,
    }


def record_provenance(store: Any, components: Components, event: str) -> list[str]:
    """Append this start or resume of the run to its provenance artifact (who provided each component, the
    na_toolkit and plugin versions, the machine, its load, how many evaluations were stored by then): every
    session of a run is on record, the first one first. Returns the run's warnings of it (logged now): a
    resume by other versions than the run's first session's (compat.py)."""
    doc = store.artifact(ARTIFACT) or {"events": []}
    doc.setdefault("events", []).append({**run_provenance(components, event), "evaluations": store.count_evaluations()})
    store.save_artifact(ARTIFACT, doc)
    message = version_warning(doc, store.run_id)
    if message is None:
        return []
    logging.getLogger("na_toolkit.search").warning(f"warning: {message}")  # stderr now; summary.json at the end
    return [message]


#: the store artifact with the search time of each session of the run that ended (`record_session_time`)
SESSIONS_ARTIFACT = "session_times"


def record_session_time(store: Any, elapsed_s: float) -> None:
    """Add the search time of the session ending now (by its budget, a failure, a Ctrl-C; one killed by
    SIGKILL adds none) to the run's: a resumed run's elapsed time is its sessions', not the last one's
    alone (0.6.0 said 0.5 s for a finished run replayed from its store)."""
    doc = store.artifact(SESSIONS_ARTIFACT) or {}
    store.save_artifact(SESSIONS_ARTIFACT, {"elapsed_s": [*doc.get("elapsed_s", []), round(elapsed_s, 3)]})


def run_elapsed_s(store: Any, this_session_s: float) -> float:
    """The run's search time over the sessions on record (`record_session_time`; `this_session_s` for a run
    whose sessions were not recorded: made before 0.7.0, or in a store that keeps no artifacts)."""
    times = (store.artifact(SESSIONS_ARTIFACT) or {}).get("elapsed_s") or []
    return float(sum(times)) if times else this_session_s


def stored_provenance(store: Any) -> dict[str, Any]:
    """The run's whole provenance artifact ({"events": [...]}; {} for a run made before it was recorded)."""
    doc = store.artifact(ARTIFACT)
    return doc if isinstance(doc, dict) else {}


def recorded_provenance(store: Any) -> dict[str, Any] | None:
    """The provenance of a run's first session (what started it), or None for a run made before it was
    recorded."""
    doc = store.artifact(ARTIFACT)
    events = doc.get("events") if isinstance(doc, dict) else None
    return events[0] if isinstance(events, list) and events and isinstance(events[0], dict) else None


def _entries(value: Any) -> list[dict[str, Any]]:
    """Every component entry ({"name", "plugin", ...}) in the nested components record (`component_provenance`:
    kinds, lists of moves, targets, devices and their time models)."""
    if isinstance(value, dict):
        if "name" in value and "plugin" in value:
            return [value]
        return [e for v in value.values() for e in _entries(v)]
    if isinstance(value, list):
        return [e for v in value for e in _entries(v)]
    return []


def check_plugins(provenance: dict[str, Any] | None, toolkit: Toolkit, what: str) -> None:
    """ConfigError naming each plugin that provided a component of the recorded run and is not loaded now
    (uninstalled, or denied), with the version the run used; nothing when every one is there."""
    if not provenance:
        return
    missing: dict[str, list[str]] = {}
    failed: dict[str, str] = {}  # label -> why it did not load (installed, but broken here)
    for e in _entries(provenance.get("components")):
        plugin = e.get("plugin")
        info = toolkit.plugins.get(plugin) if plugin else None
        if plugin and (info is None or info.error):
            label = f"{plugin} ({e['dist']} {e.get('version')})" if e.get("dist") else str(plugin)
            missing.setdefault(label, []).append(str(e["name"]))
            if info is not None and info.error:
                failed[label] = info.error
    if missing:
        parts = "; ".join(
            f"plugin {label} provided {', '.join(sorted(set(names)))}"
            + (f" (it is installed but failed to load: {failed[label]})" if label in failed else "")
            for label, names in missing.items()
        )
        fix = "fix them" if len(failed) == len(missing) else "install them (or allow them)"
        given = sorted({str(e.get("plugin")) for e in _entries(provenance.get("components")) if not e.get("dist")})
        if any(label in given for label in missing):  # no distribution: the run's process was handed the plugin
            fix = (
                f"{fix}, or build the toolkit with the plugin the run's process was given "
                "(load_toolkit(extra_plugins=(...,))) and pass it: toolkit=..."
            )
        raise ConfigError(f"{what} needs plugins that are not loaded: {parts}; {fix} first")

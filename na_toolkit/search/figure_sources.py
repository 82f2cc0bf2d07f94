"""Which figures of a run are measured and which are estimated, per device and figure.

A device's figures of the evaluated networks come from its `measure` when it has one, else from its time
model, and one model can measure some figures and compute others: ONNX Runtime measures the latency, while its
peak memory is the analytic figure (weights + peak live activations), an estimate on every device. A table of
latencies others measured on their device (NAS-Bench-201's) is "measured elsewhere": neither a measurement
here nor a model's estimate. The run's
provenance records the source of every figure the rows of its evaluated networks hold (the latency, peak memory
and energy wherever the model gives them, budgeted or not; training time where a budget asks for it) when a run
starts (`figure_sources`); summary.json lists them as
`metric_sources`, and report.md, report.html and the Pareto table label each figure with its kind (a latency
with its statistic too: "measured median", "estimated median" from a learned model). A device with a measure
also records, as `scored_by` (summary.json: `scoring_sources`; a line of the reports), the time model's figures
that scored its candidates before any was measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import raise_interrupt
from .reward import device_metric

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..timemodels.base import TimeModel
    from .config import DeviceSpec, SearchConfig

#: the device figures a time model gives (latency always; the others where a budget asks for them)
FIGURES = ("latency_ms", "peak_memory_bytes", "energy_mj", "train_time_s")
#: the figures a time model's estimate may or may not give (training time: only where a budget asks for it)
OPTIONAL_FIGURES = ("peak_memory_bytes", "energy_mj")


def given_figures(
    model: TimeModel, figures: Sequence[str], seed_arch: Architecture | None, batch_size: int
) -> dict[str, bool | None]:
    """figure -> does `model`'s estimate give it (`peak_memory_bytes`, `energy_mj`): the model's own answer
    (`TimeModel.gives`), else, for a model that runs nothing, whether its estimate of `seed_arch` holds the
    figure; None where neither tells (a measuring model finds out as it measures; a seed the model does not
    cover)."""
    answers = {m: model.gives(m) for m in figures}
    if None in answers.values() and seed_arch is not None and not getattr(model, "measures", False):
        try:
            est = model.estimate(seed_arch, batch_size)
        except Exception as exc:  # a seed the model does not cover, a plugin's bug: the search blames it where it
            raise_interrupt(exc)  # scores (a ComponentError naming the plugin); a Ctrl-C a library wrapped goes on
            return answers
        answers = {m: a if a is not None else getattr(est, m, None) is not None for m, a in answers.items()}
    return answers


def figure_sources(
    config: SearchConfig,
    dev: DeviceSpec,
    time_model: TimeModel | None,
    measure: TimeModel | None,
    seed_arch: Architecture | None = None,
    *,
    budgeted_only: bool = False,
) -> dict[str, dict[str, str]]:
    """figure -> {"kind": "measured" | "measured elsewhere" | "estimated", "how", "by": the model's role and name}
    of the figures the run gives the evaluated networks of device `dev`: the latency, each figure a budget asks
    for, and peak memory and energy wherever the model gives them (`given_figures`, judged on `seed_arch`)
    though no budget limits them: the scorer puts every figure an estimate holds into each row, so each needs
    its source (ONNX Runtime's peak memory is an estimate a reader could take for a measurement).
    `budgeted_only`: the latency and the budgeted figures alone (the figures a time model scored candidates
    with: an unbudgeted one changes no reward, so chose nothing)."""
    model, role = (measure, "measure") if measure is not None else (time_model, "time_model")
    if model is None:
        return {}
    sources = {f: s for f in FIGURES if (s := model.figure_source(f)) is not None}
    budgeted = {f for f in sources if f == "latency_ms" or config.needs(device_metric(f, dev.name))}
    unbudgeted = [] if budgeted_only else [f for f in OPTIONAL_FIGURES if f in sources and f not in budgeted]
    given = given_figures(model, unbudgeted, seed_arch, dev.batch_size) if unbudgeted else {}
    # an unbudgeted figure that only a measurement tells of (None: energy on a GPU) keeps its source: the rows
    # that hold the figure need it, and a row without it shows none
    return {
        f: {**s.to_json(), "by": f"{role} {model.name}"}
        for f, s in sources.items()
        if f in budgeted or given.get(f, False) is not False
    }


def _devices(provenance: Mapping[str, Any] | None) -> dict[str, Any]:
    events = (provenance or {}).get("events") or [{}]
    first = events[0] if isinstance(events[0], Mapping) else {}
    devices = (first.get("components") or {}).get("devices")
    return devices if isinstance(devices, dict) else {}


def metric_sources(provenance: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """`latency_ms@cpu` -> {"kind", "how", "by"} for every device figure the run's provenance records. A run
    recorded before figures were (no "figures"): its latency by the device's `measure` or `estimate` entry."""
    out: dict[str, dict[str, str]] = {}
    for device, dev in _devices(provenance).items():
        figures = dev.get("figures")
        if isinstance(figures, dict):
            out.update({device_metric(f, device): dict(s) for f, s in figures.items() if isinstance(s, dict)})
        elif dev.get("measure"):
            out[device_metric("latency_ms", device)] = {"kind": "measured", "how": "the device's measure"}
        else:  # "estimated (roofline)", "measured elsewhere (nb201-table)"
            kind = next((k for k in ("estimated", "measured elsewhere") if str(dev.get("estimate")).startswith(k)), "")
            if kind:
                out[device_metric("latency_ms", device)] = {"kind": kind, "how": str(dev["estimate"])}
    return out


def scoring_sources(provenance: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """`latency_ms@cpu` -> {"kind", "how", "by", "statistic"} of the time model that scored the candidates of a
    device whose evaluated figures its `measure` gives (what chose which networks to measure: a learned model
    of a profile, a roofline); empty for a run recorded before provenance kept it."""
    out: dict[str, dict[str, str]] = {}
    for device, dev in _devices(provenance).items():
        scored = dev.get("scored_by")
        if isinstance(scored, dict):
            out.update({device_metric(f, device): dict(s) for f, s in scored.items() if isinstance(s, dict)})
    return out


def _sources(summary: Mapping[str, Any]) -> Mapping[str, Any]:
    """The summary's `metric_sources`, or for a summary written before it had them, its provenance's."""
    sources = summary.get("metric_sources")
    return sources if isinstance(sources, Mapping) else metric_sources(summary.get("provenance"))


def _source(summary: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    source = _sources(summary).get(metric)
    return source if isinstance(source, Mapping) else None


def metric_kind(summary: Mapping[str, Any], metric: str) -> str | None:
    """ "measured", "measured elsewhere" (a table of others' measurements) or "estimated" for a device metric of
    the run's summary, None when it does not say. A run recorded before tables were "measured elsewhere" says
    "estimated" of them: shown as it was recorded."""
    source = _source(summary, metric)
    return str(source["kind"]) if source is not None and "kind" in source else None


def latency_unit(summary: Mapping[str, Any], device: str) -> str:
    """ "ms", or "ms per batch of 8" for a device whose figures are of a batch (its `batch_size`)."""
    doc = ((summary.get("config") or {}).get("devices") or {}).get(device)
    batch = doc.get("batch_size", 1) if isinstance(doc, Mapping) else 1
    return "ms" if batch == 1 else f"ms per batch of {batch}"


def metric_label(summary: Mapping[str, Any], metric: str) -> str | None:
    """`metric_kind` with the statistic of the latency: "measured median", "measured p10", "estimated median" (a
    learned model's); a run recorded before sources named it, or a model that does not say: its kind alone."""
    source = _source(summary, metric)
    return _label(source) if source is not None else None


def _label(source: Mapping[str, Any]) -> str | None:
    if source.get("kind") is None:
        return None
    kind, statistic = str(source["kind"]), source.get("statistic")
    return f"{kind} {statistic}" if kind and isinstance(statistic, str) and statistic else kind


def source_cell(source: Mapping[str, Any]) -> str | None:
    """A figure's source in one cell of the evaluations files: its label and the model that gave it, "measured
    median by measure onnxruntime", "estimated median by time_model learned", "measured elsewhere by
    time_model nb201-table"; None when the source names no kind."""
    label = _label(source)
    return f"{label} by {source['by']}" if label and source.get("by") else label


def source_lines(summary: Mapping[str, Any]) -> list[str]:
    """One line per device figure: "peak_memory_bytes@cpu: estimated by the device's measure onnxruntime
    (analytic: ...)", then one per figure of a device with a measure as its time model scored the candidates
    ("latency_ms@cpu of the candidates before they were measured (what chose them): estimated by ..."), and
    one per device whose estimates the run rescaled by its measurements (`scale_lines`)."""
    sources = _sources(summary)
    scored = summary.get("scoring_sources")
    if not isinstance(scored, Mapping):
        scored = scoring_sources(summary.get("provenance"))
    return (
        [_line(metric, s) for metric, s in sorted(sources.items()) if isinstance(s, Mapping)]
        + [
            _line(f"{metric} of the candidates before they were measured (what chose them)", s)
            for metric, s in sorted(scored.items())
            if isinstance(s, Mapping)
        ]
        + scale_lines(summary)
    )


def scale_lines(summary: Mapping[str, Any]) -> list[str]:
    """One line per device whose latency estimates the run rescaled by its measurements (summary.json's
    `latency_scales`, absent from an older run's)."""
    out = []
    scales = summary.get("latency_scales")
    for device, s in sorted((scales if isinstance(scales, Mapping) else {}).items()):
        if isinstance(s, Mapping):
            out.append(
                f"latency_ms@{device} estimates (what chose the candidates) ended the run scaled by "
                f"{s['scale']:.4g}: the median of measured over estimated latency of {s['networks']} evaluated "
                f"networks (p10 {s['ratio_p10']:.4g}, p90 {s['ratio_p90']:.4g}; devices.{device}.rescale_by_measure)"
                + (
                    f", each network's factor moved towards those of its {s['neighbours']} most similar measured "
                    f"networks (devices.{device}.rescale_neighbours)"
                    if s.get("neighbours")  # absent from a 0.5.0 run's summary
                    else ""
                )
            )
    return out


def _line(what: str, s: Mapping[str, Any]) -> str:
    return f"{what}: {s.get('kind')}" + (f" by the device's {s['by']}" if s.get("by") else "") + f" ({s.get('how')})"

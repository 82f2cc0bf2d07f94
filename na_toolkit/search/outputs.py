"""The files a search leaves in its run folder, all made from the run's summary and its store:

    summary.json        the run: status, stop reason, counts, best candidate per device, every evaluation
    pareto.json         the Pareto set over accuracy, model size and each device's latency (with IR JSON)
    pareto.png          accuracy against each device's latency and against model size (matplotlib, Agg)
    controller.png      a learning strategy's series per update (neural-architect: mean predicted reward of
                        the policy's proposals, entropy, value loss), from its last checkpoint; summary.json
                        holds the same figures under `controller`
    report.md           a short markdown report
    best/<device>/      the best feasible candidate for the device: arch.json (IR), model.onnx, model.pt
                        (PyTorch state dict; trained weights when the evaluator returned them)

`na-toolkit report RUN` and `na-toolkit export RUN ...` use the same functions on a finished run (the
exports: search/export.py).
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError, resume_hint
from ..files import read_text, write_text_atomic
from ..machine import fewer_collections
from ..store.lock import live_holder

if TYPE_CHECKING:
    from ..ir.layers import LayerTypeRegistry
    from ..store.base import EvaluationRecord, RunStore
    from .summary import SearchResult

from .compat import session_lines
from .evaluations_file import JSONL_FILE, write_evaluations
from .export import default_export_path, evaluation, export_candidate
from .figure_sources import latency_unit, metric_label, source_lines
from .plots import plot_controller, plot_pareto
from .report_html import report_html


def _fmt_bytes(n: float, digits: int = 3) -> str:
    """A size in decimal units (kB, MB, GB), as every table of a run's outputs writes sizes."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.{digits}g} {unit}"
    return f"{n:.0f} B"


def format_accuracy(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%" if x <= 1.0 else f"{x:.2f}"


#: device figures the tables and outcome lines show only when a budget of the config limits them
_BUDGETED_FIGURES = (("peak_memory_bytes", "peak memory", "MB"), ("energy_mj", "energy", "mJ"))


def _budgeted_figures(summary: Mapping[str, Any], device: str) -> list[tuple[str, str, str]]:
    """(metric, label, unit) of `device`'s peak memory and energy where a budget of the config limits them
    (a device's memory capacity, a budget the search adds, does not put them in every table)."""
    limited = {b["metric"] for b in summary["budgets"] if not b.get("note")}
    return [(f"{m}@{device}", label, unit) for m, label, unit in _BUDGETED_FIGURES if f"{m}@{device}" in limited]


def _figure(metric: str, value: float) -> str:
    return _fmt_bytes(value) if metric.startswith("peak_memory_bytes@") else f"{value:.4g}"


def _header(summary: Mapping[str, Any], metric: str, label: str, unit: str | None) -> str:
    """A device figure's column header with its unit and whether the run measured or estimated it:
    "latency cpu (ms, measured)", "peak memory cpu (estimated)"."""
    notes = [n for n in (unit, metric_label(summary, metric)) if n]
    return f"{label} ({', '.join(notes)})" if notes else label


def _columns(summary: Mapping[str, Any], entries: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
    cols = [("accuracy", "valid acc"), ("test_accuracy", "test acc"), ("model_size_bytes", "size")]
    cols += [
        (f"latency_ms@{d}", _header(summary, f"latency_ms@{d}", f"latency {d}", latency_unit(summary, d)))
        for d in summary["devices"]
    ]
    cols += [(m, _header(summary, m, f"{label} {d}", None if unit == "MB" else unit)) for d in summary["devices"]
             for m, label, unit in _budgeted_figures(summary, d)]  # fmt: skip
    # training time: scored only on devices with a train_time_s budget (docs/search.md)
    cols += [
        (f"train_time_s@{d}", _header(summary, f"train_time_s@{d}", f"train {d}", "s"))
        for d in summary["devices"]
        if any(f"train_time_s@{d}" in e["metrics"] for e in entries)
    ]
    return cols


def _kind(summary: Mapping[str, Any], metric: str) -> str:
    kind = metric_label(summary, metric)
    return f" ({kind})" if kind else ""


def _cell(metric: str, value: Any) -> str:
    if value is None:
        return "-"
    if metric in ("accuracy", "test_accuracy"):
        return format_accuracy(value)
    if metric == "model_size_bytes":
        return _fmt_bytes(value)
    return _figure(metric, value)


def _rows(summary: Mapping[str, Any], entries: list[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    cols = _columns(summary, entries)
    # feasible: within every budget of every device; "best for" a device needs only that device's (and the global)
    feasible = "feasible" if len(summary["devices"]) == 1 else "feasible on all devices"
    header = ["arch", "origin", "moves"] + [c[1] for c in cols] + ["reward", feasible, "best for"]
    rows = []
    for e in entries:
        m = e["metrics"]
        rows.append(
            [e["arch_hash"], e["origin"], str(len(e["moves"]))]
            + [_cell(k, m.get(k)) for k, _ in cols]
            + [
                f"{e['reward']:.4f}",
                "yes" if e["feasible"] else "no",
                ", ".join(d for d, x in _best_entries(summary).items() if x and x["arch_hash"] == e["arch_hash"])
                or "-",
            ]
        )
    return header, rows


def _best_entries(summary: Mapping[str, Any]) -> dict[str, Any]:
    """device → best entry, plus "all" (feasible on every device) when it differs or there are no devices."""
    out = dict(summary["best"])
    overall = summary["best_overall"]
    differs = overall is not None and all(e is None or e["arch_hash"] != overall["arch_hash"] for e in out.values())
    if not out or differs:
        out["all"] = overall
    return out


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def pareto_table(summary: Mapping[str, Any]) -> str:
    """The Pareto set as an aligned text table (what the CLI prints), and below it any device's best network
    that is not on the front: an equally accurate one can dominate it on measured latency, which the choice
    of the best leaves out (docs/search.md), and the lines under the table name it."""
    front = list(summary["pareto"])
    on_front = {e["arch_hash"] for e in front}
    off = {e["arch_hash"]: e for e in _best_entries(summary).values() if e and e["arch_hash"] not in on_front}
    table = text_table(*_rows(summary, front + list(off.values())))
    if off:
        floor = float(summary.get("pareto_min_accuracy") or 0.0)  # absent from a summary of an older run
        low = sum(e["metrics"]["accuracy"] < floor for e in off.values())
        why = []
        if low:
            why.append(
                f"{'all' if low == len(off) else low} below the front's accuracy floor {format_accuracy(floor)} "
                "(search.pareto_min_accuracy; by default 1.1 x the share of the commonest class)"
            )
        if low < len(off):
            why.append(
                "an equally accurate network measured no slower dominates "
                + ("it" if len(off) - low == 1 else "them")
                + ", and the best is chosen without measured latency"
            )
        rows = f"the last {len(off)} row{'s' * (len(off) > 1)}"
        table += f"\n({rows}: best for a device but not on the front; {'; '.join(why)})"
    return table


def outcome_lines(summary: Mapping[str, Any]) -> list[str]:
    """One line per device: its best feasible candidate, or why there is none."""
    lines = []
    for d, e in _best_entries(summary).items():
        if e is None:
            lines.append(f"{d}: NO FEASIBLE CANDIDATE: {summary['infeasible'].get(d, '')}")
        else:
            m = e["metrics"]
            lat, train = m.get(f"latency_ms@{d}"), m.get(f"train_time_s@{d}")
            lines.append(
                f"{d}: best {e['arch_hash']} valid acc {format_accuracy(m['accuracy'])}, "
                f"test acc {format_accuracy(m.get('test_accuracy'))}, "
                f"size {_fmt_bytes(m['model_size_bytes'])}"
                + (
                    f", latency {lat:.4g} {latency_unit(summary, d)}{_kind(summary, f'latency_ms@{d}')}"
                    if lat is not None
                    else ""
                )
                + "".join(
                    f", {label} {_figure(metric, m[metric])}"
                    + ("" if unit == "MB" else f" {unit}")
                    + _kind(summary, metric)
                    for metric, label, unit in _budgeted_figures(summary, d)
                    if metric in m
                )
                + (
                    f", training {train:.4g} s{_kind(summary, f'train_time_s@{d}') or ' (estimated)'}"
                    if train is not None
                    else ""
                )
            )
    return lines


# ---- report ------------------------------------------------------------------------------------------------
def report_markdown(summary: Mapping[str, Any]) -> str:
    c = summary["counters"]
    lines = [
        f"# Search run {summary['run_id']}",
        "",
        f"- status: {summary['status']}; stopped because {summary['stop_reason']}",
        f"- strategy: {summary['strategy']}; seed network: {summary['config'].get('seed_network')} "
        f"({summary['seed_hash']})",
        f"- ground-truth evaluations: {c['evaluations']} of {summary['evaluation_budget']} "
        f"({c['failed_evaluations']} failed, {c['evaluations_replayed']} served from the store on resume); "
        f"measurements: {c['measurements']} ({c['measurements_replayed']} served from the store on resume)",
        f"- predictor calls: {c['predictor_calls']} (fits: {c['predictor_fits']}); time-model estimates: "
        f"{c['time_model_calls']}; candidates scored: {c['candidates_scored']} in {c['score_calls']} calls; "
        f"strategy proposals: {c['proposed']} in {c['strategy_asks']} asks over {c.get('rounds', '?')} rounds "
        f"({c['duplicates']} repeats)",
        f"- elapsed: {summary['elapsed_s']:.1f} s",
        "",
        "## Budgets",
        "",
    ]
    if summary["budgets"]:
        ok = [e for e in summary["evaluated"] if e.get("error") is None]
        lines.append(
            markdown_table(
                ["metric", "limit", "weight", "hard", "met by (evaluated)"],
                [
                    [
                        b["metric"] + (f" ({b['note']})" if b.get("note") else ""),
                        limit_text(b["metric"], b["limit"]),
                        f"{b['weight']:.3g}",
                        "yes" if b["hard"] else "no",
                        _met_by(b, ok),
                    ]
                    for b in summary["budgets"]
                ],
            )
        )
    else:
        lines.append("(none: accuracy alone)")
    lines += ["", "## Best feasible candidate per device", ""]
    lines += [f"- {line}" for line in outcome_lines(summary)]
    lines += [
        "",
        "## Pareto set (accuracy, model size, latency per device)",
        "",
        markdown_table(*_rows(summary, summary["pareto"])),
    ]
    sources = source_lines(summary)
    if sources:
        lines += ["", "## Where the figures come from (measured or estimated)", ""] + [f"- {x}" for x in sources]
    sessions = session_lines(summary.get("provenance") or {})  # start, resumes: the versions of each
    if sessions:
        lines += ["", "## Sessions (na_toolkit and plugin versions)", ""] + [f"- {x}" for x in sessions]
    if summary["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in summary["warnings"]]
    if summary.get("outputs"):
        files = [(k, v) for k, v in summary["outputs"].items() if not k.endswith(".trained_weights")]
        lines += ["", "## Files (relative to the run folder)", ""] + [
            f"- {k}: `{relative_to_run(v, summary.get('run_dir'))}`"
            + (" (trained weights)" if summary["outputs"].get(f"{k}.trained_weights") == "true" else "")
            for k, v in files
        ]
    return "\n".join(lines) + "\n"


def limit_text(metric: str, limit: float) -> str:
    """A budget's limit with the unit its metric's name carries: `0.2 ms`, `2.147 GB (2,147,483,648 B)` (sizes in
    the decimal units of the tables' size columns, with the exact bytes)."""
    base = metric.partition("@")[0]
    if base.endswith("_bytes"):
        return f"{_fmt_bytes(limit, 4)} ({limit:,.0f} B)" if limit >= 1e3 else f"{limit:,.0f} B"
    unit = next((u for suffix, u in (("_ms", "ms"), ("_mj", "mJ"), ("_s", "s")) if base.endswith(suffix)), "")
    return f"{limit:.6g} {unit}".rstrip()


def _met_by(budget: Mapping[str, Any], evaluated: list[Mapping[str, Any]]) -> str:
    """How many successful evaluations meet `budget`, of those that have its metric: which budget bound."""
    values = [e["metrics"][budget["metric"]] for e in evaluated if budget["metric"] in e["metrics"]]
    return f"{sum(v <= budget['limit'] for v in values)} of {len(values)}"


def relative_to_run(path: str, run_dir: str | None) -> str:
    """`path` relative to the run folder (a report stays right when the folder is moved or copied)."""
    if not run_dir:
        return path
    try:
        return Path(path).relative_to(run_dir).as_posix() or "."
    except ValueError:
        return path


def strategy_report(store: RunStore) -> dict[str, Any] | None:
    """The report a strategy keeps in its checkpointed state (`report`: per-update series and totals), or
    None (a strategy that reports nothing, or a run with no checkpoint yet)."""
    checkpoint = store.load_checkpoint("strategy")
    if checkpoint is None or not isinstance(checkpoint[1], Mapping):
        return None
    report = checkpoint[1].get("report")
    return dict(report) if isinstance(report, Mapping) else None


def write_outputs(result: SearchResult, store: RunStore, layer_types: LayerTypeRegistry) -> dict[str, str]:
    """Write every output file of a finished search into its run folder; returns name → path (also kept
    in `result.outputs`). `layer_types`: the run's toolkit's. A folder that cannot take them (read-only,
    full disk) is a StoreError naming it: the run's evaluations are in its store, a resume writes them."""
    try:
        with fewer_collections():  # a document per evaluation, in a process holding torch's objects
            return _write_outputs(result, store, layer_types)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise StoreError(
            f"cannot write the outputs of run {result.run_id} into {str(result.run_dir)!r}: "
            f"{exc.strerror or exc}{where}; its evaluations are kept: once the folder can take them (writable, "
            "with free space, nothing in their way), resume the run to write them"
        ) from None


def _write_outputs(result: SearchResult, store: RunStore, layer_types: LayerTypeRegistry) -> dict[str, str]:
    run_dir = Path(result.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, str] = {}
    summary = result.summary()
    for device in list(summary["best"]) + ["all"]:
        entry = summary["best_overall"] if device == "all" else summary["best"][device]
        if entry is None:
            continue
        onnx_path, torch_path = (default_export_path(run_dir, fmt, device=device) for fmt in ("onnx", "torch"))
        folder = onnx_path.parent
        folder.mkdir(parents=True, exist_ok=True)
        # arch.json and one sidecar for both, preprocessing.json (export_files' names in best/<device>/; model.onnx
        # also carries the sidecar as metadata): what the network expects of its input, its outputs, its origin
        onnx_info = export_candidate(store, entry["arch_hash"], "onnx", onnx_path, layer_types)
        export_candidate(store, entry["arch_hash"], "torch", torch_path, layer_types)
        outputs[f"best.{device}"] = str(folder)
        outputs[f"best.{device}.trained_weights"] = str(onnx_info["trained_weights"]).lower()
    pareto = [dict(e, arch=evaluation(store, e["arch_hash"]).arch_json) for e in summary["pareto"]]
    objectives = ["accuracy:max", "model_size_bytes:min"] + [f"latency_ms@{d}:min" for d in result.devices]
    _write_json(run_dir / "pareto.json", {"run_id": result.run_id, "objectives": objectives, "members": pareto})
    outputs["pareto"] = str(run_dir / "pareto.json")
    outputs.update(write_evaluations(result, run_dir))
    plot_pareto(summary, run_dir / "pareto.png")
    outputs["plot"] = str(run_dir / "pareto.png")
    result.controller = strategy_report(store)
    if result.controller is not None and plot_controller(result.controller, run_dir / "controller.png", result.run_id):
        outputs["controller_plot"] = str(run_dir / "controller.png")
    outputs["summary"] = str(run_dir / "summary.json")
    outputs["report"] = str(run_dir / "report.md")
    outputs["report_html"] = str(run_dir / "report.html")
    result.outputs = outputs
    summary = result.summary()
    _write_json(run_dir / "summary.json", summary)
    write_text_atomic(run_dir / "report.md", report_markdown(summary))
    write_text_atomic(run_dir / "report.html", report_html(summary))
    return outputs


def _write_json(path: Path, doc: Any) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, default=str))


#: the fields of a stored run result that report and export read, and their types
SUMMARY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "run_id": str,
    "status": str,
    "stop_reason": str,
    "seed_hash": str,
    "strategy": str,
    "devices": list,
    "pareto": list,
    "evaluated": list,
    "warnings": list,
    "budgets": list,
    "best": dict,
    "best_overall": (dict, type(None)),  # None: no candidate met every budget
    "infeasible": dict,
    "counters": dict,
    "config": dict,
    "elapsed_s": (int, float),
    "evaluation_budget": int,
}


#: the run's artifact saying what ended a failed run (`{"error": "Type: message"}`), read by `runs` and `report`
FAILURE_ARTIFACT = "failure"


def most_accurate(evaluations: Sequence[EvaluationRecord]) -> EvaluationRecord | None:
    """The successful evaluation with the highest finite accuracy (ties: the earlier), or None: what a run
    that did not finish offers before any verdict per device."""
    scored = [
        e
        for e in evaluations
        if e.error is None and isinstance(acc := e.metrics.get("accuracy"), int | float) and math.isfinite(acc)
    ]
    return max(scored, key=lambda e: (e.metrics["accuracy"], -e.seq)) if scored else None


def failure_of(store: RunStore) -> str | None:
    """What ended a failed run, as it recorded it (None: nothing recorded, e.g. a run made before it was)."""
    doc = store.artifact(FAILURE_ARTIFACT)
    return str(doc["error"]) if isinstance(doc, dict) and doc.get("error") else None


def _stored_so_far(store: RunStore, folder: Any) -> str:
    """What an unfinished run already holds, for its refusal ("" when nothing): how many networks were
    evaluated and how the most accurate of them is exported now (`export RUN --arch HASH` needs no finished
    run)."""
    evaluations = store.evaluations()
    done = [e for e in evaluations if e.error is None]
    top = most_accurate(evaluations)
    table = store.path.parent / JSONL_FILE if store.path is not None else None  # kept up to date as it goes
    rows = ""
    if table is not None and table.is_file():
        written = sum(1 for line in read_text(table, JSONL_FILE, StoreError).splitlines() if line.strip())
        rows = f"; its evaluations so far are in {table}"
        if written < len(evaluations):  # it is rewritten after each round; the store holds every one at once
            rows = f"; {written} of its {len(evaluations)} evaluations are in {table} (written after each round)"
    if top is None:
        return (f"; it holds {len(done)} evaluated network(s)" if done else "") + rows
    return (
        f"; of its {len(done)} evaluated network(s) the most accurate so far (feasible or not), {top.arch_hash[:12]} "
        "(valid acc "
        f"{format_accuracy(top.metrics['accuracy'])}), exports now with "
        f"`na-toolkit export {shlex.quote(str(folder))} --arch {top.arch_hash[:12]} --format onnx`{rows}"
    )


def load_summary(store: RunStore) -> dict[str, Any]:
    """The summary of a finished run from its store (StoreError if the run did not finish, or its stored
    result lacks a field report and export read)."""
    run = store.run()
    if run.status != "finished" or run.result is None:
        folder = store.path.parent if store.path is not None else run.run_id
        writer = live_holder(folder) if store.path is not None else None
        if writer is not None:  # a live search writes it: resuming now would only be refused
            raise StoreError(
                f"run {run.run_id} is still being written by a live search ({writer}); wait for it to finish"
                + _stored_so_far(store, folder)
            )
        if run.status == "running":  # with nobody writing it: what `na-toolkit runs` calls interrupted
            state = "was interrupted (it stopped without finishing)"
        else:  # failed, with what ended it where the run recorded it
            failure = failure_of(store)
            state = f"{run.status} ({failure})" if failure else run.status
        raise StoreError(
            f"run {run.run_id} {state}; continue it with {resume_hint(folder)}" + _stored_so_far(store, folder)
        )
    bad = [k for k, kind in SUMMARY_FIELDS.items() if k not in run.result or not isinstance(run.result[k], kind)]
    if bad:
        raise StoreError(
            f"run {run.run_id}: its stored result is damaged (field(s) {', '.join(bad)} missing or of the wrong "
            "type); report and export need an intact store"
        )
    return run.result

"""What a what-if found, for people: the table (text and markdown), the plot, and the `--out` folder.

    whatif.json       the result (`WhatIfResult.to_json()`)
    whatif.md         the table, with the setting it ran in
    whatif.png        best accuracy per variant, and its latency split into compute-, memory- and
                      launch-bound time, with the latency budget (matplotlib, Agg)
    hardware/*.toml   each variant's hardware model (what its device's roofline read)

Everything here reads the result's JSON, so a committed `whatif.json` can be drawn again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..files import write_atomic, write_text_atomic
from ..timemodels.hwmodel import save_hardware_model
from .outputs import format_accuracy, markdown_table, text_table
from .whatif import BOUNDS, WhatIfResult, variant_note
from .whatif_vary import short_name

#: what each bound is drawn in
BOUND_COLORS = {"compute": "tab:orange", "memory": "tab:blue", "launch": "0.6"}


def _fields(doc: Mapping[str, Any]) -> list[str]:
    return [short_name(v["field"]) for v in doc["varies"]]


def _shares(bounds: Mapping[str, Any] | None) -> str:
    if bounds is None:
        return "-"
    return " / ".join(f"{100 * bounds[f'{b}_share']:.0f}%" for b in BOUNDS)


def whatif_rows(doc: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The table of a what-if result's JSON: one row per hardware variant."""
    fields = _fields(doc)
    header = fields + [
        "best network",
        "valid acc",
        "test acc",
        f"latency {doc['device']} (ms)",
        "compute / memory / launch",
        "bound",
        "feasible",
        "vs 1x",
    ]
    rows = []
    for o in doc["variants"]:
        same = o.get("same_as_baseline")
        rows.append(
            [o["settings"][f] for f in fields]
            + [
                o["best_hash"] or "none feasible",
                format_accuracy(o["accuracy"]),
                format_accuracy(o["test_accuracy"]),
                "-" if o["latency_ms"] is None else f"{o['latency_ms']:.4g}",
                _shares(o["bounds"]),
                "-" if o["bounds"] is None else o["bounds"]["bound"],
                f"{o['feasible_evaluations']}/{o['evaluations']}",
                "baseline" if o["baseline"] else "-" if same is None else "same" if same else "changed",
            ]
        )
    return header, rows


def whatif_notes(doc: Mapping[str, Any]) -> list[str]:
    """One line per variant whose row needs a word more (`whatif.variant_note`): a search that stopped short of
    its evaluations and why, failed evaluations, why none is feasible."""
    notes = ((o["label"], variant_note(o, doc["evaluations"])) for o in doc["variants"])
    done, planned = len(doc["variants"]), doc.get("variants_planned", len(doc["variants"]))
    stopped = [f"stopped after {done} of {planned} variants: the others did not run"] if done < planned else []
    return stopped + [f"{label}: {note}" for label, note in notes if note]


def whatif_text(doc: Mapping[str, Any]) -> str:
    """The table as aligned text (what the CLI prints), with the setting above it and the notes below."""
    notes = whatif_notes(doc)
    return _setting(doc) + "\n\n" + text_table(*whatif_rows(doc)) + "".join("\n" + n for n in notes)


def _setting(doc: Mapping[str, Any]) -> str:
    budgets = ", ".join(f"{b['metric']} <= {b['limit']:g}{' (hard)' if b['hard'] else ''}" for b in doc["budgets"])
    # the one budget a variant sets itself: a network that does not fit the device's memory cannot run there
    capacity = f"peak_memory_bytes@{doc['device']} <= each variant's memory capacity (hard)"
    budgets = f"{budgets}, {capacity}" if budgets else capacity
    return (
        f"what-if of device {doc['device']} (hardware model {doc['hardware_model']}, {doc['time_model']} "
        f"{doc['dtype']}, batch {doc['batch_size']}); config {doc['config']}, seed {doc['random_seed']}, "
        f"{doc['evaluations']} evaluations per variant; budgets: {budgets}"
    )


def whatif_markdown(doc: Mapping[str, Any]) -> str:
    notes = [f"- {n}" for n in whatif_notes(doc)]
    lines = [
        f"# What-if hardware: {doc['device']}",
        "",
        _setting(doc) + ".",
        "",
        "Each variant ran the same search (seed, budgets, evaluations); only the hardware model differs. "
        "`compute / memory / launch`: shares of the best network's roofline latency spent in compute-bound "
        "kernels, memory-bound kernels and launch overheads.",
        "",
        markdown_table(*whatif_rows(doc)),
        "",
        *notes,
        *([""] if notes else []),
        f"Distinct best networks: {doc['distinct_best_networks']} of {len(doc['variants'])} variants.",
        "",
    ]
    return "\n".join(lines)


def plot_whatif(doc: Mapping[str, Any], path: Path) -> None:
    """Accuracy of the best network per variant (left) and its latency by bound (right), written to
    `path` atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    variants = doc["variants"]
    fields = _fields(doc)
    labels = ["\n".join(o["settings"][f] for f in fields) for o in variants]
    xs = list(range(len(variants)))
    fig, (acc_ax, lat_ax) = plt.subplots(1, 2, figsize=(max(8.0, 1.6 * len(variants) + 4), 4.2))
    for key, name, marker in (("accuracy", "valid", "o"), ("test_accuracy", "test", "s")):
        pts = [(x, 100 * o[key]) for x, o in zip(xs, variants) if o[key] is not None]
        if pts:
            acc_ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=f"{name} accuracy")
    for x, o in zip(xs, variants):
        if o["best_hash"] is None:
            acc_ax.annotate("none feasible", (x, 0.5), xycoords=("data", "axes fraction"), ha="center", fontsize=7)
    acc_ax.set_ylabel("best network's accuracy (%)")
    acc_ax.set_title("best feasible network", fontsize=9)
    bottom = [0.0] * len(variants)
    for bound in BOUNDS:
        heights = [(o["latency_ms"] or 0.0) * (o["bounds"][f"{bound}_share"] if o["bounds"] else 0.0) for o in variants]
        lat_ax.bar(xs, heights, bottom=bottom, color=BOUND_COLORS[bound], label=f"{bound}-bound")
        bottom = [b + h for b, h in zip(bottom, heights)]
    top = max(bottom, default=0.0)
    for b in doc["budgets"]:
        if b["metric"] == f"latency_ms@{doc['device']}":
            lat_ax.axhline(b["limit"], ls="--", c="tab:red", lw=1, label="latency budget")
            top = max(top, b["limit"])
    lat_ax.set_ylim(0, 1.15 * top if top > 0 else 1.0)
    lat_ax.set_ylabel(f"latency on {doc['device']} (ms)")
    lat_ax.set_title("its latency by what bounds it (roofline)", fontsize=9)
    for ax in (acc_ax, lat_ax):
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_xlabel(" / ".join(fields), fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    fig.suptitle(f"what-if {doc['hardware_model']}: {doc['config']}, seed {doc['random_seed']}", fontsize=10)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def write_whatif_outputs(result: WhatIfResult, out_dir: str | Path) -> dict[str, str]:
    """Write the what-if's files into `out_dir` (each atomically); returns name → path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    doc = result.to_json()
    files = {"json": folder / "whatif.json", "table": folder / "whatif.md", "plot": folder / "whatif.png"}
    for model in result.models:
        path = save_hardware_model(model, folder / "hardware" / f"{model.name}.toml")
        files[f"hardware.{model.name}"] = path
    plot_whatif(doc, files["plot"])
    write_text_atomic(files["table"], whatif_markdown(doc))
    write_text_atomic(files["json"], json.dumps(doc, indent=2) + "\n")
    return {k: str(v) for k, v in files.items()}

"""The run folder's figures (matplotlib, Agg backend, imported on first use): `pareto.png`, accuracy against
each device's latency and against model size, and `controller.png`, a learning strategy's series per update
(search/outputs.py writes them)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


# ---- the Pareto plot ------------------------------------------------------------------------------------
def plot_pareto(summary: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    axes_metrics = [f"latency_ms@{d}" for d in summary["devices"]] + ["model_size_bytes"]
    ok = [e for e in summary["evaluated"] if e["error"] is None]
    pareto = {e["arch_hash"] for e in summary["pareto"]}
    limits = {b["metric"]: b["limit"] for b in summary["budgets"]}
    fig, axes = plt.subplots(1, len(axes_metrics), figsize=(5 * len(axes_metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], axes_metrics):
        pts = [(e["metrics"][metric], 100 * e["metrics"]["accuracy"], e) for e in ok if metric in e["metrics"]]
        if not pts:
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, c="0.7", label="evaluated")
        front = [p for p in pts if p[2]["arch_hash"] in pareto]
        ax.scatter([p[0] for p in front], [p[1] for p in front], s=30, c="tab:blue", label="Pareto set")
        seed = [p for p in pts if p[2]["origin"] == "seed"]
        ax.scatter(
            [p[0] for p in seed],
            [p[1] for p in seed],
            s=60,
            marker="s",
            facecolors="none",
            edgecolors="k",
            label="seed",
        )
        device = metric.partition("@")[2]
        best = summary["best"].get(device) if device else summary["best_overall"]
        if best is not None and metric in best["metrics"]:
            ax.scatter(
                [best["metrics"][metric]],
                [100 * best["metrics"]["accuracy"]],
                s=160,
                marker="*",
                c="tab:red",
                label="best feasible",
            )
        if metric in limits:
            ax.axvline(limits[metric], ls="--", c="tab:red", lw=1, label="budget")
        xs = [p[0] for p in pts] + ([limits[metric]] if metric in limits else [])
        if min(xs) > 0 and max(xs) / min(xs) > 20:  # sizes and latencies span decades (a 16 MB budget vs kB nets)
            ax.set_xscale("log")
        ax.set_xlabel(_axis_label(summary, metric))
        ax.set_ylabel("validation accuracy (%)")
        _focus_on_front(ax, [p[1] for p in pts], [p[1] for p in front])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{summary['run_id']}: {len(ok)} evaluated, {len(pareto)} on the Pareto front")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _axis_label(summary: Mapping[str, Any], metric: str) -> str:
    """`latency_ms@cpu` -> "latency_ms on cpu (ms, measured median)": the unit and where the figure comes from,
    as the Pareto table labels it (a run recorded before sources: the unit alone)."""
    from .figure_sources import latency_unit, metric_label

    name, _, device = metric.partition("@")
    unit = (latency_unit(summary, device) if device else "ms") if name.endswith("_ms") else ""
    unit = unit or ("bytes" if name.endswith("_bytes") else "")
    notes = ", ".join(n for n in (unit, metric_label(summary, metric) if device else None) if n)
    return (name.removesuffix("_ms").removesuffix("_bytes") + (f" on {device}" if device else "")) + (
        f" ({notes})" if notes else ""
    )


def _focus_on_front(ax: Any, accuracies: list[float], front: list[float]) -> None:
    """Accuracy axis from just under the Pareto front to the top, not 0-100: chance-level networks would
    otherwise squash the front into a sliver at the top. Networks below are drawn on the bottom edge (as
    triangles) and counted in the legend, so none disappears."""
    if not front:
        return
    lo, hi = min(front), max(accuracies)
    span = max(hi - lo, 0.5)
    bottom = lo - 0.15 * span
    below = [a for a in accuracies if a < bottom]
    if below:
        edge = bottom + 0.02 * span
        ax.scatter([], [], s=14, marker="v", c="0.5", label=f"{len(below)} below (drawn at the edge)")
        for coll in ax.collections:
            offsets = coll.get_offsets()
            if len(offsets):
                offsets[:, 1] = [max(y, edge) for y in offsets[:, 1]]
                coll.set_offsets(offsets)
    ax.set_ylim(bottom, hi + 0.1 * span)


#: (series key, axis title) of the controller plot's panels
CONTROLLER_PANELS = (
    ("reward_mean", "mean predicted reward of the policy's proposals"),
    ("entropy", "policy entropy"),
    ("value_loss", "value loss"),
)


def report_panels(series: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """What a strategy report's per-update `series` is drawn as: (key, title) per panel. neural-architect's
    figures (CONTROLLER_PANELS) where its entries hold them; otherwise a plugin strategy's own numeric keys
    (bools and `ask`, the round an update belongs to, left out), in the order they first appear, at most 4."""
    if any(k in e for e in series for k, _label in CONTROLLER_PANELS):
        return list(CONTROLLER_PANELS)
    keys: dict[str, None] = {}
    for e in series:
        for k, v in e.items():
            if k != "ask" and isinstance(v, int | float) and not isinstance(v, bool):
                keys.setdefault(k, None)
    return [(k, k) for k in list(keys)[:4]]


def update_points(series: list[Mapping[str, Any]], key: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(update number, `key`) of the updates on the predictors' scores, and apart those on evaluated networks'
    real rewards (neural-architect's `scoring_budget`: an entry with `evaluated`). Their losses are of another
    batch (a few networks, not a round of scored ones), so one line through both would read as instability."""
    points = [(i + 1, float(e[key])) for i, e in enumerate(series) if e.get(key) is not None]
    real = {i + 1 for i, e in enumerate(series) if e.get("evaluated")}
    return [p for p in points if p[0] not in real], [p for p in points if p[0] in real]


def plot_controller(report: Mapping[str, Any], path: Path, title: str = "") -> bool:
    """The strategy's learning per update (`report_panels`); False (no file) when it has no series or nothing
    in it to draw."""
    series = list(report.get("series") or [])
    panels = report_panels(series)
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        points, real = update_points(series, key)
        if points or real:
            ax.plot([p[0] for p in points], [p[1] for p in points], lw=1.2, marker=".", ms=3, label="on scores")
            if real:
                ax.plot(
                    [p[0] for p in real],
                    [p[1] for p in real],
                    ls="",
                    marker="o",
                    ms=4,
                    c="#c33",
                    label="on real results",
                )
                ax.legend(fontsize=7)
            # a line per ask (the loop's round): the predictor is refit in between, so rewards jump there
            asks = [i + 1 for i in range(1, len(series)) if series[i].get("ask") != series[i - 1].get("ask")]
            for x in asks:
                ax.axvline(x - 0.5, c="0.85", lw=0.6, zorder=0)
        else:
            ax.text(0.5, 0.5, "no updates (policy not trained)", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("update")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    budget = report.get("scoring_budget")
    if "policy" in report:  # neural-architect's
        fig.suptitle(
            f"{title}: policy {report['policy']}, {report.get('updates', 0)} updates, scoring budget "
            f"{'unlimited' if budget is None else f'{budget} per evaluation'}"
        )
    else:
        fig.suptitle(f"{title}: {len(series)} updates")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

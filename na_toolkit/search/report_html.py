"""`report.html`: one self-contained page per run (no server, no network, no script library).

Figures are inline SVG drawn here; each figure carries the data it draws as a JSON block beside it
(`<script type="application/json" class="figure-data">`), so a reader (or a test) can check every point.
Sections: reward and best feasible reward so far over the evaluations; accuracy against each other
objective (model size, each device's latency) with the Pareto front and the budgets, each axis labelled
measured or estimated (from the run's provenance); the controller's learning curves when the strategy
reports them; the best network per device with the moves that led to it; whether each device figure is
measured or estimated.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .figure_sources import latency_unit, metric_sources, source_lines
from .plots import report_panels, update_points

W, H, PAD = 560, 300, 48


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _scale(
    values: Sequence[float], lo_px: float, hi_px: float, log: bool = False
) -> tuple[Callable[[float], float], tuple[float, float]]:
    vals = [math.log10(v) for v in values if v > 0] if log else list(values)
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5

    def f(v: float) -> float:
        x = math.log10(v) if log else v
        if log and v <= 0:
            x = lo
        return lo_px + (x - lo) / (hi - lo) * (hi_px - lo_px)

    return f, (10**lo, 10**hi) if log else (lo, hi)


def _svg(
    title: str,
    xlabel: str,
    ylabel: str,
    series: list[dict[str, Any]],
    vlines: Sequence[tuple[float, str]] = (),
    logx: bool = False,
) -> str:
    """One chart: `series` of {"name", "points": [(x, y)], "kind": "dots" | "line", "color"}."""
    xs = [p[0] for s in series for p in s["points"]] + [v for v, _ in vlines]
    ys = [p[1] for s in series for p in s["points"]]
    fx, (x0, x1) = _scale(xs or [0.0, 1.0], PAD, W - 12, logx and all(x > 0 for x in xs))
    fy, (y0, y1) = _scale(ys or [0.0, 1.0], H - PAD, 24)
    out = [
        f'<svg width="{W}" height="{H}" role="img" aria-label="{_esc(title)}">',
        f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="13">{_esc(title)}</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - 12}" y2="{H - PAD}" stroke="#444"/>',
        f'<line x1="{PAD}" y1="24" x2="{PAD}" y2="{H - PAD}" stroke="#444"/>',
        f'<text x="{W / 2}" y="{H - 10}" text-anchor="middle" font-size="11">{_esc(xlabel)}</text>',
        f'<text x="12" y="{H / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 12 {H / 2})">'
        f"{_esc(ylabel)}</text>",
        f'<text x="{PAD}" y="{H - PAD + 14}" font-size="10">{x0:.4g}</text>',
        f'<text x="{W - 12}" y="{H - PAD + 14}" font-size="10" text-anchor="end">{x1:.4g}</text>',
        f'<text x="{PAD - 4}" y="{H - PAD}" font-size="10" text-anchor="end">{y0:.4g}</text>',
        f'<text x="{PAD - 4}" y="30" font-size="10" text-anchor="end">{y1:.4g}</text>',
    ]
    for v, label in vlines:
        x = fx(v)
        out.append(f'<line x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="{H - PAD}" stroke="#c33" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 3:.1f}" y="36" font-size="10" fill="#c33">{_esc(label)}</text>')
    for k, s in enumerate(series):
        color = s.get("color", "#36c")
        pts = [(fx(x), fy(y)) for x, y in s["points"]]
        if s.get("kind") == "line" and pts:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        else:
            r = s.get("radius", 3)
            out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}"/>' for x, y in pts]
        out.append(f'<text x="{W - 14}" y="{40 + 13 * k}" font-size="10" text-anchor="end" fill="{color}">')
        out.append(f"{_esc(s['name'])} ({len(pts)})</text>")
    out.append("</svg>")
    data = {"title": title, "x": xlabel, "y": ylabel, "series": series, "vlines": [list(v) for v in vlines]}
    return (
        '<figure class="figure">'
        + "".join(out)
        + '<script type="application/json" class="figure-data">'
        + json.dumps(data, default=float).replace("</", "<\\/")
        + "</script></figure>"
    )


def _metric_source(summary: Mapping[str, Any], metric: str) -> str:
    """'measured (how)' or 'estimated (how)' for a device metric, from the run's provenance."""
    if "@" not in metric:
        return "from the network (exact)" if metric == "model_size_bytes" else "evaluated"
    sources = summary.get("metric_sources")
    source = (sources if isinstance(sources, Mapping) else metric_sources(summary.get("provenance"))).get(metric)
    if not isinstance(source, Mapping):
        return "source unknown"
    return f"{source.get('kind')} ({source.get('how')})"


def _progress_figure(evaluated: list[Mapping[str, Any]]) -> str:
    ok = [e for e in evaluated if e.get("error") is None]
    rewards = [(e["seq"], e["reward"]) for e in ok]
    best, curve = None, []
    for e in ok:
        if e.get("feasible"):
            best = e["reward"] if best is None else max(best, e["reward"])
        if best is not None:
            curve.append((e["seq"], best))
    return _svg(
        "reward over the evaluations",
        "evaluation",
        "reward",
        [
            {"name": "reward of each evaluated network", "points": rewards, "kind": "dots", "color": "#999"},
            {"name": "best feasible so far", "points": curve, "kind": "line", "color": "#c33"},
        ],
    )


def _pareto_figures(summary: Mapping[str, Any]) -> list[str]:
    ok = [e for e in summary["evaluated"] if e.get("error") is None]
    front = {e["arch_hash"] for e in summary["pareto"]}
    limits = {b["metric"]: b["limit"] for b in summary.get("budgets", [])}
    figures = []
    for metric in [f"latency_ms@{d}" for d in summary["devices"]] + ["model_size_bytes"]:
        # accuracy in % as the report's tables and pareto.png give it; each axis with its unit
        pts = [(e["metrics"][metric], 100 * e["metrics"]["accuracy"], e) for e in ok if metric in e["metrics"]]
        if not pts:
            continue
        xs = [p[0] for p in pts]
        unit = "bytes" if metric == "model_size_bytes" else _batch_note(summary, metric).removeprefix(", ") or "ms"
        figures.append(
            _svg(
                f"accuracy vs {metric} ({_metric_source(summary, metric)}{_batch_note(summary, metric)})",
                f"{metric} ({unit})",
                "validation accuracy (%)",
                [
                    {"name": "evaluated", "points": [(x, y) for x, y, e in pts if e["arch_hash"] not in front]},
                    {
                        "name": "Pareto front",
                        "points": [(x, y) for x, y, e in pts if e["arch_hash"] in front],
                        "color": "#c33",
                        "radius": 4,
                    },
                ],
                vlines=[(limits[metric], "budget")] if metric in limits else [],
                logx=min(xs) > 0 and max(xs) / min(xs) > 20,
            )
        )
    return figures


def _batch_note(summary: Mapping[str, Any], metric: str) -> str:
    """ ", ms per batch of 8" for the latency of a device whose figures are of a batch; else nothing."""
    unit = latency_unit(summary, metric.partition("@")[2]) if metric.startswith("latency_ms@") else "ms"
    return "" if unit == "ms" else f", {unit}"


def _controller_figures(report: Mapping[str, Any] | None) -> list[str]:
    series = list((report or {}).get("series") or [])
    figures = []
    for key, title in report_panels(series):
        points, real = update_points(series, key)
        lines: list[dict[str, Any]] = [{"name": f"{key} (updates on scores)", "points": points, "kind": "line"}]
        lines = lines if points else []
        if real:
            lines.append({"name": f"{key} (updates on real results)", "points": real, "color": "#c33", "radius": 4})
        if lines:
            figures.append(_svg(title, "controller update", key, lines))
    return figures


def _best_table(summary: Mapping[str, Any]) -> str:
    # the accuracy as report.md, the CLI, `runs` and `export` show it ("99.44%", not 0.9944): one formatter
    from .outputs import format_accuracy  # not at the top: outputs imports this module

    rows = []
    for device, e in list(summary["best"].items()) + [("all", summary.get("best_overall"))]:
        if e is None:
            rows.append(f"<tr><td>{_esc(device)}</td><td colspan='4'>no network met the budgets</td></tr>")
            continue
        moves = " → ".join(
            f"{m.get('operation')}({', '.join(f'{k}={v}' for k, v in (m.get('params') or {}).items())})"
            for m in e.get("moves", [])
        )
        acc_text = format_accuracy(e["metrics"].get("accuracy"))
        reward_text = f"{e['reward']:.4f}"
        rows.append(
            f"<tr><td>{_esc(device)}</td><td><code>{_esc(e['arch_hash'])}</code></td>"
            f"<td>{acc_text}</td><td>{reward_text}</td><td>{_esc(moves or 'the seed network')}</td></tr>"
        )
    return (
        "<table><tr><th>device</th><th>network</th><th>valid acc</th><th>reward</th>"
        "<th>moves from the seed</th></tr>" + "".join(rows) + "</table>"
    )


def report_html(summary: Mapping[str, Any]) -> str:
    """The page (a str); `write_outputs` saves it as `report.html`."""
    counters = summary.get("counters", {})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>run {_esc(summary['run_id'])}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:1em auto;color:#222}"
        "figure{display:inline-block;margin:6px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}</style></head><body>",
        f"<h1>Search run {_esc(summary['run_id'])}</h1>",
        f"<p>status {_esc(summary['status'])} ({_esc(summary.get('stop_reason', ''))}); strategy "
        f"{_esc(summary.get('strategy', ''))}; {_esc(counters.get('evaluations', len(summary['evaluated'])))} "
        f"evaluations; devices {_esc(', '.join(summary['devices']) or 'none')}</p>",
        "<h2>Progress</h2>",
        _progress_figure(list(summary["evaluated"])),
        "<h2>Trade-offs (accuracy against each objective)</h2>",
        *_pareto_figures(summary),
    ]
    controller = _controller_figures(summary.get("controller"))
    if controller:
        parts += ["<h2>The controller's learning</h2>", *controller]
    parts += ["<h2>Best networks and the moves that made them</h2>", _best_table(summary)]
    sources = source_lines(summary)
    if sources:
        parts += ["<h2>Where the figures come from (measured or estimated)</h2><ul>"]
        parts += [*[f"<li>{_esc(line)}</li>" for line in sources], "</ul>"]
    if summary.get("warnings"):
        parts += ["<h2>Warnings</h2><ul>", *[f"<li>{_esc(w)}</li>" for w in summary["warnings"]], "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)

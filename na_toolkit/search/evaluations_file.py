"""Every evaluated network of a run as a table: `evaluations.jsonl` and `evaluations.csv` in the run folder.

One row per ground-truth evaluation, in evaluation order: where it came from (origin, parent, the moves
that made it), its reward and feasibility, every measured or predicted metric as its own column, and its
architecture. The JSON Lines file is what `na-toolkit predict fit --data evaluations.jsonl --target
accuracy` reads (each line has an "arch" object and one key per metric); the CSV holds the same rows for a
spreadsheet or pandas, with the architecture and the moves as compact JSON strings.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from ..files import write_text_atomic

if TYPE_CHECKING:  # pragma: no cover
    from .summary import SearchResult

JSONL_FILE = "evaluations.jsonl"
CSV_FILE = "evaluations.csv"
#: the columns every row has, before the metric columns
FIXED_COLUMNS = (
    "seq",
    "round",
    "arch_hash",
    "name",
    "origin",
    "parent",
    "reward",
    "feasible",
    "predicted_accuracy",
    "error",
)


def evaluation_rows(result: SearchResult) -> list[dict[str, Any]]:
    """One dict per evaluation: the fixed columns, the metrics (top level, by metric name), `violations`,
    `feasible_for`, `moves` and `arch`."""
    rows = []
    for e in result.evaluated:
        doc = e.to_json(with_arch=True)
        metrics = doc.pop("metrics")
        clash = sorted(set(metrics) & set(doc))
        if clash:  # a metric named like a column would silently replace it
            raise DataError(
                f"metric name(s) {clash} clash with the columns of {JSONL_FILE}; rename the metric in its plugin"
            )
        rows.append(
            {**{k: doc[k] for k in FIXED_COLUMNS}, **metrics, **{k: doc[k] for k in doc if k not in FIXED_COLUMNS}}
        )
    return rows


def write_evaluations(result: SearchResult, run_dir: Path) -> dict[str, str]:
    """Write `evaluations.jsonl` and `evaluations.csv` into `run_dir` (each atomically: a reader never sees
    half a file); returns output name -> path."""
    rows = evaluation_rows(result)
    metric_names = sorted({k for e in result.evaluated for k in e.score.metrics})
    lines = "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*FIXED_COLUMNS, *metric_names, "moves", "arch"])
    for r in rows:
        writer.writerow(
            [_cell(r[k]) for k in FIXED_COLUMNS]
            + [_cell(r.get(m)) for m in metric_names]
            + [json.dumps(r["moves"], separators=(",", ":")), json.dumps(r["arch"], separators=(",", ":"))]
        )
    out = {}
    for name, text in ((JSONL_FILE, lines), (CSV_FILE, buf.getvalue())):
        write_text_atomic(Path(run_dir) / name, text)
        out[name.replace(".", "_")] = str(Path(run_dir) / name)
    return out


def _cell(value: Any) -> Any:
    """A CSV cell: empty for a missing value, JSON for a nested one, the value itself otherwise."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value

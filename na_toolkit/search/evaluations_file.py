"""Every evaluated network of a run as a table: `evaluations.jsonl` and `evaluations.csv` in the run folder.

One row per ground-truth evaluation, in evaluation order: where it came from (origin, parent, the moves
that made it), its reward and feasibility, every measured or predicted metric as its own column, and its
architecture. Each device figure the run's provenance gives a source (summary.json's `metric_sources`) has a
column `<metric>_source` right after it, e.g. `latency_ms@cpu_source`: "measured median by measure
onnxruntime", "estimated by time_model roofline" (`figure_sources.source_cell`); empty where the row has no
value. A measured latency has its spread and the load it was measured under beside it (`latency_p10_ms@cpu`,
`latency_p90_ms@cpu`, `load_average_1min@cpu`: `measure_warnings.BESIDE_MEASURED`), which score nothing.
The JSON Lines file is what `na-toolkit predict fit --data evaluations.jsonl --target
accuracy` reads (each line has an "arch" object and one key per metric); the CSV holds the same rows for a
spreadsheet or pandas (and `predict fit` reads it too), with the architecture, the moves and the violations
(the budget metrics a network breaks; a failed evaluation's, its reason, which may hold any character) as
compact JSON strings, and `feasible_for` as the devices the network meets the budgets of, joined by ';'.

Both are kept up to date while the search runs (`EvaluationsSoFar`: after each round, or each refit of the
asynchronous schedule; rounds faster than its throttle, a table's, a few at a time), so a live, interrupted
or failed run can be read and fitted on before it ends; the
finished run's outputs write them once more, complete. `scored_so_far` reads the JSON Lines file back as the
search scored each evaluation (what `open_run(RUN, unfinished=True)` ranks).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError, StoreError, resume_hint
from ..files import write_text_atomic
from .figure_sources import source_cell
from .progress import SearchCallback

if TYPE_CHECKING:  # pragma: no cover
    from .summary import Evaluated, SearchResult

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


#: the suffix of the column naming where a metric's value comes from (`latency_ms@cpu_source`)
SOURCE_SUFFIX = "_source"


def evaluation_rows(
    evaluated: Sequence[Evaluated], sources: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One dict per evaluation: the fixed columns, the metrics (top level, by metric name), each followed by
    its source (`<metric>_source`, for a metric `sources` names, where the row has a value), then
    `violations`, `feasible_for`, `moves` and `arch`."""
    cells = {m: c for m, s in (sources or {}).items() if isinstance(s, Mapping) and (c := source_cell(s))}
    rows = []
    for e in evaluated:
        doc = e.to_json(with_arch=True)
        raw = doc.pop("metrics")
        clash = sorted(set(raw) & (set(doc) | {m + SOURCE_SUFFIX for m in cells}))
        if clash:  # a metric named like a column would silently replace it
            raise DataError(
                f"metric name(s) {clash} clash with the columns of {JSONL_FILE}; rename the metric in its plugin"
            )
        metrics: dict[str, Any] = {}
        for name, value in raw.items():
            metrics[name] = value
            if name in cells and value is not None:
                metrics[name + SOURCE_SUFFIX] = cells[name]
        rows.append(
            {**{k: doc[k] for k in FIXED_COLUMNS}, **metrics, **{k: doc[k] for k in doc if k not in FIXED_COLUMNS}}
        )
    return rows


#: the columns after the metrics (`arch` is the architecture, which the run's store holds too)
TAIL_COLUMNS = ("violations", "feasible_for", "moves", "arch")


def scored_so_far(run_dir: Path) -> list[dict[str, Any]] | None:
    """The evaluations `evaluations.jsonl` in `run_dir` holds, each as `Evaluated.to_json()` gave it (the
    search's own score: reward, feasibility per device, violations, every metric), in evaluation order; None
    when there is no such file (a search writes it after its first batch). The metrics are the columns
    between the fixed and the tail ones, less their sources (a `<metric>_source` column holds text, a metric
    a number). A line that is not such a row is a StoreError naming it."""
    path = Path(run_dir) / JSONL_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            row = json.loads(line)
            entry = {k: row[k] for k in (*FIXED_COLUMNS, *TAIL_COLUMNS[:-1])}
            entry["metrics"] = {
                k: float(v)
                for k, v in row.items()
                if k not in FIXED_COLUMNS
                and k not in TAIL_COLUMNS
                and not (k.endswith(SOURCE_SUFFIX) and isinstance(v, str))
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{path} line {number} is not an evaluation row ({type(exc).__name__}: {exc}); the search rewrites "
                f"the file after its next batch, and {resume_hint('RUN', placeholder=True)} does from the run's store"
            ) from None
        entries.append(entry)
    return entries


def write_evaluations(
    result: SearchResult | Sequence[Evaluated],
    run_dir: Path,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """Write `evaluations.jsonl` and `evaluations.csv` of a result's (or these) evaluations into `run_dir` (each
    atomically: a reader never sees half a file); returns output name -> path. A result's rows are its
    `rows()`, so the file and the method cannot differ (they did: rows() lacked the sources); `sources`, the
    run's `metric_sources`, is for bare evaluations (a live run's, `EvaluationsSoFar`)."""
    if isinstance(result, Sequence):
        evaluated, rows = result, evaluation_rows(result, sources)
    else:
        if sources is not None:  # a result carries its own, from its provenance: two could disagree
            raise TypeError("write_evaluations: give `sources` with bare evaluations only; a result has its own")
        evaluated, rows = result.evaluated, result.rows()
    metric_names = sorted({k for e in evaluated for k in e.score.metrics})
    columns = [c for m in metric_names for c in (m, m + SOURCE_SUFFIX) if c == m or any(c in r for r in rows)]
    lines = "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*FIXED_COLUMNS, *columns, *TAIL_COLUMNS])
    for r in rows:
        writer.writerow(
            [_cell(r[k]) for k in FIXED_COLUMNS]
            + [_cell(r.get(c)) for c in columns]
            + [
                json.dumps(r["violations"], separators=(",", ":")),
                feasible_for_cell(r["feasible_for"]),
                json.dumps(r["moves"], separators=(",", ":")),
                json.dumps(r["arch"], separators=(",", ":")),
            ]
        )
    # the CSV first: a reader that sees the JSONL (what `predict fit --data` and a live run's watchers poll)
    # change then finds the CSV holding at least the same evaluations
    write_text_atomic(Path(run_dir) / CSV_FILE, buf.getvalue())
    write_text_atomic(Path(run_dir) / JSONL_FILE, lines)
    return {name.replace(".", "_"): str(Path(run_dir) / name) for name in (JSONL_FILE, CSV_FILE)}


#: what separates the devices of a CSV row's `feasible_for` cell (a device name holds no ';': config_models.py)
DEVICE_SEPARATOR = ";"


def feasible_for_cell(feasible_for: Mapping[str, bool]) -> str:
    """A CSV row's `feasible_for`: the devices whose budgets (and the global ones) the network meets, in the
    run's device order, joined by ';' ("cpu;pi4"; empty: none), so a spreadsheet filters a multi-device run by
    device ("contains pi4") where the JSON Lines row has a device -> bool object."""
    return DEVICE_SEPARATOR.join(d for d, ok in feasible_for.items() if ok)


def _cell(value: Any) -> Any:
    """A CSV cell: empty for a missing value, JSON for a nested one, the value itself otherwise."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value


class EvaluationsSoFar(SearchCallback):
    """Rewrites the run folder's evaluations files after each batch of evaluations, once the run holds more
    than its store did when this process started (`stored`): a resume's replay never makes them shorter, and
    a killed resume of a finished run leaves them as they were. A rewrite costs time in the number of rows
    (0.15 s for 1,000 on a laptop core), so one is skipped until OVERHEAD_FACTOR times the last one's time has
    passed: at most ~5% of the driver's time even with many short rounds. A folder that cannot take them is one
    warning: the store keeps every evaluation, and the outputs at the end say what failed. `sources` reads the
    run's `metric_sources` (its provenance, recorded once the run has started), kept once it names any."""

    OVERHEAD_FACTOR = 20.0

    def __init__(
        self, run_dir: Path, stored: int, sources: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None
    ) -> None:
        self.run_dir = Path(run_dir)
        self.stored = stored
        self.read_sources = sources
        self.sources: Mapping[str, Mapping[str, Any]] = {}
        self.warned = False
        self.last_s = -math.inf  # when the last rewrite ended (time.monotonic) ...
        self.took_s = 0.0  # ... and how long it took

    def on_evaluated(self, evaluated: Sequence[Evaluated]) -> None:
        if len(evaluated) <= self.stored or time.monotonic() - self.last_s < self.OVERHEAD_FACTOR * self.took_s:
            return
        started = time.monotonic()
        try:
            if not self.sources and self.read_sources is not None:
                self.sources = self.read_sources()
            write_evaluations(evaluated, self.run_dir, self.sources)
            self.last_s = time.monotonic()
            self.took_s = self.last_s - started
        except OSError as exc:
            if not self.warned:
                self.warned = True
                logging.getLogger("na_toolkit.search").warning(
                    "warning: cannot keep %s up to date in %s: %s; the run's store keeps every evaluation",
                    JSONL_FILE,
                    self.run_dir,
                    exc.strerror or exc,
                )

"""Fresh benchmark results against the committed ones: are the committed figures reproduced, seed by seed?

A fresh result (the JSON `na-toolkit bench NAME ... --out PATH` wrote) is compared with the committed
`benchmarks/NAME*.json` of the same parameters, up to the parameters that only choose how much of the run
is done (fewer seeds, a subset of strategies or predictors): over the seeds both hold, every per-seed value
must match within the tolerance. Used by `bench architecture` (`nb201_search_reproduced`,
`predictor_reproduced`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: test accuracies (percent) and predictor scores that count as the same figure
REPRODUCE_TOLERANCE = 1e-6

Series = dict[str, list[float | None]]


@dataclass(frozen=True)
class ReproducedFigure:
    """What to compare for one benchmark: its committed files, the parameters that only select a subset of
    the run, and how to read per-seed values (series name -> one value per seed) from a result."""

    pattern: str
    subset_params: frozenset[str]
    series: Callable[[Mapping[str, Any]], Series]


def _nb201_series(doc: Mapping[str, Any]) -> Series:
    return {s: list(v["test_accuracy_per_seed"]) for s, v in doc.get("strategies", {}).items()}


def _predictor_series(doc: Mapping[str, Any]) -> Series:
    out = {f"{p}.kendall_tau": list(v) for p, v in doc.get("per_seed", {}).items()}
    out.update({f"{p}.mape_pct": list(v) for p, v in doc.get("per_seed_mape_pct", {}).items()})
    return out


NB201_SEARCH = ReproducedFigure(
    "nb201-search*.json", frozenset({"benchmark", "seeds", "strategies", "rate_batch"}), _nb201_series
)
PREDICTOR = ReproducedFigure(
    "predictor*.json",
    frozenset({"benchmark", "seeds", "predictors", "neural_seeds", "throughput_archs"}),
    _predictor_series,
)


def _same(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)  # a seed without a feasible result, in both runs
    return abs(a - b) <= tol


def compare_per_seed(fresh: Series, committed: Series, tol: float = REPRODUCE_TOLERANCE) -> dict[str, Any]:
    """Series by series, the fresh values against the committed ones of the same seeds."""
    compared, max_diff = 0, 0.0
    mismatches: list[dict[str, Any]] = []
    not_committed: list[str] = []
    for key, values in fresh.items():
        theirs = committed.get(key)
        if theirs is None:
            not_committed.append(key)
            continue
        for seed, (a, b) in enumerate(zip(values, theirs)):
            compared += 1
            if a is not None and b is not None and not (math.isnan(a) or math.isnan(b)):
                max_diff = max(max_diff, abs(a - b))
            if not _same(a, b, tol):
                mismatches.append({"series": key, "seed": seed, "fresh": a, "committed": b})
        if len(values) > len(theirs):
            not_committed.append(f"{key}: seeds {len(theirs)}..{len(values) - 1}")
    return {"compared": compared, "max_abs_diff": max_diff, "mismatches": mismatches, "not_committed": not_committed}


def committed_result(figure: ReproducedFigure, params: Mapping[str, Any], folder: Path) -> Path | None:
    """The committed result of the same parameters (up to `figure.subset_params`), None if there is none."""
    wanted = {k: v for k, v in params.items() if k not in figure.subset_params}
    for path in sorted(folder.glob(figure.pattern)):
        theirs = json.loads(path.read_text()).get("params", {})
        if {k: v for k, v in theirs.items() if k not in figure.subset_params} == wanted:
            return path
    return None


def reproduced(
    figure: ReproducedFigure, results: Sequence[str | Path], folder: Path, tol: float = REPRODUCE_TOLERANCE
) -> dict[str, Any]:
    """{"reproduced": True / False / None (no fresh result), "files": one report per fresh result}."""
    if not results:
        return {"reproduced": None, "reason": "no fresh result given", "files": []}
    files: list[dict[str, Any]] = []
    for result in results:
        path = Path(result)
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read the result {path}: {e}; pass the JSON file `bench ... --out` wrote") from e
        committed = committed_result(figure, doc.get("params", {}), folder)
        if committed is None:
            files.append(
                {
                    "fresh": str(path),
                    "committed": None,
                    "reproduced": False,
                    "reason": f"no {folder / figure.pattern} with the same params",
                }
            )
            continue
        report = compare_per_seed(figure.series(doc), figure.series(json.loads(committed.read_text())), tol)
        good = report["compared"] > 0 and not report["mismatches"]
        files.append({"fresh": str(path), "committed": str(committed), "reproduced": good, **report})
    return {"reproduced": all(f["reproduced"] for f in files), "files": files}
